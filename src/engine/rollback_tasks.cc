#include "engine/rollback_tasks.h"

#include <chrono>

#include "core/ids.h"
#include "engine/qemu_cut_driver.h"

namespace snapvol {
namespace {

bool Ended(const std::string& state) { return state != "pending" && state != "in-progress"; }

}  // namespace

RollbackTasks::RollbackTasks(Repository* repo, Catalog* catalog, ThreadPool* pool, SnapshotJobs* jobs,
                             std::string runner_id, Clock* clock)
    : repo_(repo), catalog_(catalog), pool_(pool), jobs_(jobs), runner_id_(std::move(runner_id)), clock_(clock) {
  open_volume = [](const VolumeRecord& v) -> Result<std::unique_ptr<RewritableVolume>> {
    ASSIGN_OR_RETURN(auto f, FileVolume::Open(v.path));
    return std::unique_ptr<RewritableVolume>(std::move(f));
  };
  runner_ = std::thread([this] { RunnerLoop(); });
}

RollbackTasks::~RollbackTasks() { Shutdown(); }

Result<ReplaceRootVolumeTaskRecord> RollbackTasks::Start(const RollbackTaskRequest& r) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return MakeError(ErrorCode::kConflict, "the service is shutting down", true);
  }
  // One Start at a time: the check that no other rollback of the volume runs and the insert
  // of this one must not interleave with another Start's.
  std::lock_guard start_lock(start_mu_);
  ASSIGN_OR_RETURN(VolumeRecord vol, catalog_->GetVolume(r.volume_id));
  // A volume another host holds is rolled back by that host: the task is recorded here as for
  // a local one and queued for it (its runner), and that host claims it (ClaimQueued). Nothing
  // here opens the volume's path, which names that host's file.
  const std::string routed_to = catalog_->HostElsewhere(vol.host_id);
  if (vol.managed && !managed.open && routed_to.empty())
    return InvalidArgument("volume " + vol.volume_id +
                           " is a managed volume and in-place rollback of managed volumes does not run in this "
                           "process; restore the snapshot into a new volume (CreateVolume) instead");
  if (QemuDisk::Parse(vol.path))
    return MakeError(ErrorCode::kUnsupported,
                     "volume " + vol.volume_id + " is a QEMU disk (" + vol.path +
                         "): snapvol does not write into a running QEMU; restore the snapshot into a file "
                         "(snapvol restore) and point the VM at it");
  ASSIGN_OR_RETURN(SnapshotRecord snap, catalog_->GetSnapshot(r.snapshot_id));
  if (snap.state != SnapshotState::kCompleted)
    return InvalidArgument("snapshot " + snap.snapshot_id + " is not completed");
  if (snap.volume_size_bytes > vol.size_bytes)
    return InvalidArgument("snapshot " + snap.snapshot_id + " (" + std::to_string(snap.volume_size_bytes) +
                           " bytes) is larger than volume " + vol.volume_id + " (" +
                           std::to_string(vol.size_bytes) + " bytes)");
  std::string in_use;
  if (!vol.instance_id.empty()) {
    auto inst = catalog_->GetInstance(vol.instance_id);
    if (!inst || inst->state != "stopped")
      in_use = "volume " + vol.volume_id + " is attached to instance " + vol.instance_id + ", which is running";
  }
  if (!in_use.empty() && !r.force)
    return Conflict(in_use + ": stop the instance (snapvol instance stop " + vol.instance_id +
                    "), detach the volume, or force the rollback");
  // Every unfinished task of the volume, whoever runs it (this process, another host, or a
  // dead runner whose task resumes), would write the same volume.
  ASSIGN_OR_RETURN(auto unfinished, catalog_->ListUnfinishedReplaceRootVolumeTasks());
  for (const auto& t : unfinished)
    if (t.volume_id == vol.volume_id)
      return Conflict("volume " + vol.volume_id + " is already being rolled back by task " + t.task_id);
  // A mounted block device is refused now, while the caller waits, not later in the task (a
  // routed task's host finds it when it runs the task, which then fails saying so).
  if (routed_to.empty()) {
    auto opened = OpenVolume(vol);
    if (!opened) return std::unexpected(opened.error());
    if ((*opened)->size() < snap.volume_size_bytes)
      return InvalidArgument(vol.path + " (" + std::to_string((*opened)->size()) + " bytes) is smaller than snapshot " +
                             snap.snapshot_id + "'s volume (" + std::to_string(snap.volume_size_bytes) + " bytes)");
  }

  ReplaceRootVolumeTaskRecord t;
  t.task_id = NewReplaceRootVolumeTaskId();
  t.account_id = vol.account_id;
  t.instance_id = r.instance_id.empty() ? vol.instance_id : r.instance_id;
  t.volume_id = vol.volume_id;
  t.snapshot_id = snap.snapshot_id;
  t.client_token = r.client_token;
  t.delete_replaced = r.delete_replaced;
  t.force = r.force && !in_use.empty();
  t.reason = t.force ? "forced: " + in_use + (r.reason.empty() ? "" : " (" + r.reason + ")") : "";
  t.requested_by = r.requested_by;
  t.runner = routed_to.empty() ? runner_id_ : QueuedRunner(routed_to);
  t.start_ms = clock_->NowMillis();
  t.tags = r.tags;
  if (r.safety_snapshot) {
    SnapshotJobRequest sr;
    sr.volume = vol;
    sr.description = "Safety snapshot before rolling " + vol.volume_id + " back to " + snap.snapshot_id + " (" +
                     t.task_id + ")";
    sr.tags = {{kReplaceRootVolumeTaskTag, t.task_id}};
    sr.start_time_ms = t.start_ms;
    ASSIGN_OR_RETURN(auto started, jobs_->Start({sr}));
    t.safety_snapshot_id = started.front().snapshot_id;
  }
  RETURN_IF_ERROR(catalog_->InsertReplaceRootVolumeTask(t));
  if (!routed_to.empty()) return t;  // its host claims it
  {
    std::lock_guard lock(mu_);
    queue_.push_back(t);
  }
  cv_.notify_all();
  return t;
}

