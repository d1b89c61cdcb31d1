// Managed volumes: volume files that snapvol owns and serves (over NBD), so that it sees every
// write. That gives
//  - changed-block tracking (CBT): a bitmap of blocks written since the snapshot it is
//    relative to (its base), persisted in PATH.cbt. It is trusted only after a clean shutdown
//    (the file says "clean"; it is marked dirty before the first write is served), so after a
//    crash the next snapshot reads and compares everything;
//  - lazy restore: a volume created from a snapshot is usable at once. Its PATH.load file
//    names the snapshot and holds one state byte per block; the blocks a read or write needs
//    that are not loaded yet are fetched from the store then, together (one batch of reads:
//    in format 2 a ranged read per run of neighbouring chunks), and a background copy
//    (Hydrate) fills the rest. A block is marked loaded on disk only after its data is
//    durable, and a block a client is about to write is always loaded and marked first, so
//    neither a crash nor the copy can bring snapshot data back over a client's write. When
//    every block is loaded PATH.load is removed. The code is in lazy_load.cc;
//  - point-in-time snapshots: Cut() freezes the volume's content at once: writes wait for the
//    cut, and afterwards a block that is about to be overwritten while the snapshot still
//    needs it is first copied aside (copy-before-write, to PATH.cow-SNAPSHOT), so the snapshot
//    reads the volume as it was at the cut however long it takes.
// Several volumes are cut at one instant (an instance's disks) by holding all their write
// barriers (CutGroup) while cutting each.
//
// Thread-safety: all methods may be called from many threads.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <thread>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "engine/snapshot_engine.h"
#include "engine/snapshot_jobs.h"
#include "nbd/nbd_server.h"
#include "volume/block_source.h"

namespace snapvol {

class ManagedVolume;

// Writers share it; a cut takes it alone. Unlike std::shared_mutex on glibc, a waiting cut
// holds off new writers, so a steady stream of writes cannot keep a cut (and the other volumes
// of its group, already held) waiting.
class WriteBarrier {
 public:
  void lock_shared() {
    std::unique_lock l(mu_);
    cv_.wait(l, [&] { return !cutting_ && waiting_cuts_ == 0; });
    ++writers_;
  }
  void unlock_shared() {
    std::lock_guard l(mu_);
    if (--writers_ == 0) cv_.notify_all();
  }
  void lock() {
    std::unique_lock l(mu_);
    ++waiting_cuts_;
    cv_.wait(l, [&] { return !cutting_ && writers_ == 0; });
    --waiting_cuts_;
    cutting_ = true;
  }
  void unlock() {
    std::lock_guard l(mu_);
    cutting_ = false;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int writers_ = 0, waiting_cuts_ = 0;  // guarded by mu_
  bool cutting_ = false;                // guarded by mu_
};

class ManagedVolume : public nbd::Export, public std::enable_shared_from_this<ManagedVolume> {
 public:
  // Opens the volume file and its CBT file. block_size is the snapshot store's block size.
  // repo: where a lazily restored volume (one with a PATH.load) fetches its blocks.
  static Result<std::shared_ptr<ManagedVolume>> Open(const std::string& path, uint32_t block_size,
                                                     Repository* repo = nullptr);
  // Creates PATH (sparse, size bytes) and PATH.load for a lazy restore of snapshot_id.
  static Status CreateFromSnapshot(const std::string& path, uint64_t size, uint32_t block_size,
                                   const std::string& snapshot_id);

  // ---- lazy restore ----
  bool loading() const { return loading_.load(); }
  // Blocks loaded so far, in percent (100 when not loading).
  int load_percent() const;
  // Copies every block not yet loaded from the snapshot, in parallel on pool, until done or
  // cancelled; progress gets the percentage now and then. On success PATH.load is removed.
  Status Hydrate(ThreadPool* pool, const std::atomic<bool>* cancel, const std::function<void(int)>& progress);
  ~ManagedVolume() override;

