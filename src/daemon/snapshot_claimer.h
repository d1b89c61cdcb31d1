// SnapshotClaimer: takes the snapshots other hosts queued for this one (docs/multi-host.md part
// 3). A request for a volume this host holds may reach any host; that host writes the pending
// rows and queues a job for this one in the catalog (SnapshotJobs::Start). The claimer looks
// at the queue every interval on a thread of its own, and at once when PostgreSQL announces a
// job (Catalog::WaitForSnapshotJobs, LISTEN/NOTIFY); it claims this host's jobs one at a time
// (Catalog::ClaimSnapshotJob) and runs each through SnapshotJobs::RunQueued. A failed claim is
// reported to on_failure and counted in snapvol_snapshot_claim_failures_total, never fatal.
// Start first puts back the jobs an earlier process of this host claimed and did not start.
// Stop leaves unclaimed jobs queued: the host takes them when it is back. With SetRollbacks,
// each pass also claims the rollback tasks queued for this host (RollbackTasks::ClaimQueued),
// after the snapshot jobs (a task waits for its safety snapshot, which is such a job). With
// SetVolumeDeletions, it then claims the deletions of this host's volumes that other hosts
// accepted (Catalog::ClaimVolumeDeletion) and runs each through RunClaimedVolumeDeletion
// (managed/volume_deletion.h). With SetEachPass, a pass woken by PostgreSQL (a job, a deletion
// or a detach announced), the first, and every kEachPassPolls-th pass otherwise end with that
// call (the daemon ends the NBD connections of volumes detached on another host). With
// SetVolumeCreations, each pass also claims the volumes other hosts placed on this one
// (Catalog::ClaimVolumeCreation) and makes each (Ec2Service::MakeClaimedVolume); Start puts back
// the creations an earlier process claimed and did not finish.
// Thread-safety: Start from one thread, before Stop; Stop from any thread, any number of times; the catalog and the jobs are thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "catalog/catalog.h"
#include "core/clock.h"
#include "core/status.h"
#include "engine/rollback_tasks.h"
#include "engine/snapshot_jobs.h"
#include "managed/volume_deletion.h"

namespace snapvol {

class SnapshotClaimer {
 public:
  // catalog, jobs and clock must outlive this object. host_id: this host's (DIR/host-id).
  // on_claimed(job): told of each job claimed, before it is run (for the log).
  // on_failure(job_id or '', error): a claim or a job that could not be started.
  SnapshotClaimer(Catalog* catalog, SnapshotJobs* jobs, Clock* clock, std::string host_id, int64_t interval_ms,
                  std::function<void(const SnapshotJobRecord&)> on_claimed,
                  std::function<void(const std::string&, const Error&)> on_failure);
  ~SnapshotClaimer();  // Stop()
  SnapshotClaimer(const SnapshotClaimer&) = delete;
  SnapshotClaimer& operator=(const SnapshotClaimer&) = delete;

  // Claims rollback tasks too (not owned; must outlive this object); on_claimed(task) is told of
  // each (for the log). Call before Start.
  void SetRollbacks(RollbackTasks* rollbacks, std::function<void(const ReplaceRootVolumeTaskRecord&)> on_claimed) {
    rollbacks_ = rollbacks;
    on_task_claimed_ = std::move(on_claimed);
  }
  // Claims volume deletions too, run with `with` (its catalog must be this one); on_deleted(volume,
  // outcome) is told of each (for the log). Call before Start.
  void SetVolumeDeletions(VolumeDeletion with, std::function<void(const VolumeRecord&, const Status&)> on_deleted) {
    deletions_ = std::move(with);
    on_volume_deleted_ = std::move(on_deleted);
  }
  // Called after a pass as said above, on the claimer's thread. Call before Start.
  static constexpr int64_t kEachPassPolls = 10;
  void SetEachPass(std::function<void()> each_pass) { each_pass_ = std::move(each_pass); }
  // Claims volume creations too: make(volume, runner) makes each claimed one and records the
  // outcome; on_claimed(volume) is told of each first (for the log). Call before Start.
  void SetVolumeCreations(std::function<Status(const VolumeRecord&, const std::string&)> make,
                          std::function<void(const VolumeRecord&)> on_claimed) {
    make_volume_ = std::move(make);
    on_volume_claimed_ = std::move(on_claimed);
  }
  // Puts back this host's claimed jobs (and volume deletions and creations, with
  // SetVolumeDeletions and SetVolumeCreations) that an earlier process claimed, then starts
  // polling.
  void Start();
  // Stops the thread after the job it is starting, if any (within an interval). Idempotent.
  void Stop();
  // One pass: claims and runs this host's queued jobs (and rollback tasks and volume deletions,
  // with SetRollbacks and SetVolumeDeletions) until none is left or Stop was called. Returns how
  // many were claimed.
  size_t ClaimAll();

 private:
  void Loop();
  bool stopping() {
    std::lock_guard lock(mu_);
    return stopping_;
  }

  Catalog* const catalog_;
  SnapshotJobs* const jobs_;
  Clock* const clock_;
  const std::string host_id_;
  const int64_t interval_ms_;
  std::function<void(const SnapshotJobRecord&)> on_claimed_;
  std::function<void(const std::string&, const Error&)> on_failure_;
  RollbackTasks* rollbacks_ = nullptr;  // SetRollbacks
  std::function<void(const ReplaceRootVolumeTaskRecord&)> on_task_claimed_;
  std::optional<VolumeDeletion> deletions_;  // SetVolumeDeletions
  std::function<void(const VolumeRecord&, const Status&)> on_volume_deleted_;
  std::function<void()> each_pass_;  // SetEachPass
  std::function<Status(const VolumeRecord&, const std::string&)> make_volume_;  // SetVolumeCreations
  std::function<void(const VolumeRecord&)> on_volume_claimed_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  std::once_flag joined_;
  std::thread thread_;
};

}  // namespace snapvol
