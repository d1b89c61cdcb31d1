// `snapvol gc [--grace D] [--dry-run] [--repack-threshold F]`: garbage collection of a data
// dir's store in the CLI's own process (snapvold runs the same on its schedule). Counts the
// pending usage changes first and keeps what a deletion not yet counted still has to read.
// Prints what it deleted (dry run: would delete); for a format-2 store also the packs: kept,
// deleted (nothing live), repacked and the new packs written, damaged ones kept, and the dead
// bytes the run found (GcReport::dead_bytes) beside the bytes freed.
// Thread-safety: call from one thread (the CLI's).
#pragma once

#include <optional>
#include <ostream>
#include <string>

#include "catalog/catalog.h"
#include "store/repository.h"

namespace snapvol {

struct GcCommandOptions {
  std::string grace = "15m";  // a duration: 0, 30s, 15m, 2h, 1d
  bool dry_run = false;
  std::optional<std::string> repack_threshold;  // as given; format-2 stores only
};

// "15m" → milliseconds; kInvalidArgument for no unit known, or a negative one.
Result<int64_t> ParseDuration(const std::string& text);

// A fraction above 0 and at most 1 ("0.1"); kInvalidArgument naming --repack-threshold otherwise.
Result<double> ParseRepackThreshold(const std::string& text);

// ReleaseLeasesOfEndedSnapshots (engine/ended_leases.h: the leases of snapshots this catalog
// records as completed or error, left when the store was unreachable), one line on warnings
// each. GcCommand does this first (not in a dry run), and
// `catalog rebuild` before it forgets the failed snapshots.
Status ReleaseEndedLeases(Catalog* catalog, Repository* repo, std::ostream& warnings);

// Runs GC and prints its report as text or (json) one JSON object. kInvalidArgument, before
// anything is read or changed, for a bad setting or a repack threshold on a format-1 store.
Status GcCommand(Catalog* catalog, Repository* repo, const GcCommandOptions& options, bool json, std::ostream& out,
                 std::ostream& warnings);

}  // namespace snapvol