Result<std::vector<ReplaceRootVolumeTaskRecord>> RollbackTasks::ClaimQueued(const std::string& host_id) {
  std::vector<ReplaceRootVolumeTaskRecord> claimed;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return claimed;  // unclaimed tasks stay queued for this host's return
    }
    auto task = catalog_->ClaimReplaceRootVolumeTask(host_id, runner_id_);
    if (!task) {
      if (claimed.empty()) return std::unexpected(task.error());
      return claimed;  // the next pass tries again
    }
    if (!task->has_value()) return claimed;
    // Claimed: the row names this process. Should it stop before running the task, the task is
    // a dead runner's at the next start, and Resume runs it.
    {
      std::lock_guard lock(mu_);
      queue_.push_back(**task);
    }
    cv_.notify_all();
    claimed.push_back(std::move(**task));
  }
}

Result<ReplaceRootVolumeTaskRecord> RollbackTasks::StartReplacement(ReplaceRootVolumeTaskRecord t) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return MakeError(ErrorCode::kConflict, "the service is shutting down", true);
  }
  std::lock_guard start_lock(start_mu_);
  ASSIGN_OR_RETURN(auto unfinished, catalog_->ListUnfinishedReplaceRootVolumeTasks());
  for (const auto& u : unfinished)
    if (u.volume_id == t.volume_id || (!t.instance_id.empty() && u.instance_id == t.instance_id))
      return Conflict("the root volume of " + t.instance_id + " is already being replaced or rolled back by task " +
                      u.task_id);
  t.state = "pending";
  t.runner = runner_id_;
  if (t.start_ms == 0) t.start_ms = clock_->NowMillis();
  RETURN_IF_ERROR(catalog_->InsertReplaceRootVolumeTask(t));
  {
    std::lock_guard lock(mu_);
    queue_.push_back(t);
  }
  cv_.notify_all();
  return t;
}

