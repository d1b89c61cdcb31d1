#include "cli/host_identity.h"

#include <cerrno>
#include <charconv>
#include <string>

#include "core/file_util.h"
#include "core/hash.h"
#include "core/ids.h"
#include "core/process_holder.h"

namespace snapvol {

Result<std::string> LoadOrCreateHostId(const std::string& dir) {
  const std::string path = dir + kHostIdFile;
  if (!PathExists(path)) {
    std::string id = NewHostId();
    std::string text = id + "\n";
    RETURN_IF_ERROR(WriteFileAtomic(path, AsBytes(text), 0600));
    return id;
  }
  ASSIGN_OR_RETURN(auto raw, ReadWholeFile(path));
  std::string s(raw.begin(), raw.end());
  if (!s.empty() && s.back() == '\n') s.pop_back();
  if (!IsHostId(s))
    return Corruption(path + " does not hold a host id (host- and 17 hex digits); if this data dir's host "
                      "never registered with a shared catalog, remove the file and a new id is chosen, "
                      "else write the id `snapvol host list` shows for this host back into it");
  return s;
}

std::string ThisBootId() {
  auto raw = ReadWholeFile("/proc/sys/kernel/random/boot_id");
  if (!raw) return "unknown";
  std::string s(raw->begin(), raw->end());
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::optional<RunnerName> ParseRunner(std::string_view runner) {
  if (!runner.starts_with("pid:")) return std::nullopt;
  runner.remove_prefix(4);
  auto at = runner.find('@');
  if (at == std::string_view::npos) return std::nullopt;
  RunnerName r;
  auto [end, ec] = std::from_chars(runner.data(), runner.data() + at, r.pid);
  if (ec != std::errc() || end != runner.data() + at || r.pid <= 0) return std::nullopt;
  std::string_view rest = runner.substr(at + 1);
  auto host_at = rest.find('@');
  if (host_at != std::string_view::npos) {
    r.host_id = std::string(rest.substr(host_at + 1));
    rest = rest.substr(0, host_at);
    if (!IsHostId(r.host_id)) return std::nullopt;
  }
  if (rest.empty()) return std::nullopt;
  r.boot_id = std::string(rest);
  return r;
}

std::string FormatRunner(const RunnerName& r) {
  std::string s = "pid:" + std::to_string(r.pid) + "@" + r.boot_id;
  if (!r.host_id.empty()) s += "@" + r.host_id;
  return s;
}

RunnerJudge::RunnerJudge(Catalog* catalog, Clock* clock, Self self, int64_t host_timeout_ms)
    : catalog_(catalog), clock_(clock), self_(std::move(self)), host_timeout_ms_(host_timeout_ms) {
  if (!self_.process_gone) self_.process_gone = ProcessGone;
}

std::string RunnerJudge::RunnerId(long pid) const {
  return FormatRunner({pid, self_.boot_id, self_.host_id});
}

bool RunnerJudge::Alive(const std::string& runner) const {
  std::string host_id;
  if (std::string queued_for = QueuedRunnerHost(runner); !queued_for.empty()) {
    // Queued for a host: this host claims it (its claimer runs in snapvold); another host does
    // while it is up.
    if (queued_for == self_.host_id) return true;
    host_id = std::move(queued_for);
  } else {
    auto r = ParseRunner(runner);
    if (!r) return false;
    if (r->host_id.empty() || r->host_id == self_.host_id)
      return r->boot_id == self_.boot_id && !self_.process_gone(r->pid);  // a zombie is dead too
    host_id = r->host_id;
  }
  auto host = catalog_->GetHost(host_id);
  if (!host) return host.error().code() != ErrorCode::kNotFound;
  return HostStateAt(*host, clock_->NowMillis(), host_timeout_ms_) == "up";
}

}  // namespace snapvol