  // ---- nbd::Export ----
  uint64_t size() const override { return size_; }
  Status Read(uint64_t offset, std::span<uint8_t> out) override;
  Status Write(uint64_t offset, std::span<const uint8_t> data, bool fua) override;
  Status Flush() override;
  Status Trim(uint64_t offset, uint64_t length) override;
  Status WriteZeroes(uint64_t offset, uint64_t length, bool may_punch) override;
  Result<std::vector<nbd::Extent>> BlockStatus(uint64_t offset, uint64_t length) override;

  // ---- snapshots ----
  // Holds off writes (in flight ones finish first) until UnlockWrites: the instant of a cut.
  void LockWrites() { barrier_.lock(); }
  void UnlockWrites() { barrier_.unlock(); }
  // REQUIRES LockWrites held. Freezes the content for snapshot snapshot_id whose parent is
  // parent_id (empty: none); the CBT bitmap is handed over when it is trusted and relative to
  // that parent.
  Result<PreparedSource> Cut(const std::string& snapshot_id, const std::string& parent_id);

  // Writes the CBT file as clean (call when no more writes come: at shutdown).
  Status Close();

  // Bytes snapshots have read from the volume file (for the incremental-cost checks).
  uint64_t snapshot_bytes_read() const { return snapshot_bytes_read_; }
  bool cbt_trusted() const;

  // ---- in-place rollback (managed/managed_rollback.h) ----
  // The CBT map now: the snapshot it is relative to and one byte per block written since.
  // nullopt when it is not trusted. The base may be a snapshot still pending (the caller
  // checks that it completed).
  struct Tracking {
    std::string base;
    std::vector<uint8_t> changed;
  };
  std::optional<Tracking> ChangedBlocks() const;
  // Snapshots cut from the volume whose jobs have not ended yet (their last step follows the
  // catalog's `completed`).
  size_t pending_cuts() const {
    std::lock_guard lock(mu_);
    return cuts_.size();
  }
  // Where data or a hole starts at or after offset (a volume still loading is all data).
  Result<uint64_t> NextData(uint64_t offset);
  Result<uint64_t> NextHole(uint64_t offset);

 private:
  class Freeze;
  class FillTarget;
  ManagedVolume(std::shared_ptr<nbd::FileExport> file, uint32_t block_size, std::string path);
  Status OpenLoadMap(Repository* repo);
  // Loads the blocks of a range a client is about to read, or with durable=true write (then
  // loaded and marked first). With overwritten, blocks the write covers whole are not fetched
  // but listed (state 3) for WriteDone.
  Status EnsureLoaded(uint64_t offset, uint64_t length, bool durable,
                      std::vector<uint64_t>* overwritten = nullptr);
  // REQUIRES load_mu_. Loads blocks (ascending, none loaded yet) from the snapshot with one
  // batch of reads and writes them to the file; they become state 2 (filled, not marked).
  Status FetchBlocksLocked(std::span<const uint64_t> blocks);
  // After a write: its whole blocks are durable, then marked loaded (or, if it failed, to be
  // loaded from the snapshot again).
  Status WriteDone(const std::vector<uint64_t>& overwritten, bool written);
  // REQUIRES load_mu_. Makes every filled-but-unmarked block durable and marks it.
  Status PersistLoadedLocked();
  Status MarkLoadedLocked(uint64_t block);
  Status FinishLoadLocked();  // REQUIRES load_mu_: every block loaded and marked
  Status LoadCbt();
  Status SaveCbt(bool clean);
  // REQUIRES barrier_ held shared. Preserves the blocks of [offset, offset+length) for every
  // freeze that still needs them, and marks them changed.
  Status BeforeWrite(uint64_t offset, uint64_t length);
  void EndFreeze(const std::string& snapshot_id, bool completed);

  std::shared_ptr<nbd::FileExport> file_;  // the live data
  uint64_t size_;
  uint32_t block_size_;
  std::string path_;
  WriteBarrier barrier_;  // writers shared, cuts exclusive

