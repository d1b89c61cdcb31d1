// Email delivery of operator events through the local MTA's sendmail interface: the plain
// RFC 5322 message, and piping it to `SENDMAIL -t -oi` (recipients from the To: header, a line
// holding a lone dot is not the end of the message).
// Thread-safety: free functions, safe from any thread.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "notify/webhook.h"

namespace snapvol::notify {

struct EmailTarget {
  std::vector<std::string> to;  // plain addresses: local@domain
  std::string from;
  std::string sendmail = "/usr/sbin/sendmail";
  int64_t timeout_ms = 60'000;  // a sendmail that takes longer is killed
};

// A plain addr-spec without display name or comments; no spaces, quotes, commas or angle
// brackets (they would change the header's meaning).
bool IsPlainAddress(const std::string& address);

// The message: From, To, Subject ("[snapvol] <severity> <kind>: <summary>" on one line,
// RFC 2047 encoded when not ASCII), Date, Message-ID, MIME headers, Auto-Submitted; a
// text/plain UTF-8 body with the summary, time, host, id and details, lines ending CRLF.
std::string FormatEmail(const EmailTarget& target, const Envelope& e);

// Runs `sendmail -t -oi` with the message on its standard input. OK when it exits 0; else
// an error naming its exit status and the first of what it printed.
Status SendMail(const EmailTarget& target, const std::string& message);

}  // namespace snapvol::notify
