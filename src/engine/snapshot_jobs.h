// SnapshotJobs: runs snapshots in the background for the daemon. A request inserts a
// `pending` catalog row at once (its StartTime is the instant the request was accepted) and
// queues a job; a fixed number of runners take jobs round-robin between accounts, so one
// team's hundred volumes do not starve another's one. Progress reaches the catalog as the job
// runs; the row ends `completed` or `error` with a reason.
// Thread-safety: all methods may be called from many threads.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "catalog/catalog.h"
#include "core/events.h"
#include "engine/freeze_hooks.h"
#include "engine/snapshot_engine.h"
#include "volume/block_source.h"

namespace snapvol {

// What a job reads: a point-in-time view of a managed volume with its changed-block map, or of a
// registered one (engine/registered_sources.h), with what it guarantees said plainly.
struct PreparedSource {
  std::shared_ptr<BlockSource> source;          // the volume as of the cut
  std::function<bool(uint64_t)> maybe_changed;  // empty: read and compare every block
  std::function<void(bool completed)> on_done;  // called once, when the job ends either way
  // The snapshot's aws:snapvol:consistency and aws:snapvol:changed-blocks tags (kConsistency… labels of
  // volume/cut_sources.h, then any note). Empty: derived from source->point_in_time() and
  // maybe_changed.
  std::string consistency, changed_blocks;
};

// Adds the aws:snapvol:consistency and aws:snapvol:changed-blocks tags that say how snapshot `tags`
// belongs to was taken from p (p.source null: the volume's file read while it runs).
void AddSourceTags(const PreparedSource& p, bool has_parent, std::vector<Tag>* tags);

// A running snapshot's progress is written to the catalog each time it enters a new step of
// kProgressStepPercent points, never more often: each write is a catalog write transaction,
// and on a shared catalog every host's writes take turns (docs/scale.md). Returns the percent to
// write now, given the last one written (0 when none yet) and the percent done (capped at 99:
// 100% is written by the completion), or nullopt.
inline constexpr int kProgressStepPercent = 5;
std::optional<int> ProgressToWrite(int last_written, int percent);

struct SnapshotJobRequest {
  VolumeRecord volume;
  std::string description;
  std::vector<Tag> tags;
  int64_t start_time_ms = 0;
  bool full = false;  // ignore the parent
};

// The volumes of one instance are cut at one instant only when one host holds them all: no cut
// across hosts is proven (docs/multi-host.md part 3). kInvalidArgument naming each host (its
// name, or its id when it has no row; "no host" for a volume not yet claimed) with its volumes
// when `requests` span more than one; OK otherwise. Reads only; SnapshotJobs::Start checks it
// before it writes anything, and the API asks first to answer InvalidParameterCombination.
Status CheckCutOnOneHost(Catalog& catalog, const std::vector<SnapshotJobRequest>& requests,
                         const std::string& instance_id);

// One volume's cut: the snapshot it is for and the parent it will be incremental to.
struct CutRequest {
  VolumeRecord volume;
  std::string snapshot_id, parent_id;
};

// Releases what cuts hold (on_done(false)): a set of cuts that failed as a whole.
void ReleaseCuts(std::vector<std::optional<PreparedSource>>& cuts);

// Where jobs read volumes that are not plain files (managed volumes). Start cuts all the volumes
// of one call with PrepareAll, so they are snapshots of one instant.
class SourceProvider {
 public:
  virtual ~SourceProvider() = default;
  // Holds off writes to these volumes for as long as the returned handle lives.
  virtual Result<std::shared_ptr<void>> HoldWrites(const std::vector<VolumeRecord>& volumes) = 0;
  // REQUIRES HoldWrites held. The point-in-time source of snapshot_id (parent: parent_id), or
  // nullopt when the job should read volume.path itself.
  virtual Result<std::optional<PreparedSource>> Prepare(const VolumeRecord& volume, const std::string& snapshot_id,
                                                        const std::string& parent_id) = 0;
  // The cuts of all of cuts, in their order, at one instant. All or nothing: on error the cuts
  // already made are released. The default holds every volume's writes and prepares each under
  // the hold; a provider that can cut several volumes in one step (QEMU's transactions) says so
  // here.
  virtual Result<std::vector<std::optional<PreparedSource>>> PrepareAll(const std::vector<CutRequest>& cuts);
};

class SnapshotJobs {
 public:
  // runners: how many snapshots run at once. runner_id names this process in catalog rows.
  const std::string& runner_id() const { return runner_id_; }
  SnapshotJobs(Repository* repo, Catalog* catalog, ThreadPool* pool, std::string runner_id,
               size_t runners = 2, Clock* clock = Clock::Real());
  ~SnapshotJobs();  // Shutdown()
  SnapshotJobs(const SnapshotJobs&) = delete;
  SnapshotJobs& operator=(const SnapshotJobs&) = delete;

  // Managed volumes are read through provider (not owned; it must outlive the jobs).
  void SetSourceProvider(SourceProvider* provider) { provider_ = provider; }
  // Told of every snapshot that ends in error (kEventSnapshotFailed), except those the service's
  // own stop cut short (the scheduler retries those). Not owned; set before the first Start.
  void SetEventSink(EventSink* events) { events_ = events; }