  mutable std::mutex mu_;  // guards the fields below
  std::vector<uint8_t> bits_;  // CBT: one byte per block (written since base_)
  bool trusted_ = false;
  std::string base_;  // the snapshot the bitmap is relative to
  struct CutRecord {
    std::vector<uint8_t> bits;  // what the cut took
    std::string prior_base;
    bool prior_trusted;
  };
  std::map<std::string, CutRecord> cuts_;                 // pending snapshots
  std::map<std::string, std::shared_ptr<Freeze>> freezes_;  // pending snapshots' frozen views
  bool closed_ = false;
  std::atomic<uint64_t> snapshot_bytes_read_{0};

  // Lazy restore state.
  std::atomic<bool> loading_{false};
  mutable std::mutex load_mu_;  // guards the fields below
  std::condition_variable load_cv_;  // a block left state 3
  std::unique_ptr<SnapshotBlockReader> reader_;
  Repository* repo_ = nullptr;
  std::string load_snapshot_;
  int load_fd_ = -1;           // PATH.load
  uint64_t load_header_ = 0;   // where the state bytes start in PATH.load
  // per block: 0 not loaded, 1 loaded and marked, 2 filled but not marked, 3 being replaced
  // by a client write that covers it whole
  std::vector<uint8_t> load_;
  uint64_t loaded_blocks_ = 0;
  uint64_t unmarked_bytes_ = 0;
};

// The daemon's open managed volumes, by id: NBD connections and snapshots of one volume share
// one ManagedVolume.
class VolumeRegistry {
 public:
  struct Hooks {
    std::function<void(const std::string& volume_id, int percent)> load_progress;
    std::function<void(const std::string& volume_id, const std::string& why)> load_failed;
  };
  // repo and pool: where lazily restored volumes load from, and with what.
  VolumeRegistry(uint32_t block_size, Repository* repo = nullptr, ThreadPool* pool = nullptr, Hooks hooks = {})
      : block_size_(block_size), repo_(repo), pool_(pool), hooks_(std::move(hooks)) {}
  ~VolumeRegistry() { CloseAll(); }
  // Opens (once) the volume; a lazily restored one starts (or resumes) its background copy.
  Result<std::shared_ptr<ManagedVolume>> Get(const std::string& volume_id, const std::string& path);
  // Load progress of a volume being restored lazily; nullopt when it is not loading.
  std::optional<int> LoadPercent(const std::string& volume_id);
  // Stops the background copies and closes every volume (CBT files written clean). Call
  // after NBD and the snapshot jobs stop.
  void CloseAll();
  // Forgets a volume (deleted): REQUIRES no connection uses it.
  void Forget(const std::string& volume_id);

 private:
  uint32_t block_size_;
  Repository* repo_;
  ThreadPool* pool_;
  Hooks hooks_;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<ManagedVolume>> open_;  // guarded by mu_
  std::vector<std::thread> copiers_;                            // guarded by mu_
};

// Snapshot jobs read managed volumes through this: point-in-time cuts with their CBT maps.
class ManagedSourceProvider : public SourceProvider {
 public:
  explicit ManagedSourceProvider(VolumeRegistry* registry) : registry_(registry) {}
  Result<std::shared_ptr<void>> HoldWrites(const std::vector<VolumeRecord>& volumes) override;
  Result<std::optional<PreparedSource>> Prepare(const VolumeRecord& volume, const std::string& snapshot_id,
                                                const std::string& parent_id) override;

 private:
  VolumeRegistry* registry_;
};

// Holds the write barriers of several volumes (in a fixed order, so two groups never deadlock)
// for as long as it lives: every Cut made meanwhile is of the same instant.
class CutGroup {
 public:
  explicit CutGroup(std::vector<std::shared_ptr<ManagedVolume>> volumes);
  ~CutGroup();
  CutGroup(const CutGroup&) = delete;
  CutGroup& operator=(const CutGroup&) = delete;

 private:
  std::vector<std::shared_ptr<ManagedVolume>> volumes_;
};

}  // namespace snapvol
