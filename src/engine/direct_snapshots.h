// DirectSnapshots: snapshots written block by block by a client (the EBS direct APIs'
// StartSnapshot, PutSnapshotBlock and CompleteSnapshot) rather than read from a volume.
//
// A started snapshot is a `pending` catalog row (its runner is this process) and a store lease
// (GC keeps what it writes). Each block is checked against the client's SHA-256, written as a
// chunk and made durable (group commit) before PutBlock returns: what was acknowledged is on
// disk. The block map of written blocks lives in memory: if the process dies before
// completion, the row's runner is gone and the next start marks it `error` (DataDir's
// RecoverInterrupted), never `completed` with a block missing. Complete takes every block not
// written from the parent (or a hole), writes the block map and publishes the manifest root:
// from then on it is an ordinary completed snapshot. A snapshot not completed within its
// timeout ends `error`, its lease is removed and its chunks are left to GC.
// Thread-safety: every method may be called from many threads at once; PutBlock calls for one
// snapshot run in parallel.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "catalog/catalog.h"
#include "core/clock.h"
#include "engine/snapshot_engine.h"
#include "store/repository.h"

namespace snapvol {

inline constexpr uint32_t kDirectBlockSize = 512 * 1024;  // the EBS block size
inline constexpr char kDirectVolumeId[] = "vol-ffffffff";  // EBS's volume id of such snapshots

struct DirectStart {
  std::string owner_id, parent_id, description;
  std::vector<Tag> tags;
  uint64_t volume_size = 0;        // bytes, a multiple of kDirectBlockSize
  int64_t timeout_ms = 60 * 60 * 1000;
};

struct DirectOptions {
  std::string runner_id;  // the catalog rows' runner: this process
  Clock* clock = Clock::Real();
  int64_t lease_heartbeat_ms = 60 * 1000;
  bool background = true;  // a thread expires overdue snapshots and renews leases
};

class DirectSnapshots {
 public:
  DirectSnapshots(Repository* repo, Catalog* catalog, DirectOptions options);
  // Stops the thread; every snapshot still pending ends `error` (the service stopped).
  ~DirectSnapshots();
  DirectSnapshots(const DirectSnapshots&) = delete;
  DirectSnapshots& operator=(const DirectSnapshots&) = delete;

  // Inserts the pending row and the lease. InvalidArgument: the store's block size is not
  // 512 KiB, the size is not a positive multiple of it, or the parent is smaller than the new
  // volume allows; the parent must be a completed snapshot in the store (NotFound otherwise).
  Result<SnapshotRecord> Start(const DirectStart& request);
  // Writes block index of pending snapshot id: NotFound when it is not a pending snapshot of
  // this process; InvalidArgument when data is not one block, the index is outside the
  // volume, or SHA-256(data) is not sha256 (nothing is stored then). Durable on success.
  Status PutBlock(const std::string& id, uint64_t index, std::span<const uint8_t> data, const Digest& sha256);
  // Completes id: InvalidArgument (and it stays pending) when changed_blocks is not the number
  // of distinct blocks written, or linear (SHA-256 of the written blocks' SHA-256 digests,
  // concatenated in index order) does not match. On a store failure the snapshot ends `error`.
  Result<SnapshotRecord> Complete(const std::string& id, uint64_t changed_blocks, const std::optional<Digest>& linear);
  // Ends `error` every pending snapshot whose timeout has passed; returns how many.
  size_t ExpireOverdue();
  // Renews the leases of the pending snapshots (the background thread does it every heartbeat).
  void RenewLeases();
  // Whether id is pending here, and how many blocks it has (0 when not).
  uint64_t PendingBlockCount(const std::string& id);
  // A reader of a completed snapshot's blocks (GetSnapshotBlock), shared by concurrent calls:
  // the readers of the last kReaders snapshots read stay open, so a download reads the root
  // once. A root never changes; the caller checks the catalog first (a deleted snapshot is not
  // read). NotFound when the store has no root for id.
  static constexpr size_t kReaders = 32;
  Result<std::shared_ptr<SnapshotBlockReader>> Reader(const std::string& id);

 private:
  struct Written {
    Digest chunk{};   // zero: an all-zero block (a hole)
    Digest sha256{};  // what the client sent
  };
  struct Pending {
    SnapshotRecord record;
    std::optional<ManifestMeta> parent;
    uint64_t block_count = 0;
    int64_t deadline_ms = 0;
    std::unique_ptr<Repository::Writer> writer;
    std::shared_mutex put_mu;  // shared: a PutChunk; exclusive: Commit, completion
    std::mutex commit_mu;      // one Commit at a time
    std::mutex mu;
    uint64_t put_seq = 0, committed_seq = 0;  // guarded by mu / commit_mu
    bool closed = false;                       // guarded by put_mu
    std::map<uint64_t, Written> written;       // guarded by mu
    uint64_t new_chunks = 0, stored_bytes = 0;  // guarded by mu
  };
  std::shared_ptr<Pending> Find(const std::string& id);
  // Ends p `error` with message and drops it (its lease goes; GC may take its chunks). Unless
  // force, a snapshot already closed (a completion under way) is left to that completion.
  void Fail(const std::shared_ptr<Pending>& p, const std::string& message, bool force = false);
  Result<ManifestMeta> Publish(Pending& p);
  void Loop();

  Repository* repo_;
  Catalog* catalog_;
  DirectOptions opt_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Pending>> pending_;  // guarded by mu_
  bool stopping_ = false;  // guarded by mu_
  std::condition_variable cv_;
  std::thread thread_;
  std::mutex readers_mu_;
  std::vector<std::pair<std::string, std::shared_ptr<SnapshotBlockReader>>> readers_;  // newest last; readers_mu_
};

// SHA-256 of the written blocks' digests concatenated in index order (LINEAR aggregation).
Digest LinearChecksum(const std::vector<Digest>& digests_in_index_order);

}  // namespace snapvol
