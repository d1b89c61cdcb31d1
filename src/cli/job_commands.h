// `snapvol job list|show ID|run gc|verify`: an operator's view of the maintenance runs (GC,
// verification) recorded in the data dir's catalog, and a way to ask snapvold for one now.
// `run` queues the run in the catalog; the daemon on that data dir starts it within a second
// (snapvol gc / snapvol verify run the same work offline, in the CLI's own process).
// Thread-safety: call from one thread (the CLI's).
#pragma once

#include <ostream>
#include <string>

#include "catalog/catalog.h"
#include "core/thread_pool.h"
#include "store/repository.h"

namespace snapvol {

// Newest first, of one job ("gc", "verify") or all (empty), as a table or JSON.
Status JobListCommand(Catalog* catalog, const std::string& job, size_t limit, bool json, std::ostream& out);

// One run with everything recorded. kNotFound for an unknown id; kInvalidArgument for one that
// is not a number.
Status JobShowCommand(Catalog* catalog, const std::string& id, bool json, std::ostream& out);

// Queues a manual run (verify: every snapshot, full decode unless quick) and prints its id.
// kConflict while a run of the same job is queued or running.
Status JobRunCommand(Catalog* catalog, Repository* repo, ThreadPool* pool, const std::string& job, bool quick,
                     bool json, std::ostream& out);

}  // namespace snapvol
