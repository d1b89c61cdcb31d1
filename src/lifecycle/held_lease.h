// HeldLease: whether this host holds a cluster lease (docs/multi-host.md part 4), as the
// daemon's LeaseKeeper last renewed it, for the schedulers that run a duty once per cluster
// (MaintenanceScheduler under `maintenance`, LifecycleScheduler under `lifecycle`).
// Thread-safety: implementations are thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace snapvol::lifecycle {

// Whether this host holds a cluster lease now, as its keeper last renewed it (snapvold's
// LeaseKeeper, daemon/lease_keeper.h). Thread-safe.
class HeldLease {
 public:
  struct Held {
    std::string holder;  // this host's id
    int64_t generation = 0;
    bool operator==(const Held&) const = default;
  };
  virtual ~HeldLease() = default;
  // The generation this host holds the lease under, while its last renewal has not expired by
  // this host's clock; nullopt otherwise.
  virtual std::optional<Held> Current() = 0;
  // Who holds it otherwise, for messages ("host-… until …", or why not known).
  virtual std::string HolderText() = 0;
};

}  // namespace snapvol::lifecycle
