// RollbackTasks: the one domain operation that rolls a volume back in place to a snapshot, as
// a task (EC2's ReplaceRootVolumeTask) the API, the CLI and restore requests share. Start
// checks the rules (a registered volume, or a managed one with hooks; detached, or its instance marked
// stopped, unless forced; a block device that can be opened exclusively; a completed
// snapshot no larger than the volume), takes a safety snapshot of the volume through the
// snapshot jobs unless told not to, records the task `pending` and queues it. One runner
// waits for the safety snapshot, then runs VolumeRollback, reporting progress into the task.
// A MANAGED volume is rolled back the same way through ManagedRollbackHooks (set by the
// layer that owns managed volumes): its NBD connections are ended and kept out for the
// rollback, and with its changed-block tracking only the blocks that may differ from the
// target are compared (engine/rollback_plan.h); the task's reason says which way was taken.
// bytesRead and bytesWritten count the whole task, over resumes.
// On a shared catalog a volume another host holds is rolled back by that host: Start records
// the task and queues it for that host (its runner), whose ClaimQueued takes it; no host writes
// a volume another host holds (docs/multi-host.md part 3).
//
// States: pending → in-progress → succeeded | failed (reason). A failed rollback marks the
// volume `error` with the reason (it may be partly rolled back: never silently); a later
// successful rollback clears that. A task the daemon's stop interrupts stays in-progress and
// Resume (at the next start) runs it again: the rollback is idempotent, so it picks up where
// it stopped. A task whose safety snapshot did not complete fails without touching the volume.
// Thread-safety: all methods may be called from many threads.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "catalog/catalog.h"
#include "engine/managed_root_replacement.h"
#include "engine/rollback_plan.h"
#include "engine/snapshot_jobs.h"
#include "engine/volume_rollback.h"

namespace snapvol {

struct RollbackTaskRequest {
  std::string account_id;   // the volume's account
  std::string volume_id;
  std::string snapshot_id;
  std::string instance_id;  // as asked (CreateReplaceRootVolumeTask); '' for a volume by id
  bool safety_snapshot = true;
  bool force = false;          // roll back even though the volume is in use
  std::string reason;          // why (kept in the task, said in the audit log)
  bool delete_replaced = false;
  std::string client_token;
  std::string requested_by;
  std::vector<Tag> tags;
};

// What the rollback of a managed volume needs from the layer above (managed/managed_rollback.h
// and the daemon). Without open, managed volumes are refused.
struct ManagedRollbackHooks {
  // The volume opened for rewriting through its one ManagedVolume (so CBT sees the writes).
  std::function<Result<std::unique_ptr<RewritableVolume>>(const VolumeRecord&)> open;
  // Its CBT map now (nullopt: not trusted). Asked after its connections ended.
  std::function<std::optional<VolumeTracking>(const VolumeRecord&)> tracking;
  // Ends the volume's NBD connections and refuses new ones until admit; may be empty.
  std::function<Status(const std::string& volume_id)> end_connections;
  std::function<void(const std::string& volume_id)> admit;
};

class RollbackTasks {
 public:
  // jobs takes the safety snapshots (not owned). runner_id names this process in task rows.
  RollbackTasks(Repository* repo, Catalog* catalog, ThreadPool* pool, SnapshotJobs* jobs, std::string runner_id,
                Clock* clock = Clock::Real());
  ~RollbackTasks();  // Shutdown()
  RollbackTasks(const RollbackTasks&) = delete;
  RollbackTasks& operator=(const RollbackTasks&) = delete;

  // Opens a volume for rewriting; FileVolume::Open unless a test says otherwise. Set before Start.
  std::function<Result<std::unique_ptr<RewritableVolume>>(const VolumeRecord&)> open_volume;

  // Checks the rules, takes the safety snapshot and queues the task; returns it as recorded.
  // kNotFound (volume, snapshot); kInvalidArgument (a snapshot larger than the volume, or not
  // completed); kInvalidArgument for a managed volume without `managed` hooks; kConflict when the
  // volume is in use (attached to a running instance without force, a busy block device, or
  // another rollback of it not ended).
  // A volume another host holds (Catalog::HostElsewhere) is routed: the task is recorded alike
  // (same ids, same answer), its safety snapshot is routed by the snapshot jobs, and its runner
  // is QueuedRunner(that host), which claims it (ClaimQueued); the volume's path is not opened
  // here.
  Result<ReplaceRootVolumeTaskRecord> Start(const RollbackTaskRequest& request);

  // Claims every task queued for host_id (this process's host) one at a time
  // (Catalog::ClaimReplaceRootVolumeTask) and runs each as a local one, after the tasks already
  // queued here. Returns the tasks claimed. A failed claim → its error when nothing was claimed
  // (else what was claimed; the next call tries again). After Shutdown claims nothing: unclaimed
  // tasks stay queued for this host's next start.
  Result<std::vector<ReplaceRootVolumeTaskRecord>> ClaimQueued(const std::string& host_id);

  // Rolls managed volumes back in place. Set before Start.
  ManagedRollbackHooks managed;

  // Replaces a managed root volume (engine/managed_root_replacement.h) set before any task is
  // queued; without it such tasks wait. Not owned.
  ManagedRootReplacement* managed_roots = nullptr;
  // Records a managed root replacement `task` (pending, its replacement volume made) and
  // queues it; the runner hands it to managed_roots. kConflict while another task of the
  // volume or the instance has not ended.
  Result<ReplaceRootVolumeTaskRecord> StartReplacement(ReplaceRootVolumeTaskRecord task);

  // Whether a task's runner (another process, possibly of another host sharing the catalog)
  // may still be running it: Resume leaves such tasks to it. Unset: every task is resumed.
  std::function<bool(const std::string& runner)> runner_alive;
  // At start: queues every pending or in-progress task again (they resume; one whose safety
  // snapshot never completed fails with the reason), except those another live runner holds
  // (runner_alive), those queued for a host (claimed by ClaimQueued) and those of volumes
  // another host holds (that host resumes them); a managed volume's connections are ended at
  // once, so no client writes to it before its task runs. Returns how many were queued.
  Result<size_t> Resume();

  // Stops: a running rollback stops between batches and stays in-progress (Resume continues
  // it at the next start); queued tasks stay as they are. Joins the runner.
  void Shutdown();

  // Waits until no task is queued or running (tests).
  void WaitIdle();

 private:
  // open_volume, or managed.open for a managed volume.
  Result<std::unique_ptr<RewritableVolume>> OpenVolume(const VolumeRecord& v);
  void RunnerLoop();
  void Run(ReplaceRootVolumeTaskRecord task);
  // Ends task in failure with why, marking its volume `error` when it may have been changed.
  void Fail(ReplaceRootVolumeTaskRecord& task, const std::string& why, bool volume_touched);

  Repository* repo_;
  Catalog* catalog_;
  ThreadPool* pool_;
  SnapshotJobs* jobs_;
  std::string runner_id_;
  Clock* clock_;

  // Held by Start from its check that no rollback of the volume is unfinished to its insert,
  // so two Starts for one volume cannot both pass the check.
  std::mutex start_mu_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<ReplaceRootVolumeTaskRecord> queue_;  // guarded by mu_
  bool running_ = false;                           // a task is being run; guarded by mu_
  bool stopping_ = false;                          // guarded by mu_
  std::atomic<bool> cancel_{false};
  std::thread runner_;
};

}  // namespace snapvol