Result<size_t> RollbackTasks::Resume() {
  ASSIGN_OR_RETURN(auto unfinished, catalog_->ListUnfinishedReplaceRootVolumeTasks());
  std::erase_if(unfinished, [this](const ReplaceRootVolumeTaskRecord& t) {
    // Queued for a host (this one's claimer or another host takes it), or held by another
    // process that may still run it, or of a volume another host holds (that host resumes it).
    if (!QueuedRunnerHost(t.runner).empty()) return true;
    if (runner_alive && !t.runner.empty() && t.runner != runner_id_ && runner_alive(t.runner)) return true;
    auto vol = catalog_->GetVolume(t.volume_id);
    return vol && !catalog_->HostElsewhere(vol->host_id).empty();
  });
  for (const auto& t : unfinished) {
    if (!t.replacement_volume_id.empty() || !managed.end_connections) continue;
    auto vol = catalog_->GetVolume(t.volume_id);
    if (vol && vol->managed) (void)managed.end_connections(t.volume_id);  // the task's Run ends them again
  }
  {
    std::lock_guard lock(mu_);
    for (auto& t : unfinished) queue_.push_back(std::move(t));
  }
  cv_.notify_all();
  return unfinished.size();
}

void RollbackTasks::RunnerLoop() {
  for (;;) {
    ReplaceRootVolumeTaskRecord t;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      t = std::move(queue_.front());
      queue_.pop_front();
      running_ = true;
    }
    Run(std::move(t));
    {
      std::lock_guard lock(mu_);
      running_ = false;
    }
    cv_.notify_all();
  }
}

void RollbackTasks::Fail(ReplaceRootVolumeTaskRecord& t, const std::string& why, bool volume_touched) {
  t.state = "failed";
  t.reason = t.reason.empty() ? why : why + "; " + t.reason;
  t.complete_ms = clock_->NowMillis();
  (void)catalog_->UpdateReplaceRootVolumeTask(t);
  if (volume_touched)
    (void)catalog_->SetVolumeState(t.volume_id, "error",
                                   "in-place rollback to " + t.snapshot_id + " (" + t.task_id + ") failed: " + why +
                                       (t.safety_snapshot_id.empty()
                                            ? ""
                                            : "; its data before the rollback is in snapshot " + t.safety_snapshot_id));
}