  // How freeze hooks run and where their runs are reported (RealHookCommandRunner and nowhere
  // by default). Set before the first Start.
  void SetHookRunner(HookCommandRunner run, HookReporter report) {
    hook_runner_ = std::move(run);
    hook_reporter_ = std::move(report);
  }

  // Inserts the pending rows and queues one job per request, all or nothing. A request whose
  // volume another host holds (its host_id is not the catalog's LocalHost) is routed: its row
  // is inserted alike, with runner QueuedRunner(that host), and queued for that host in the
  // catalog (Catalog::EnqueueSnapshotJob, an instance's cut as one job) in the same
  // transaction; that host's RunQueued runs its hooks and cut. Returns the
  // records as inserted. Their content is of the instant of this call. With instance_id, the
  // volumes must live on one host (CheckCutOnOneHost; refused before anything is written).
  // instance_id (optional) names the instance whose volumes these are, snapshotted together:
  // its freeze hooks, if it has any, run around the cut (engine/freeze_hooks.h): the
  // pre-command before it, in this thread and outside every lock; then, when it failed and the
  // hooks say "fail", the rows are inserted `error` with the reason and no data is taken (and
  // returned, not an error); otherwise the cut, and the snapshots carry kConsistencyTag. The
  // post-command runs once the pre-command has been attempted, whatever happens next: right
  // after the cut when every volume was cut point in time (managed volumes), or, when a job
  // reads its volume live (a registered file or device without a cut of its own) and the
  // pre-command succeeded, once the last such job has ended, so the volume stays frozen while
  // it is read.
  //
  // fence (optional) is called inside the write transaction that inserts the rows (and the
  // queue rows of routed ones), before anything is written: an error from it rolls the
  // transaction back, releases the cuts and is returned, so nothing is written and nothing
  // runs. The lifecycle scheduler passes its cluster lease check (Catalog::CheckClusterLease):
  // as every write transaction holds the catalog's write lock, no other host can take the lease
  // between the check and the commit. Freeze hooks and cuts (above) come before it.
  using StartFence = std::function<Status()>;
  Result<std::vector<SnapshotRecord>> Start(const std::vector<SnapshotJobRequest>& requests,
                                            const std::string& instance_id = "", const StartFence& fence = {});

  // Runs a job this process claimed from the catalog's queue (Catalog::ClaimSnapshotJob with
  // runner_id(); docs/multi-host.md part 3): the pending rows another host wrote for volumes
  // held here go through what Start does from the cut on: the instance's freeze hooks, the cut
  // (PrepareAll), the tags that say how each was cut, the rows' runner set to runner_id(), the
  // job removed from the queue (those three in one transaction), then the runners. A
  // snapshot that is no longer pending for the queue is left alone. When anything fails
  // part-way the job's snapshots end `error` with the reason and the job leaves the queue.
  // kConflict when job was not claimed by runner_id(); otherwise the error of a catalog write
  // that failed.
  Status RunQueued(const SnapshotJobRecord& job);

  // Stops taking jobs, cancels running ones (they end `error`: "the daemon stopped"), marks
  // queued ones `error` too, and joins the runners.
  void Shutdown();

  size_t queued() const;

 private:
  struct Job {
    SnapshotRecord record;
    SnapshotJobRequest request;
    PreparedSource prepared;
    // Held while the job reads its volume live: the instance's post-command (thaw) runs when
    // the last holder lets go (~FreezeSession).
    std::shared_ptr<FreezeSession> freeze;
    // The host the snapshot is queued for ('': run here).
    std::string routed_to;
  };
  // The host that must take a snapshot of volume: '' for this one (RunQueued there).
  std::string RoutedTo(const VolumeRecord& volume) const;
  // The freeze hooks (with instance_id) and the cut of the jobs to run here (routed_to ''),
  // which then hold their sources and the tags that say how they were cut. nullopt when cut;
  // the hooks' failure when they say "fail" (nothing cut); an error when the cut failed (cuts
  // released). check_quota: refuse before freezing when the rows would not fit.
  Result<std::optional<std::string>> CutJobs(std::vector<Job>& jobs, const std::string& instance_id,
                                             bool check_quota);
  // The rows of jobs whose pre-command failed with hooks that say "fail": inserted `error`.
  // fence as in Start.
  Result<std::vector<SnapshotRecord>> InsertFailed(std::vector<Job>& jobs, const std::string& why,
                                                   const StartFence& fence);
  void RaiseFailed(const SnapshotRecord& rec, const std::string& why);
  static void Done(Job& job, bool completed);
  void RunnerLoop();
  void Run(Job& job);
  bool PopFairLocked(Job* out);  // REQUIRES mu_

  Repository* repo_;
  Catalog* catalog_;
  ThreadPool* pool_;
  std::string runner_id_;
  Clock* clock_;
  SourceProvider* provider_ = nullptr;
  EventSink* events_ = nullptr;
  HookCommandRunner hook_runner_;
  HookReporter hook_reporter_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::deque<Job>> queues_;  // by account; guarded by mu_
  std::string last_account_;                       // round-robin cursor; guarded by mu_
  bool stopping_ = false;                          // guarded by mu_
  std::atomic<bool> cancel_{false};
  std::vector<std::thread> runners_;
};

}  // namespace snapvol
