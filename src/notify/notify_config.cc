#include "notify/notify_config.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include "core/file_util.h"

namespace snapvol::notify {
namespace {

std::unique_ptr<char, decltype(&curl_free)> UrlPart(CURLU* u, CURLUPart part) {
  char* p = nullptr;
  if (curl_url_get(u, part, &p, 0) != CURLUE_OK) p = nullptr;
  return {p, &curl_free};
}

}  // namespace

Status CheckWebhookUrl(const std::string& url) {
  auto bad = [&](const std::string& why) {
    return InvalidArgument("--notify-webhook-url '" + url + "' " + why);
  };
  for (unsigned char c : url)
    if (c <= 0x20 || c == 0x7f) return bad("holds a space or control character");
  std::unique_ptr<CURLU, decltype(&curl_url_cleanup)> u(curl_url(), &curl_url_cleanup);
  if (!u || curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK)
    return bad("is not a URL (expected http://HOST[:PORT]/PATH or https://…)");
  auto scheme = UrlPart(u.get(), CURLUPART_SCHEME);
  std::string sch = scheme ? scheme.get() : "";
  if (sch != "http" && sch != "https") return bad("must be http:// or https://");
  if (url.compare(0, sch.size() + 3, sch + "://") != 0) return bad("must begin with " + sch + "://");
  auto host = UrlPart(u.get(), CURLUPART_HOST);
  if (!host || !*host.get()) return bad("names no host");
  if (UrlPart(u.get(), CURLUPART_USER) || UrlPart(u.get(), CURLUPART_PASSWORD))
    return bad("carries a user name or password; the shared secret signs the requests instead");
  if (UrlPart(u.get(), CURLUPART_FRAGMENT)) return bad("has a #fragment");
  return OkStatus();
}

Result<std::string> ReadSecretFile(const std::string& path) {
  const std::string what = "--notify-webhook-secret-file " + path;
  auto fd = OpenFile(path, O_RDONLY | O_CLOEXEC);
  if (!fd) return InvalidArgument(what + ": cannot read it (" + fd.error().message() + ")");
  struct stat st {};
  if (fstat(fd->get(), &st) != 0) return InvalidArgument(what + ": cannot stat it");
  if (!S_ISREG(st.st_mode)) return InvalidArgument(what + ": not a regular file");
  if (st.st_mode & 077) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
    return InvalidArgument(what + ": mode " + mode + " lets other users read or change it; chmod 600 it");
  }
  if (st.st_uid != geteuid()) return InvalidArgument(what + ": owned by another user");
  if (st.st_size > 4096) return InvalidArgument(what + ": larger than 4 KiB; a secret is a short string");
  std::string secret(static_cast<size_t>(st.st_size), '\0');
  auto got = PreadFull(fd->get(), {reinterpret_cast<uint8_t*>(secret.data()), secret.size()}, 0);
  if (!got) return InvalidArgument(what + ": " + got.error().message());
  secret.resize(*got);
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  if (secret.empty()) return InvalidArgument(what + ": empty");
  return secret;
}

std::string HostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || !buf[0]) return "localhost";
  return buf;
}

Result<NotifierOptions> MakeNotifierOptions(const NotifySettings& given, const std::string& host,
                                            const std::string& spool_path) {
  // An empty item is no item: the settings file's `notify-email-to = ""` (what --print-config
  // writes for "none") is no address, `notify-events = ""` the default (all).
  NotifySettings s = given;
  std::erase(s.email_to, std::string());
  std::erase(s.events, std::string());
  NotifierOptions o;
  o.host = host;
  o.spool_path = spool_path;
  if (!s.webhook_url.empty() || !s.webhook_secret_file.empty()) {
    if (s.webhook_url.empty()) return InvalidArgument("--notify-webhook-secret-file needs --notify-webhook-url");
    if (s.webhook_secret_file.empty())
      return InvalidArgument("--notify-webhook-url needs --notify-webhook-secret-file (every request is signed)");
    RETURN_IF_ERROR(CheckWebhookUrl(s.webhook_url));
    if (s.webhook_attempts < 1 || s.webhook_attempts > 20)
      return InvalidArgument("--notify-webhook-attempts must be 1 to 20, not " + std::to_string(s.webhook_attempts));
    WebhookTarget w;
    w.url = s.webhook_url;
    ASSIGN_OR_RETURN(w.secret, ReadSecretFile(s.webhook_secret_file));
    w.retry.max_attempts = s.webhook_attempts;
    o.webhook = std::move(w);
  }
  if (!s.email_to.empty()) {
    EmailTarget e;
    for (const auto& a : s.email_to) {
      if (!IsPlainAddress(a))
        return InvalidArgument("--notify-email-to '" + a + "' is not a plain address (local@domain)");
      e.to.push_back(a);
    }
    e.from = s.email_from.empty() ? "snapvold@" + host : s.email_from;
    if (!IsPlainAddress(e.from))
      return InvalidArgument("--notify-email-from '" + e.from + "' is not a plain address (local@domain)");
    if (!s.sendmail.empty()) e.sendmail = s.sendmail;
    if (e.sendmail.empty() || e.sendmail.front() != '/')
      return InvalidArgument("--notify-sendmail '" + e.sendmail + "' must be an absolute path");
    if (access(e.sendmail.c_str(), X_OK) != 0)
      return InvalidArgument("--notify-sendmail " + e.sendmail + " is not an executable file (is an MTA installed?)");
    o.email = std::move(e);
  } else if (!s.email_from.empty() || !s.sendmail.empty()) {
    return InvalidArgument(std::string(!s.email_from.empty() ? "--notify-email-from" : "--notify-sendmail") +
                           " needs --notify-email-to");
  }
  bool all = s.events.empty();
  for (const auto& k : s.events) {
    if (k == "all") {
      all = true;
      continue;
    }
    const auto& kinds = EventKinds();
    if (std::find(kinds.begin(), kinds.end(), k) == kinds.end()) {
      std::string names;
      for (const auto& n : kinds) names += ", " + n;
      return InvalidArgument("--notify-events: unknown event kind '" + k + "' (known: all" + names + ")");
    }
    o.kinds.insert(k);
  }
  if (all) o.kinds.clear();
  return o;
}

}  // namespace snapvol::notify
