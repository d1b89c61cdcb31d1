#include "notify/email.h"

#include <openssl/evp.h>
#include <time.h>

#include "core/clock.h"
#include "core/hash.h"
#include "core/subprocess.h"

namespace snapvol::notify {
namespace {

// One header line's text: control characters (CR, LF above all: header injection) become spaces.
std::string HeaderText(const std::string& s) {
  std::string out = s;
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  return out;
}

bool IsAscii(const std::string& s) {
  for (unsigned char c : s)
    if (c >= 0x80) return false;
  return true;
}

// RFC 2047 "=?UTF-8?B?…?=" words of at most 45 input bytes each, split at character starts.
std::string EncodeWords(const std::string& s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    size_t n = std::min<size_t>(45, s.size() - i);
    while (i + n < s.size() && n > 1 && (static_cast<unsigned char>(s[i + n]) & 0xC0) == 0x80) --n;
    std::string b64(4 * ((n + 2) / 3) + 1, '\0');
    int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()),
                              reinterpret_cast<const unsigned char*>(s.data() + i), static_cast<int>(n));
    b64.resize(static_cast<size_t>(len));
    if (!out.empty()) out += "\r\n ";
    out += "=?UTF-8?B?" + b64 + "?=";
    i += n;
  }
  return out;
}

std::string RfcDate(int64_t ms) {
  time_t t = static_cast<time_t>(ms / 1000);
  struct tm tm {};
  gmtime_r(&t, &tm);
  static const char* const kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* const kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d +0000", kDays[tm.tm_wday], tm.tm_mday,
                kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

// Body text: lines end CRLF; a bare CR or LF inside a value starts a new line.
std::string BodyLine(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r' || s[i] == '\n') {
      if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
      out += "\r\n  ";
    } else {
      out += s[i];
    }
  }
  return out + "\r\n";
}

}  // namespace

bool IsPlainAddress(const std::string& a) {
  if (a.size() > 254) return false;
  size_t at = a.rfind('@');
  if (at == std::string::npos || at == 0 || at + 1 >= a.size() || a.find('@') != at) return false;
  for (unsigned char c : a)
    if (c <= 0x20 || c >= 0x7f || std::strchr("\"(),:;<>[\\]", c)) return false;
  const std::string domain = a.substr(at + 1);
  if (domain.front() == '.' || domain.back() == '.' || domain.find("..") != std::string::npos) return false;
  for (unsigned char c : domain)
    if (!std::isalnum(c) && c != '-' && c != '.') return false;
  return true;
}

std::string FormatEmail(const EmailTarget& t, const Envelope& e) {
  std::string to;
  for (const auto& a : t.to) to += (to.empty() ? "" : ", ") + a;
  std::string subject = HeaderText("[snapvol] " + e.event.severity + " " + e.event.kind + ": " + e.event.summary);
  if (!IsAscii(subject)) subject = EncodeWords(subject);
  std::string host = e.host.empty() ? "localhost" : HeaderText(e.host);
  std::string m;
  m += "From: " + t.from + "\r\n";
  m += "To: " + to + "\r\n";
  m += "Subject: " + subject + "\r\n";
  m += "Date: " + RfcDate(Clock::Real()->NowMillis()) + "\r\n";
  m += "Message-ID: <" + e.id + "@" + host + ">\r\n";
  m += "MIME-Version: 1.0\r\n";
  m += "Content-Type: text/plain; charset=utf-8\r\n";
  m += "Content-Transfer-Encoding: 8bit\r\n";
  m += "Auto-Submitted: auto-generated\r\n";
  m += "X-Snapvol-Event: " + HeaderText(e.event.kind) + "\r\n";
  m += "\r\n";
  m += BodyLine(e.event.summary);
  m += "\r\n";
  m += BodyLine("event:    " + e.event.kind);
  m += BodyLine("severity: " + e.event.severity);
  m += BodyLine("time:     " + FormatIso8601(e.event.time_ms));
  m += BodyLine("host:     " + e.host);
  m += BodyLine("id:       " + e.id);
  for (const auto& [k, v] : e.event.details) m += BodyLine(k + ": " + v);
  return m;
}

Status SendMail(const EmailTarget& t, const std::string& message) {
  std::string write_error;
  ASSIGN_OR_RETURN(CommandResult r, RunCommand({t.sendmail, "-t", "-oi"}, message, t.timeout_ms, 1024, &write_error));
  if (!r.ok()) return MakeError(ErrorCode::kIoError, t.sendmail + " " + r.Describe(t.timeout_ms), true);
  if (!write_error.empty())
    return MakeError(ErrorCode::kIoError, "writing the message to " + t.sendmail + ": " + write_error, true);
  return OkStatus();
}

}  // namespace snapvol::notify
