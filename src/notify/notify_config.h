// The notification settings as an operator gives them (snapvold --notify-… flags or TOML
// keys), checked and turned into NotifierOptions. Every setting is applied or refused by name.
// Thread-safety: free functions.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "notify/notifier.h"

namespace snapvol::notify {

struct NotifySettings {
  std::string webhook_url;          // http:// or https://
  std::string webhook_secret_file;  // the shared secret; must not be readable by group or others
  int webhook_attempts = 5;         // attempts in all per event
  std::vector<std::string> email_to;
  std::string email_from;           // default snapvold@HOST
  std::string sendmail;             // default /usr/sbin/sendmail
  std::vector<std::string> events;  // kinds to send, or "all" (the default)
};

// REQUIRES the URL to be absolute http(s) with a host and nothing a header could not carry.
Status CheckWebhookUrl(const std::string& url);

// The secret: the file's content without a final newline. Refuses a file group or others may
// read or write, an empty one, or one over 4 KiB.
Result<std::string> ReadSecretFile(const std::string& path);

// Checks everything; host names the sender, spool_path is where undelivered events wait
// across a stop.
Result<NotifierOptions> MakeNotifierOptions(const NotifySettings& s, const std::string& host,
                                            const std::string& spool_path);

std::string HostName();

}  // namespace snapvol::notify
