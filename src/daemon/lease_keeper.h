// LeaseKeeper: takes and keeps one cluster lease for this host (docs/multi-host.md part 4):
// AcquireClusterLease every interval with a time to live, on a thread of its own, so that
// whoever asks (the maintenance scheduler, through lifecycle::HeldLease) knows at once, without
// a catalog read, whether this host holds the lease and under which generation. A take or
// renewal that fails in the catalog is reported to on_failure and counted in
// snapvol_cluster_lease_failures_total{lease}, never fatal; the lease is then held until the
// last successful renewal's expiry by this host's clock, and not after it. A clean Stop
// releases the lease when this host holds it, so that another host takes it at once.
// On SQLite (one host) the one host takes it at its first renewal and keeps it.
// Thread-safety: Current, HolderText and Renew from any thread; Start and Stop from one thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "catalog/catalog.h"
#include "core/clock.h"
#include "core/status.h"
#include "lifecycle/maintenance.h"

namespace snapvol {

class LeaseKeeper : public lifecycle::HeldLease {
 public:
  // catalog and clock must outlive this object. ttl_ms > interval_ms > 0 (ValidateLeaseTimes).
  // on_change (optional) is told, in words, when this host takes the lease, loses it or
  // releases it; on_failure (optional) of each failed take or renewal.
  LeaseKeeper(Catalog* catalog, Clock* clock, std::string name, std::string holder, int64_t interval_ms,
              int64_t ttl_ms, std::function<void(const Error&)> on_failure,
              std::function<void(const std::string&)> on_change);
  ~LeaseKeeper() override;  // Stop()
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  // One take or renewal now (what the thread does every interval). Returns the catalog's error,
  // already reported and counted.
  Status Renew();
  // Renews once at once (so that a host that can take the lease holds it when Start returns),
  // then every interval on a thread of its own.
  void Start();
  // Stops the thread, then releases the lease if this host holds it (a failure there is reported
  // like a failed renewal). Idempotent.
  void Stop();

  std::optional<Held> Current() override;
  std::string HolderText() override;

 private:
  void Loop();
  void Say(const std::string& what);

  Catalog* const catalog_;
  Clock* const clock_;
  const std::string name_, holder_;
  const int64_t interval_ms_, ttl_ms_;
  std::function<void(const Error&)> on_failure_;
  std::function<void(const std::string&)> on_change_;

  std::mutex state_mu_;
  std::optional<ClusterLeaseRecord> last_;  // guarded by state_mu_: as the last take or renewal returned it
  bool said_holding_ = false;               // guarded by state_mu_: what on_change was last told
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  bool started_ = false;   // set by Start, cleared by Stop (one thread)
  std::thread thread_;
};

// Refuses lease times that cannot work, naming the flags.
Status ValidateLeaseTimes(int64_t interval_ms, int64_t ttl_ms);

}  // namespace snapvol
