// DirectSnapshots: snapshots written block by block by a client (the EBS direct APIs'
// StartSnapshot, PutSnapshotBlock and CompleteSnapshot) rather than read from a volume.
//
// A started snapshot is a `pending` catalog row (its runner is this process), a journal in the
// catalog (its deadline) and a store lease (GC keeps what it writes). Each block is checked
// against the client's SHA-256 and written as a chunk; a group commit makes the group's chunks
// durable, then journals its blocks (index, chunk id or hole, client SHA-256) in one catalog
// transaction, before PutBlock returns: what was acknowledged is on disk and in the journal.
// Complete takes every block not written from the parent (or a hole), writes the block map
// and publishes the manifest root: from then on it is an ordinary completed snapshot. A
// snapshot not completed within its timeout ends `error`, its lease is removed and its chunks
// are left to GC. Completing or failing a snapshot drops its journal (Catalog::MarkCompleted,
// MarkError).
//
// Restarts: what survives is every acknowledged block (PutSnapshotBlock answered 201), the
// deadline and the parent. When the process stops (cleanly: the destructor hands its pending
// snapshots over; or killed: DataDir's RecoverInterrupted, which settles every pending row
// whose runner is gone, hands over those with a journal instead of ending them `error`), the
// next process's Adopt resumes them: the client carries on with PutSnapshotBlock and
// CompleteSnapshot as if nothing happened. What does not survive: a PutSnapshotBlock in
// flight (unanswered; the client retries it), a snapshot past its deadline by then (ends
// `error` saying so), and one whose journaled chunks GC took while no process renewed its
// lease, or whose parent was deleted meanwhile (ends `error` saying which; never `completed`
// with a block missing). A snapshot started by a build without the journal ends `error`.
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
  // Stops the thread; every snapshot still pending is handed over (its runner cleared) for
  // the next process's Adopt: it stays pending, with what was acknowledged journaled.
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
  // Resumes the pending snapshots handed over by a process that stopped (journal rows whose
  // runner is ''; DataDir::Open hands over those of a dead process): claims each, re-takes its
  // lease, checks that its parent's root and every journaled chunk are still in the store and
  // rebuilds its written blocks from the journal, keeping its deadline. One past its deadline
  // or missing a chunk or its parent ends `error` saying so. Returns how many were resumed; on
  // a store or catalog error the snapshot being adopted is handed back (the background thread
  // tries again every lease heartbeat) and the error returned.
  Result<size_t> Adopt();
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
  struct Staged {  // a block put, waiting for its group commit
    uint64_t seq = 0, index = 0;
    Written written;
    uint64_t stored_bytes = 0;  // what its chunk added to the store
    bool chunk = false;         // false: a hole, nothing to commit
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
    std::map<uint64_t, Written> written;       // journaled; guarded by mu
    std::vector<Staged> staged;                // put, not yet journaled, in put order; mu
    uint64_t new_chunks = 0, stored_bytes = 0;  // guarded by mu
  };
  std::shared_ptr<Pending> Find(const std::string& id);
  // Ends p `error` with message and drops it (its lease goes; GC may take its chunks). Unless
  // force, a snapshot already closed (a completion under way) is left to that completion.
  void Fail(const std::shared_ptr<Pending>& p, const std::string& message, bool force = false);
  Result<ManifestMeta> Publish(Pending& p);
  // Adopt for one handed-over snapshot (claimed already). Error: hand it back.
  Status AdoptOne(const DirectJournalRecord& journal);
  static std::string TimeoutMessage(const Pending& p);
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

// A digest as the catalog's journal holds it (32 raw bytes).
std::string DigestBytes(const Digest& d);

// SHA-256 of the written blocks' digests concatenated in index order (LINEAR aggregation).
Digest LinearChecksum(const std::vector<Digest>& digests_in_index_order);

}  // namespace snapvol
