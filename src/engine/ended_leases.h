// The one rule for leases that outlived their snapshot: a snapshot that ended while the store
// was unreachable (e.g. it failed because it was) could not remove its lease, and GC keeps
// everything younger than a lease until it expires (30 minutes), the failed run's objects
// included. The catalog knows better: a snapshot it records as completed or error has no
// engine writing under it any more, so its lease can go at once. Used by `snapvol gc`,
// `snapvol catalog rebuild` and snapvold's maintenance GC alike.
// Thread-safety: as the Catalog and Repository it is given.
#pragma once

#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "store/repository.h"

namespace snapvol {

struct ReleasedLease {
  std::string snapshot_id;
  SnapshotState state = SnapshotState::kCompleted;  // completed or error
};

// Removes the leases of snapshots this catalog records as ended (completed or error). Leases
// the catalog does not know (another host's catalog, the upgrade's) and those of pending
// snapshots stay. Returns what it removed; an error from the catalog or the store stops it.
Result<std::vector<ReleasedLease>> ReleaseLeasesOfEndedSnapshots(Catalog* catalog, Repository* repo);

}  // namespace snapvol
