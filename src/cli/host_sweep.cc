#include "cli/host_sweep.h"

#include <chrono>
#include <cstdio>
#include <map>
#include <utility>

#include "core/service_metrics.h"
#include "core/status.h"

namespace snapvol {

std::string AbandonedReason(const std::string& host_id, const std::string& name, const std::string& state,
                            int64_t last_heartbeat_ms, int64_t timeout_ms, const std::string& what) {
  const std::string who = name.empty() ? "host " + host_id : "host " + name + " (" + host_id + ")";
  if (state == "unreachable") return who + " unreachable since " + FormatIso8601(last_heartbeat_ms) + " (its last heartbeat)";
  if (state == "stopped") {
    char secs[32];
    std::snprintf(secs, sizeof secs, "%g", static_cast<double>(timeout_ms) / 1000.0);
    return who + " stopped and was not back within " + secs + " s of this " + what + "'s request";
  }
  return who + " is not registered: no snapvold runs its work";
}

HostSweep::HostSweep(Catalog* catalog, Repository* repo, Clock* clock, Options options)
    : catalog_(catalog),
      repo_(repo),
      clock_(clock),
      options_(std::move(options)),
      // The judge decides which runners are dead, as everywhere else: this host's own runners it
      // counts alive here (pid 0 is never asked: they are skipped before), others by HostStateAt.
      judge_(catalog, clock, {options_.self_host_id, "", [](long) { return false; }}, options_.host_timeout_ms) {}

HostSweep::~HostSweep() { Stop(); }

void HostSweep::Fail(const Error& e) {
  if (options_.on_failure) options_.on_failure(e);
}

Result<std::vector<SweptHost>> HostSweep::Tick() {
  std::lock_guard lock(tick_mu_);
  auto r = TickLocked();
  if (!r) Fail(r.error());
  return r;
}

Result<std::vector<SweptHost>> HostSweep::TickLocked() {
  if (options_.lease == nullptr) return InvalidArgument("the host sweep needs the maintenance lease");
  std::optional<lifecycle::HeldLease::Held> held = options_.lease->Current();
  if (!held) return std::vector<SweptHost>{};
  const LeaseFence fence{lifecycle::kMaintenanceLease, held->holder, held->generation};
  ASSIGN_OR_RETURN(auto pending, catalog_->ListSnapshots({.state = SnapshotState::kPending}));
  // The host a runner names: "queued@HOST" or "pid:N@BOOT@HOST"; '' (handed over, "api", or the
  // form before host ids: this host's) and this host's own are not another host's work.
  auto other_host = [&](const std::string& runner) -> std::string {
    std::string host = QueuedRunnerHost(runner);
    if (host.empty()) {
      auto r = ParseRunner(runner);
      if (r) host = r->host_id;
    }
    return host == options_.self_host_id ? std::string() : host;
  };
  std::map<std::string, Work> by_host;
  for (auto& s : pending) {
    const std::string host = other_host(s.runner);
    if (host.empty() || judge_.Alive(s.runner)) continue;
    by_host[host].snapshots.push_back(std::move(s));
  }
  ASSIGN_OR_RETURN(auto tasks, catalog_->ListUnfinishedReplaceRootVolumeTasks());
  for (auto& t : tasks) {
    const std::string host = other_host(t.runner);
    if (t.state != "pending" || host.empty() || judge_.Alive(t.runner)) continue;
    by_host[host].tasks.push_back(std::move(t));
  }
  ASSIGN_OR_RETURN(std::vector<HostRecord> hosts, catalog_->ListHosts());
  ASSIGN_OR_RETURN(auto volumes, catalog_->ListVolumes(std::nullopt));
  for (auto& v : volumes) {
    if (v.state != "creating" || v.host_id.empty() || v.host_id == options_.self_host_id) continue;
    if (VolumeHostState(hosts, v.host_id, clock_->NowMillis(), options_.host_timeout_ms) == "up") continue;
    by_host[v.host_id].volumes.push_back(std::move(v));
  }
  std::vector<SweptHost> out;
  for (auto& [host_id, work] : by_host) {
    const int64_t now = clock_->NowMillis();
    SweptHost swept{host_id, "", VolumeHostState(hosts, host_id, now, options_.host_timeout_ms), "", {}, {}, {}, {}};
    int64_t beat = 0;
    const HostRecord* row = nullptr;
    for (const HostRecord& h : hosts) {
      if (h.host_id != host_id) continue;
      swept.name = h.name;
      beat = h.heartbeat_ms;
      row = &h;
    }
    const auto& snaps = work.snapshots;
    // A host that came back since the judge's read keeps its work: EndAbandonedSnapshot checks
    // again, in its transaction, and ends nothing then.
    swept.reason = AbandonedReason(host_id, swept.name, swept.state, beat, options_.host_timeout_ms);
    for (const SnapshotRecord& s : snaps) {
      const bool queued = !QueuedRunnerHost(s.runner).empty();
      // A cleanly stopped host is likely restarting: its queue waits for it the host timeout.
      if (queued && swept.state == "stopped" && now - s.start_time_ms <= options_.host_timeout_ms) continue;
      if (!queued) {
        // The manifest root is published before the catalog says completed: a host that died
        // in between left a whole snapshot.
        auto meta = repo_->GetManifest(s.snapshot_id);
        if (meta) {
          RETURN_IF_ERROR(catalog_->CheckClusterLease(fence.name, fence.holder, fence.generation, now));
          RETURN_IF_ERROR(catalog_->MarkCompleted(s.snapshot_id, meta->completed_time_ms, meta->stored_bytes,
                                                  meta->changed_blocks, meta->block_count));
          RETURN_IF_ERROR(repo_->RemoveLease(s.snapshot_id));
          swept.completed.push_back(s.snapshot_id);
          continue;
        }
        if (meta.error().code() != ErrorCode::kNotFound) return std::unexpected(meta.error());
      }
      ASSIGN_OR_RETURN(bool ended, catalog_->EndAbandonedSnapshot(s.snapshot_id, s.runner, host_id, swept.reason,
                                                                  now, options_.host_timeout_ms, fence));
      if (!ended) continue;
      // Its writer is dead: the store lease no longer protects anything (GC may reclaim what it
      // wrote, after its grace). A queued snapshot never wrote anything and has none.
      if (!queued) RETURN_IF_ERROR(repo_->RemoveLease(s.snapshot_id));
      swept.ended.push_back(s.snapshot_id);
    }
    RETURN_IF_ERROR(EndTasksAndVolumes(work, row, fence, now, &swept));
    if (swept.ended.empty() && swept.completed.empty() && swept.failed_tasks.empty() && swept.ended_volumes.empty())
      continue;
    ServiceMetrics().host_sweep_snapshots.With({host_id})->Add(static_cast<double>(swept.ended.size() + swept.completed.size()));
    if (options_.on_swept) options_.on_swept(swept);
    out.push_back(std::move(swept));
  }
  return out;
}

Status HostSweep::EndTasksAndVolumes(const Work& work, const HostRecord* host, const LeaseFence& fence, int64_t now,
                                     SweptHost* swept) {
  const int64_t beat = host ? host->heartbeat_ms : 0;
  // A cleanly stopped host is likely restarting: what was asked of it waits the host timeout.
  auto waits = [&](int64_t asked_ms) { return swept->state == "stopped" && now - asked_ms <= options_.host_timeout_ms; };
  const std::string task_reason =
      AbandonedReason(swept->host_id, swept->name, swept->state, beat, options_.host_timeout_ms, "task");
  for (const ReplaceRootVolumeTaskRecord& t : work.tasks) {
    if (waits(t.start_ms)) continue;
    ASSIGN_OR_RETURN(bool ended, catalog_->EndAbandonedRollbackTask(t.task_id, t.runner, swept->host_id, task_reason,
                                                                    now, options_.host_timeout_ms, fence));
    if (ended) swept->failed_tasks.push_back(t.task_id);
  }
  const std::string volume_reason =
      AbandonedReason(swept->host_id, swept->name, swept->state, beat, options_.host_timeout_ms, "volume");
  for (const VolumeRecord& v : work.volumes) {
    if (waits(v.created_ms)) continue;
    ASSIGN_OR_RETURN(bool ended, catalog_->EndAbandonedVolume(v.volume_id, swept->host_id, volume_reason, now,
                                                              options_.host_timeout_ms, fence));
    if (ended) swept->ended_volumes.push_back(v.volume_id);
  }
  return OkStatus();
}

void HostSweep::Start() {
  if (started_) return;
  {
    std::lock_guard lock(mu_);
    stopping_ = false;
  }
  started_ = true;
  thread_ = std::thread([this] {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      lock.unlock();
      (void)Tick();  // a failure is reported; the next interval tries again
      lock.lock();
      cv_.wait_for(lock, std::chrono::milliseconds(options_.interval_ms), [this] { return stopping_; });
    }
  });
}

void HostSweep::Stop() {
  if (!started_) return;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
  started_ = false;
}

}  // namespace snapvol
