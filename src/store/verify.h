// Verify: re-reads every object that snapshots reference and checks it (checksum always; with
// a full check also decrypts, decompresses and compares the content with its id). Reports each
// damaged snapshot by id with what is wrong. Shared objects are checked once.
// Chunks are checked in batches (Repository::CheckChunks: in format 2 one ranged read per run of
// neighbouring chunks of a pack), several batches at once. In format 2 each pack that holds an
// object of a checked snapshot also has its own trailing index checked, once (one more ranged
// read per pack, and one listing of the packs).
// Thread-safety: runs on the calling thread plus threads of its own, as many as the given pool
// has and at least as many as the store serves reads in parallel.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "store/repository.h"

namespace snapvol {

struct VerifyOptions {
  bool checksum_only = false;  // skip decrypt/decompress/id checks (needs no key)
  // Called after each snapshot: (snapshots done, snapshots total).
  std::function<void(size_t, size_t)> progress;
};

struct DamagedSnapshot {
  std::string snapshot_id;
  std::vector<std::string> problems;  // first few problems, each one line
  uint64_t bad_objects = 0;
  // Chunks of this snapshot that were read and failed their check (damaged, not missing and
  // not a read error): what a caller may remove so that no new snapshot reuses them.
  std::vector<Digest> corrupt_chunks;
};

struct VerifyReport {
  uint64_t snapshots_checked = 0, objects_checked = 0, bytes_checked = 0;
  std::vector<DamagedSnapshot> damaged;
  // Format 2: packs whose own trailing index is damaged, one line each naming the pack and
  // what is wrong. The objects in them may all be intact (then no snapshot is damaged), but
  // the index they hold is what a lost packindex/ object would be rebuilt from.
  std::vector<std::string> damaged_packs;
  bool ok() const { return damaged.empty() && damaged_packs.empty(); }
};

// snapshot_ids empty: every snapshot in the store. An unknown id is reported as damaged
// ("no manifest"). Returns an error only when the store cannot be listed.
Result<VerifyReport> VerifySnapshots(Repository* repo, const std::vector<std::string>& snapshot_ids,
                                     ThreadPool* pool, const VerifyOptions& options);

}  // namespace snapvol
