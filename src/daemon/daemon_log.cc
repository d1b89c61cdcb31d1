#include "daemon/daemon_log.h"

#include <fcntl.h>

#include <cstdio>

#include "core/clock.h"
#include "core/hash.h"

namespace snapvol {

void Log(const nlohmann::json& fields) {
  nlohmann::json line = fields;
  line["ts"] = FormatIso8601(Clock::Real()->NowMillis());
  std::fprintf(stderr, "%s\n", line.dump().c_str());
}

AuditLog::AuditLog(std::string path) : path_(std::move(path)) { (void)Reopen(); }

void AuditLog::Append(nlohmann::json line) {
  line["ts"] = FormatIso8601(Clock::Real()->NowMillis());
  std::string s = line.dump() + "\n";
  std::lock_guard lock(mu_);
  if (fd_.valid()) (void)WriteFull(fd_.get(), AsBytes(s));
}

Status AuditLog::Reopen() {
  auto fd = OpenFile(path_, O_WRONLY | O_CREAT | O_APPEND, 0600);
  if (!fd) return std::unexpected(fd.error());
  std::lock_guard lock(mu_);
  fd_ = std::move(*fd);
  return OkStatus();
}

}  // namespace snapvol
