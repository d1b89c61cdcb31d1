#include "daemon/snapshot_claimer.h"

#include <chrono>
#include <utility>

#include "core/service_metrics.h"

namespace snapvol {

SnapshotClaimer::SnapshotClaimer(Catalog* catalog, SnapshotJobs* jobs, Clock* clock, std::string host_id,
                                 int64_t interval_ms, std::function<void(const SnapshotJobRecord&)> on_claimed,
                                 std::function<void(const std::string&, const Error&)> on_failure)
    : catalog_(catalog),
      jobs_(jobs),
      clock_(clock),
      host_id_(std::move(host_id)),
      interval_ms_(interval_ms),
      on_claimed_(std::move(on_claimed)),
      on_failure_(std::move(on_failure)) {}

SnapshotClaimer::~SnapshotClaimer() { Stop(); }

void SnapshotClaimer::Start() {
  // A claim this host's earlier process made and never started would otherwise wait forever:
  // its snapshots stay queued for this host, which counts them alive.
  if (auto back = catalog_->UnclaimSnapshotJobs(host_id_); !back) {
    ServiceMetrics().snapshot_claim_failures.With()->Add();
    if (on_failure_) on_failure_("", back.error());
  }
  if (deletions_) {
    if (auto back = catalog_->UnclaimVolumeDeletions(host_id_); !back) {
      ServiceMetrics().snapshot_claim_failures.With()->Add();
      if (on_failure_) on_failure_("", back.error());
    }
  }
  if (make_volume_) {
    if (auto back = catalog_->UnclaimVolumeCreations(host_id_); !back) {
      ServiceMetrics().snapshot_claim_failures.With()->Add();
      if (on_failure_) on_failure_("", back.error());
    }
  }
  thread_ = std::thread([this] { Loop(); });
}

size_t SnapshotClaimer::ClaimAll() {
  size_t claimed = 0;
  while (!stopping()) {
    auto job = catalog_->ClaimSnapshotJob(host_id_, jobs_->runner_id(), clock_->NowMillis());
    if (!job) {
      ServiceMetrics().snapshot_claim_failures.With()->Add();
      if (on_failure_) on_failure_("", job.error());
      break;
    }
    if (!job->has_value()) break;
    ++claimed;
    if (on_claimed_) on_claimed_(**job);
    if (Status st = jobs_->RunQueued(**job); !st) {
      ServiceMetrics().snapshot_claim_failures.With()->Add();
      if (on_failure_) on_failure_((*job)->job_id, st.error());
    }
  }
  while (make_volume_ && !stopping()) {
    auto v = catalog_->ClaimVolumeCreation(host_id_, jobs_->runner_id(), clock_->NowMillis());
    if (!v) {
      ServiceMetrics().snapshot_claim_failures.With()->Add();
      if (on_failure_) on_failure_("", v.error());
      break;
    }
    if (!v->has_value()) break;
    ++claimed;
    if (on_volume_claimed_) on_volume_claimed_(**v);
    if (Status st = make_volume_(**v, jobs_->runner_id()); !st) {
      ServiceMetrics().snapshot_claim_failures.With()->Add();
      if (on_failure_) on_failure_((*v)->volume_id, st.error());
    }
  }
  if (rollbacks_ && !stopping()) {
    auto tasks = rollbacks_->ClaimQueued(host_id_);
    if (!tasks) {
      ServiceMetrics().snapshot_claim_failures.With()->Add();
      if (on_failure_) on_failure_("", tasks.error());
    } else {
      for (const auto& t : *tasks)
        if (on_task_claimed_) on_task_claimed_(t);
      claimed += tasks->size();
    }
  }
  while (deletions_ && !stopping()) {
    auto volume = catalog_->ClaimVolumeDeletion(host_id_, jobs_->runner_id());
    if (!volume) {
      ServiceMetrics().snapshot_claim_failures.With()->Add();
      if (on_failure_) on_failure_("", volume.error());
      break;
    }
    if (!volume->has_value()) break;
    ++claimed;
    Status done = RunClaimedVolumeDeletion(*deletions_, **volume);
    if (on_volume_deleted_) on_volume_deleted_(**volume, done);
  }
  return claimed;
}

void SnapshotClaimer::Loop() {
  std::unique_lock lock(mu_);
  bool woken = true;  // the first pass runs each_pass_ too
  int64_t polls = 0;
  while (!stopping_) {
    lock.unlock();
    ClaimAll();
    // each_pass_ reads the catalog once per volume it looks at: after a wake-up (something
    // changed) and every kEachPassPolls-th poll (a wake-up missed), not every second.
    if (each_pass_ && !stopping() && (woken || ++polls % kEachPassPolls == 0)) each_pass_();
    // On PostgreSQL a job queued for any host wakes this one at once (LISTEN/NOTIFY); the wait
    // still ends every interval, so a notification missed costs at most that. Stop is seen
    // within an interval.
    bool waited = false;
    woken = false;
    if (catalog_->NotifiesSnapshotJobs()) {
      auto woke = catalog_->WaitForSnapshotJobs(interval_ms_);
      waited = woke.has_value();
      woken = woke && *woke;
      if (!woke) {
        ServiceMetrics().snapshot_claim_failures.With()->Add();
        if (on_failure_) on_failure_("", woke.error());
      }
    }
    lock.lock();
    if (!waited) cv_.wait_for(lock, std::chrono::milliseconds(interval_ms_), [this] { return stopping_; });
  }
}

void SnapshotClaimer::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  // The signal thread and the main thread may both stop it: one joins, the other waits for it.
  std::call_once(joined_, [this] {
    if (thread_.joinable()) thread_.join();
  });
}

}  // namespace snapvol
