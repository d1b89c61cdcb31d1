#include "notify/email.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "core/clock.h"
#include "core/file_util.h"
#include "core/hash.h"

extern char** environ;

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
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0) return std::unexpected(PosixError("pipe", errno));
  UniqueFd in_r(in[0]), in_w(in[1]);
  if (pipe2(out, O_CLOEXEC) != 0) return std::unexpected(PosixError("pipe", errno));
  UniqueFd out_r(out[0]), out_w(out[1]);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in_r.get(), 0);
  posix_spawn_file_actions_adddup2(&fa, out_w.get(), 1);
  posix_spawn_file_actions_adddup2(&fa, out_w.get(), 2);
  // The daemon's other descriptors (sockets, the catalog) are not the MTA's business.
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // The daemon blocks SIGTERM/SIGINT in every thread: the child starts with nothing blocked.
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::string a0 = t.sendmail, a1 = "-t", a2 = "-oi";
  char* argv[] = {a0.data(), a1.data(), a2.data(), nullptr};
  pid_t pid = -1;
  int rc = posix_spawn(&pid, t.sendmail.c_str(), &fa, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return std::unexpected(PosixError("cannot run " + t.sendmail, rc));
  in_r.Reset();
  out_w.Reset();

  // A sendmail that exits early must not kill the daemon with SIGPIPE: block it in this
  // thread while writing, and take any it raised before unblocking.
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  Status wrote = WriteFull(in_w.get(), AsBytes(message));
  in_w.Reset();
  timespec zero{};
  while (sigtimedwait(&pipe_set, nullptr, &zero) == SIGPIPE) {
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);

  // What it prints (kept short), until it closes its output or the timeout passes.
  std::string said;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(t.timeout_ms);
  bool timed_out = false;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{out_r.get(), POLLIN, 0};
    int n = poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
    char buf[1024];
    ssize_t got = read(out_r.get(), buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    if (said.size() < 1024) said.append(buf, static_cast<size_t>(got));
  }
  if (timed_out) kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  while (!said.empty() && (said.back() == '\n' || said.back() == '\r')) said.pop_back();
  if (said.size() > 300) said.resize(300);
  std::string tail = said.empty() ? "" : ": " + said;
  if (timed_out)
    return MakeError(ErrorCode::kIoError, t.sendmail + " did not finish within " + std::to_string(t.timeout_ms / 1000) +
                                              " s (killed)" + tail, true);
  if (WIFSIGNALED(status))
    return MakeError(ErrorCode::kIoError, t.sendmail + " was killed by signal " + std::to_string(WTERMSIG(status)) + tail, true);
  if (WEXITSTATUS(status) != 0)
    return MakeError(ErrorCode::kIoError, t.sendmail + " exited " + std::to_string(WEXITSTATUS(status)) + tail, true);
  if (!wrote) return MakeError(ErrorCode::kIoError, "writing the message to " + t.sendmail + ": " + wrote.error().message(), true);
  return OkStatus();
}

}  // namespace snapvol::notify