void RollbackTasks::Run(ReplaceRootVolumeTaskRecord t) {
  // The row as it is now: a task queued twice (Resume after Start) or ended meanwhile is skipped.
  auto now = catalog_->GetReplaceRootVolumeTask(t.task_id);
  if (!now || Ended(now->state)) return;
  t = *now;
  t.runner = runner_id_;
  if (!t.replacement_volume_id.empty()) {
    if (managed_roots) managed_roots->Run(std::move(t));
    return;
  }
  // Clients of a managed volume (fenced out by Resume, or below) are let in again when the task
  // ends however it ends; not when the service stops with the task unfinished.
  struct Admit {
    const ManagedRollbackHooks* hooks;
    std::string volume_id;
    ~Admit() {
      if (hooks && hooks->admit) hooks->admit(volume_id);
    }
  } admit{&managed, t.volume_id};
  // A task resumed in-progress may have written part of the volume already: a failure now
  // leaves it as partly rolled back as a failure mid-run does.
  const bool touched = t.state == "in-progress";
  // The safety snapshot first: nothing is written before the volume's present data is kept.
  if (!t.safety_snapshot_id.empty()) {
    for (;;) {
      auto s = catalog_->GetSnapshot(t.safety_snapshot_id);
      if (!s) return Fail(t, "safety snapshot " + t.safety_snapshot_id + " is gone: " + s.error().message(), false);
      if (s->state == SnapshotState::kCompleted) break;
      if (s->state == SnapshotState::kError)
        return Fail(t, "safety snapshot " + t.safety_snapshot_id + " failed (" + s->state_message +
                           "); the volume was not changed", false);
      if (cancel_) return (void)(admit.hooks = nullptr);  // still pending: the next start looks again
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  // Nor while another snapshot of the volume still reads it (one queued before this task).
  for (;;) {
    auto reading = catalog_->ListSnapshots({.volume_id = t.volume_id, .state = SnapshotState::kPending});
    if (!reading) return Fail(t, reading.error().message(), touched);
    if (reading->empty()) break;
    if (cancel_) return (void)(admit.hooks = nullptr);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  auto vol = catalog_->GetVolume(t.volume_id);
  if (!vol) return Fail(t, vol.error().message(), touched);
  // Its path names a file of the host that holds it: never opened anywhere else.
  if (std::string there = catalog_->HostElsewhere(vol->host_id); !there.empty())
    return Fail(t, "volume " + t.volume_id + " lives on host " + catalog_->DescribeHost(there) +
                       ", not on this host; its rollback runs there, and nothing was written here", touched);
  // What earlier runs of this task (before a stop or a crash) read and wrote: the task counts
  // the whole of it.
  const uint64_t read_before = touched ? t.bytes_read : 0, written_before = touched ? t.bytes_written : 0;
  t.state = "in-progress";
  if (auto st = catalog_->UpdateReplaceRootVolumeTask(t); !st) return;  // ended by someone else
  // A managed volume: no client writes to it while it is rolled back; they may come back after.
  const bool fence = vol->managed && managed.end_connections;
  if (fence) {
    if (auto ended = managed.end_connections(t.volume_id); !ended)
      return Fail(t, "the NBD connections of " + t.volume_id + " did not end: " + ended.error().message(), touched);
  }
  RollbackOptions options;
  if (vol->managed) {
    RollbackPlan plan = PlanManagedRollback(repo_, catalog_, *vol, t.snapshot_id,
                                            managed.tracking ? managed.tracking(*vol) : std::nullopt);
    options.maybe_changed = std::move(plan.maybe_changed);
    // Said in the task (a resumed task's earlier note is replaced).
    if (auto at = t.reason.find("changed-block tracking"); at != std::string::npos)
      t.reason.erase(at >= 2 && t.reason.compare(at - 2, 2, "; ") == 0 ? at - 2 : at);
    t.reason = t.reason.empty() ? plan.note : t.reason + "; " + plan.note;
    (void)catalog_->UpdateReplaceRootVolumeTask(t);
  }
  auto volume = OpenVolume(*vol);
  if (!volume) return Fail(t, volume.error().message(), touched);
  VolumeRollback rollback(repo_, pool_, std::move(options));
  int last_pct = -1;
  RollbackStats last;
  auto count = [&](const RollbackStats& s) {
    t.blocks_compared = s.blocks_compared;
    t.bytes_read = read_before + s.bytes_read;
    t.bytes_written = written_before + s.bytes_written;
  };
  auto progress = [&](const RollbackStats& s) {
    last = s;
    int pct = s.blocks ? static_cast<int>((s.blocks_compared + s.blocks_unchanged) * 100 / s.blocks) : 100;
    pct = std::min(pct, 99);
    if (pct == last_pct) return;
    last_pct = pct;
    t.progress = pct;
    count(s);
    (void)catalog_->UpdateReplaceRootVolumeTask(t);
  };
  auto out = rollback.Run(t.snapshot_id, volume->get(), progress, &cancel_);
  if (!out) {
    count(last);
    if (cancel_) {  // the service stops: in-progress, resumed at the next start, its counts kept
      admit.hooks = nullptr;
      (void)catalog_->UpdateReplaceRootVolumeTask(t);
      return;
    }
    return Fail(t, out.error().message(), true);
  }
  t.state = "succeeded";
  t.progress = 100;
  count(*out);
  t.complete_ms = clock_->NowMillis();
  (void)catalog_->UpdateReplaceRootVolumeTask(t);
  // A volume an earlier failed rollback marked `error` is whole again.
  if (auto v = catalog_->GetVolume(t.volume_id); v && v->state == "error")
    (void)catalog_->SetVolumeState(t.volume_id, v->instance_id.empty() ? "available" : "in-use");
}

Result<std::unique_ptr<RewritableVolume>> RollbackTasks::OpenVolume(const VolumeRecord& v) {
  if (v.managed) {
    if (!managed.open) return InvalidArgument("volume " + v.volume_id + " is managed: no way to open it here");
    return managed.open(v);
  }
  return open_volume(v);
}

void RollbackTasks::Shutdown() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cancel_ = true;
  cv_.notify_all();
  if (runner_.joinable()) runner_.join();
}

void RollbackTasks::WaitIdle() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return stopping_ || (queue_.empty() && !running_); });
}

}  // namespace snapvol
