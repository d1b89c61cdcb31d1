// snapvold's two logs: the event log (one JSON line per event on stderr, for journald) and
// the audit log (one JSON line per API decision in DIR/audit.log).
#pragma once

#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "core/file_util.h"
#include "core/status.h"

namespace snapvol {

// Writes `fields` with a "ts" (ISO 8601, UTC) as one line on stderr.
void Log(const nlohmann::json& fields);

// DIR/audit.log, appended (O_APPEND, one write per line, 0600). Reopen() (on SIGHUP) starts a
// new file after logrotate moved the old one. Safe to use from any thread.
class AuditLog {
 public:
  explicit AuditLog(std::string path);
  void Append(nlohmann::json line);
  Status Reopen();

 private:
  const std::string path_;
  std::mutex mu_;
  UniqueFd fd_;  // GUARDED_BY(mu_)
};

}  // namespace snapvol
