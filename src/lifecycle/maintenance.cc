#include "lifecycle/maintenance.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <map>
#include <set>

#include "core/hash.h"
#include "core/human_bytes.h"
#include "core/process_holder.h"
#include "engine/ended_leases.h"
#include "engine/recycle_bin.h"
#include "store/block_map.h"
#include "store/gc.h"
#include "store/verify.h"

namespace snapvol::lifecycle {
namespace {

constexpr int64_t kDayMs = 24 * 60 * 60 * 1000;
// Snapshots verified per catalog update: a killed run loses at most this many checks.
constexpr size_t kVerifyBatch = 16;

struct Cadence {
  int64_t every_ms, offset_ms;
  // The latest scheduled time at or before now.
  int64_t LatestAtOrBefore(int64_t now) const {
    int64_t k = (now - offset_ms) / every_ms;
    if ((now - offset_ms) % every_ms < 0) --k;
    return k * every_ms + offset_ms;
  }
};

Cadence GcCadence(const MaintenanceOptions& o) {
  return o.gc_every_ms > 0 ? Cadence{o.gc_every_ms, 0} : Cadence{kDayMs, o.gc_time_min * 60'000LL};
}
Cadence VerifyCadence(const MaintenanceOptions& o) {
  return o.verify_every_ms > 0 ? Cadence{o.verify_every_ms, 0} : Cadence{kDayMs, o.verify_time_min * 60'000LL};
}
Cadence DrillCadence(const MaintenanceOptions& o) {
  return o.drill_every_ms > 0 ? Cadence{o.drill_every_ms, 0} : Cadence{kDayMs, o.drill_time_min * 60'000LL};
}


// A run's `damaged` field: ids separated by spaces.
std::vector<std::string> SplitIds(const std::string& ids) {
  std::vector<std::string> out;
  for (size_t pos = 0; pos < ids.size();) {
    size_t end = ids.find(' ', pos);
    if (end == std::string::npos) end = ids.size();
    if (end > pos) out.push_back(ids.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : " ") + s;
  return out;
}

}  // namespace

Status ValidateMaintenanceOptions(const MaintenanceOptions& o) {
  if (o.gc_time_min < 0 || o.gc_time_min >= 24 * 60) return InvalidArgument("--gc-time must be hh:mm (UTC)");
  if (o.verify_time_min < 0 || o.verify_time_min >= 24 * 60)
    return InvalidArgument("--verify-time must be hh:mm (UTC)");
  if (o.gc_every_ms < 0) return InvalidArgument("--gc-every must be a positive number of seconds");
  if (o.verify_every_ms < 0) return InvalidArgument("--verify-every must be a positive number of seconds");
  if (o.gc_grace_ms < 0) return InvalidArgument("--gc-grace must be 0 or more seconds");
  if (!(o.gc_repack_threshold > 0 && o.gc_repack_threshold <= 1))
    return InvalidArgument("--gc-repack-threshold must be a fraction above 0 and at most 1 (e.g. 0.1)");
  if (o.verify_period_days < 1 || o.verify_period_days > 366)
    return InvalidArgument("--verify-period-days must be 1 to 366");
  if (o.drill_time_min < 0 || o.drill_time_min >= 24 * 60) return InvalidArgument("--drill-time must be hh:mm (UTC)");
  if (o.drill_every_ms < 0) return InvalidArgument("--drill-every must be a positive number of seconds");
  if (o.drill.per_account < 1 || o.drill.per_account > 1000)
    return InvalidArgument("--drill-per-account must be 1 to 1000");
  if (o.drill.check_timeout_ms < 1000) return InvalidArgument("--drill-check-timeout must be at least 1 second");
  if (o.drill_enabled && o.drill.scratch_dir.empty()) return InvalidArgument("--drill-dir must name a directory");
  return OkStatus();
}

MaintenanceScheduler::MaintenanceScheduler(Catalog* catalog, Repository* repo, ThreadPool* pool, Clock* clock,
                                           MaintenanceOptions options)
    : catalog_(catalog), repo_(repo), pool_(pool), clock_(clock), options_(std::move(options)) {}

MaintenanceScheduler::~MaintenanceScheduler() { Stop(); }

void MaintenanceScheduler::Start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return;
  stop_ = false;
  cancel_ = false;
  thread_ = std::thread([this] {
    std::unique_lock held(mu_);
    while (!stop_) {
      held.unlock();
      (void)Tick();  // failures are recorded in the runs; the next tick tries again
      held.lock();
      cv_.wait_for(held, std::chrono::seconds(1), [this] { return stop_; });
    }
  });
}

void MaintenanceScheduler::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    cancel_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool MaintenanceScheduler::Stopping() {
  std::lock_guard lock(mu_);
  return stop_;
}

Result<MaintenanceRunRecord> MaintenanceScheduler::RequestRun(const std::string& job, const std::string& mode) {
  if (job != "gc" && job != "verify" && job != "drill")
    return InvalidArgument("unknown job '" + job + "': gc, verify or drill");
  std::string m = mode;
  if (job != "verify" && !m.empty()) return InvalidArgument(job + " takes no mode");
  if (job == "verify" && m.empty()) m = "full";
  if (job == "verify" && m != "full" && m != "quick")
    return InvalidArgument("unknown verification mode '" + mode + "': full or quick");
  ASSIGN_OR_RETURN(auto open, catalog_->ListUnfinishedMaintenanceRuns());
  for (const auto& r : open)
    if (r.job == job)
      return MakeError(ErrorCode::kConflict, job + " run " + std::to_string(r.run_id) + " is already " + r.state);
  MaintenanceRunRecord run;
  run.job = job;
  run.trigger = "manual";
  run.mode = m;
  run.scheduled_ms = clock_->NowMillis();
  run.message = job == "verify" ? "asked for by an operator: every snapshot; " : "asked for by an operator; ";
  if (job == "drill")
    run.message = "asked for by an operator: " + std::to_string(options_.drill.per_account) +
                  " snapshot(s) per account; ";
  ASSIGN_OR_RETURN(run.run_id, catalog_->InsertMaintenanceRun(run));
  return run;
}

Status MaintenanceScheduler::Tick() {
  std::lock_guard tick(tick_mu_);
  lost_.clear();
  if (options_.lease != nullptr) {
    const auto now_held = options_.lease->Current();
    if (!now_held) {
      // Another host (or nobody) runs the duties. Should this host take the lease again, what
      // was left running meanwhile is resumed then.
      resumed_ = false;
      return OkStatus();
    }
    if (now_held->holder != held_.holder || now_held->generation != held_.generation) resumed_ = false;
    held_ = *now_held;
  }
  if (!resumed_) {
    RETURN_IF_ERROR(ResumeRunning());
    resumed_ = true;
  }
  RETURN_IF_ERROR(QueueDueRuns());
  ASSIGN_OR_RETURN(auto queued, catalog_->ListUnfinishedMaintenanceRuns());
  for (const auto& run : queued) {
    if (Stopping() || !lost_.empty()) break;
    if (run.job == "gc") {
      // After the policies: retention deletes at the end of a lifecycle run.
      ASSIGN_OR_RETURN(auto lifecycle, catalog_->ListRunningLifecycleRuns());
      if (!lifecycle.empty()) continue;
    }
    RETURN_IF_ERROR(Execute(run));
  }
  return OkStatus();
}

Status MaintenanceScheduler::ResumeRunning() {
  // Nothing runs in this process yet, and with a lease this host has just taken it: a
  // `running` run belongs to a process that died or to a holder that lost the lease (which
  // stops before its next step that cannot be repeated, and whose writes to the run are
  // refused once this one has written it under a newer generation).
  ASSIGN_OR_RETURN(auto open, catalog_->ListUnfinishedMaintenanceRuns());
  for (auto r : open) {
    if (r.state != "running") continue;
    r.state = "queued";
    if (held_.holder.empty() || r.host_id == held_.holder)
      r.message += "resumed after the service stopped during the run; ";
    else
      r.message += "resumed on " + held_.holder + " (lease generation " + std::to_string(held_.generation) +
                   ") after " + (r.host_id.empty() ? std::string("its host") : r.host_id) +
                   " stopped or lost the lease during the run; ";
    r.host_id = held_.holder;
    r.lease_generation = std::max(r.lease_generation, held_.generation);
    RETURN_IF_ERROR(catalog_->UpdateMaintenanceRun(r));
  }
  return OkStatus();
}

Status MaintenanceScheduler::CheckLease() {
  if (options_.lease == nullptr) return OkStatus();
  Status st = catalog_->CheckClusterLease(kMaintenanceLease, held_.holder, held_.generation, clock_->NowMillis());
  if (!st && lost_.empty()) lost_ = st.error().message();
  return st;
}

bool MaintenanceScheduler::StillHolding() {
  if (options_.lease == nullptr) return true;
  const auto now_held = options_.lease->Current();
  if (now_held && now_held->holder == held_.holder && now_held->generation == held_.generation) return true;
  if (lost_.empty()) lost_ = "this host no longer holds lease " + std::string(kMaintenanceLease) + " (now " +
                             options_.lease->HolderText() + ")";
  return false;
}

Status MaintenanceScheduler::QueueDueRuns() {
  const int64_t now = clock_->NowMillis();
  ASSIGN_OR_RETURN(auto accounts, catalog_->ListAccounts());
  // Times before the service existed do not count (its default account is its first).
  int64_t anchor = now;
  for (const auto& a : accounts) anchor = std::min(anchor, a.created_ms);
  struct Job {
    const char* name;
    bool enabled;
    Cadence cadence;
  };
  for (const Job& job : {Job{"gc", options_.gc_enabled, GcCadence(options_)},
                         Job{"verify", options_.verify_enabled, VerifyCadence(options_)},
                         Job{"drill", options_.drill_enabled, DrillCadence(options_)}}) {
    if (!job.enabled) continue;
    const int64_t due = job.cadence.LatestAtOrBefore(now);
    if (due < anchor) continue;
    ASSIGN_OR_RETURN(auto latest, catalog_->LatestScheduledMaintenanceRun(job.name));
    if (latest && due <= latest->scheduled_ms) continue;
    MaintenanceRunRecord run;
    run.job = job.name;
    run.host_id = held_.holder;
    run.lease_generation = held_.generation;
    run.mode = job.name == std::string("verify") ? (options_.verify_quick ? kVerifyQuickAndFull : "full") : "";
    run.scheduled_ms = due;
    const int64_t since = latest ? latest->scheduled_ms : job.cadence.LatestAtOrBefore(anchor - 1);
    run.missed = std::max<int64_t>(0, (due - since) / job.cadence.every_ms - 1);
    if (run.missed > 0)
      run.message = "caught up once for " + std::to_string(run.missed) +
                    " earlier scheduled time(s) missed while the service was down; ";
    auto st = catalog_->InsertMaintenanceRun(run);
    if (!st && st.error().code() != ErrorCode::kAlreadyExists) return std::unexpected(st.error());
  }
  return OkStatus();
}

Status MaintenanceScheduler::Execute(MaintenanceRunRecord run) {
  // Only the holder starts a run: a lease lost since this pass began leaves it queued.
  if (!CheckLease()) return OkStatus();
  run.host_id = held_.holder;
  run.lease_generation = std::max(run.lease_generation, held_.generation);
  if (run.started_ms == 0) run.started_ms = clock_->NowMillis();
  if (run.trigger == "scheduled" && run.started_ms - run.scheduled_ms > 5 * 60'000 &&
      run.message.find(" after its scheduled time") == std::string::npos)
    run.message += "started " + std::to_string((run.started_ms - run.scheduled_ms) / 60'000) +
                   " min after its scheduled time; ";
  run.state = "running";
  RETURN_IF_ERROR(catalog_->UpdateMaintenanceRun(run));
  Status done = run.job == "gc" ? RunGc(&run) : run.job == "drill" ? RunDrill(&run) : RunVerify(&run);
  if (!done) return done;
  if (!lost_.empty()) {
    // Stopped before a step that cannot be repeated: left for the holder, which runs it (GC
    // from the start, the others carrying on). Refused (kConflict) when the holder took it
    // over already: then this host writes nothing more.
    run.state = "queued";
    run.message += "stopped on " + held_.holder + ": " + lost_ + "; ";
    Status left = catalog_->UpdateMaintenanceRun(run);
    if (!left && left.error().code() != ErrorCode::kConflict) return left;
    return OkStatus();
  }
  if (run.state == "running") {  // stopped part-way: resumed at the next start
    run.state = "queued";
    run.message += "interrupted by a stop; ";
    return catalog_->UpdateMaintenanceRun(run);
  }
  run.finished_ms = clock_->NowMillis();
  return catalog_->UpdateMaintenanceRun(run);
}

Status MaintenanceScheduler::RunGc(MaintenanceRunRecord* run) {
  GcOptions o;
  o.grace_ms = options_.gc_grace_ms;
  o.repack_threshold = options_.gc_repack_threshold;
  o.clock = clock_;
  o.before_deletes = [this] { return CheckLease(); };
  // A lazily restored volume reads its snapshot until it has loaded: its objects stay even if
  // the snapshot was deleted meanwhile.
  ASSIGN_OR_RETURN(auto volumes, catalog_->ListVolumes(std::nullopt));
  for (const auto& v : volumes)
    if (ReadsFromItsSnapshot(v)) o.keep_snapshots.push_back(v.snapshot_id);
  if (options_.usage != nullptr) {
    (void)options_.usage->Drain();  // what it cannot count now is kept below, and counted later
    ASSIGN_OR_RETURN(auto pending, options_.usage->KeepForUsage());
    o.keep_snapshots.insert(o.keep_snapshots.end(), pending.begin(), pending.end());
  }
  // Leases of snapshots that ended with the store down would keep their run's objects for 30
  // minutes: released first, as `snapvol gc` does.
  auto released = ReleaseLeasesOfEndedSnapshots(catalog_, repo_);
  if (released && !released->empty()) {
    run->message += "released the lease(s) of " + std::to_string(released->size()) + " ended snapshot(s):";
    for (const auto& l : *released)
      run->message += " " + l.snapshot_id + (l.state == SnapshotState::kError ? " (error)" : " (completed)");
    run->message += "; ";
  }
  // Binned snapshots whose retention has ended are deleted for good first, so this run frees
  // their data.
  auto purged = PurgeExpiredBin(catalog_, repo_, clock_->NowMillis() + options_.recycle_bin_clock_offset_ms);
  if (purged && !purged->empty()) {
    run->message += "deleted " + std::to_string(purged->size()) + " snapshot(s) whose Recycle Bin retention ended:";
    for (const auto& id : *purged) run->message += " " + id;
    run->message += "; ";
  }
  if (!purged) released = std::unexpected(purged.error());
  Result<GcReport> report = released ? CollectGarbage(repo_, o) : std::unexpected(released.error());
  if (!report && !lost_.empty()) return OkStatus();  // Execute leaves it for the holder
  if (!report) {
    run->state = "failed";
    run->message += report.error().message();
    if (options_.events)
      options_.events->Raise({kEventGcFailed, "error", "garbage collection failed: " + report.error().message(),
                              clock_->NowMillis(), {{"run_id", std::to_string(run->run_id)}}});
    return OkStatus();
  }
  run->state = "succeeded";
  for (const auto& gone : report->gone_runs_removed)
    run->message += "removed the record of a gc or verification run whose process is gone (" + gone + "); ";
  run->bytes_freed = static_cast<int64_t>(report->deleted_bytes);
  run->objects_deleted = static_cast<int64_t>(report->deleted_chunks + report->deleted_pages + report->deleted_roots);
  run->message += "freed " + HumanBytes(report->deleted_bytes) + ": " + std::to_string(report->deleted_chunks) +
                  " chunk(s), " + std::to_string(report->deleted_pages) + " index page(s), " +
                  std::to_string(report->deleted_roots) + " deleted snapshot root(s); " +
                  std::to_string(report->manifests) + " snapshot(s) live, " + std::to_string(report->kept_young) +
                  " unreferenced object(s) kept for the grace period, " + std::to_string(report->live_leases) +
                  " snapshot(s) being written";
  if (repo_->format() == 2)
    run->message += "; packs: " + std::to_string(report->packs) + " before, " +
                    std::to_string(report->packs_deleted - report->packs_repacked) + " deleted with nothing live, " +
                    std::to_string(report->packs_repacked) + " repacked into " +
                    std::to_string(report->packs_written) + " new; dead bytes found " + HumanBytes(report->dead_bytes);
  return OkStatus();
}

Status MaintenanceScheduler::RunVerify(MaintenanceRunRecord* run) {
  // A scheduled "quick" run was queued by a version that never decoded in quick mode.
  if (run->trigger == "scheduled" && run->mode == "quick") run->mode = kVerifyQuickAndFull;
  ASSIGN_OR_RETURN(auto snaps, catalog_->ListSnapshots({.state = SnapshotState::kCompleted}));
  ASSIGN_OR_RETURN(auto verifs, catalog_->ListSnapshotVerifications());
  std::map<std::string, const SnapshotVerificationRecord*> known;
  for (const auto& v : verifs) known[v.snapshot_id] = &v;
  // Least recently fully decoded first (never: by start time): a quick check does not count
  // towards the period's full decode.
  struct Candidate {
    int64_t key;
    std::string id;
  };
  std::vector<Candidate> todo;
  size_t full_in_run = 0;  // decoded by this run (before an interruption, then in this pass)
  for (const auto& s : snaps) {
    auto it = known.find(s.snapshot_id);
    const int64_t checked = it == known.end() ? 0 : it->second->checked_ms;
    const int64_t full = it == known.end() ? 0 : it->second->full_ms;
    if (checked >= run->started_ms) {  // checked by this run before it was interrupted
      if (full >= run->started_ms) ++full_in_run;
      continue;
    }
    todo.push_back({full ? full : s.start_time_ms, s.snapshot_id});
  }
  std::sort(todo.begin(), todo.end(),
            [](const Candidate& a, const Candidate& b) { return a.key != b.key ? a.key < b.key : a.id < b.id; });
  // The first `full` of todo are decoded, the rest (up to `take`) get checksums only.
  size_t take = todo.size(), full = run->mode == "quick" ? 0 : todo.size();
  if (run->trigger == "scheduled") {
    const Cadence c = VerifyCadence(options_);
    const int64_t period = options_.verify_period_days * kDayMs;
    const size_t runs = static_cast<size_t>(std::max<int64_t>(1, period / c.every_ms));
    const size_t share = (snaps.size() + runs - 1) / runs;
    // A snapshot that would go more than a period without a full decode if left to the next
    // run is due now.
    size_t overdue = 0;
    for (const auto& t : todo)
      if (t.key + period <= run->scheduled_ms + c.every_ms) ++overdue;
    full = std::min(todo.size(), std::max(overdue, share > full_in_run ? share - full_in_run : 0));
    take = run->mode == kVerifyQuickAndFull ? todo.size() : full;
  }
  todo.resize(take);

  std::vector<std::string> named = SplitIds(run->damaged);  // a resumed run keeps what it found before
  // Batches of one kind: the full decodes first, then the checksums.
  for (size_t i = 0; i < todo.size();) {
    if (Stopping() || !StillHolding()) return OkStatus();  // state stays running: Execute re-queues it
    VerifyOptions vo;
    vo.checksum_only = i >= full;
    const size_t batch_end = std::min({todo.size(), i + kVerifyBatch, i < full ? full : todo.size()});
    std::vector<std::string> ids;
    for (size_t j = i; j < batch_end; ++j) ids.push_back(todo[j].id);
    i = batch_end;
    auto report = VerifySnapshots(repo_, ids, pool_, vo);
    if (!report) {
      run->state = "failed";
      run->message += "verification stopped: " + report.error().message();
      return OkStatus();
    }
    run->snapshots_checked += static_cast<int64_t>(report->snapshots_checked);
    run->objects_checked += static_cast<int64_t>(report->objects_checked);
    if (!vo.checksum_only) full_in_run += report->snapshots_checked;
    const int64_t at = clock_->NowMillis();
    std::vector<std::pair<std::string, std::string>> damaged;
    std::vector<Digest> corrupt;
    for (const auto& d : report->damaged) {
      damaged.push_back({d.snapshot_id, d.problems.empty() ? "damaged" : d.problems.front()});
      corrupt.insert(corrupt.end(), d.corrupt_chunks.begin(), d.corrupt_chunks.end());
    }
    // A pack's own index damaged: its objects are checked one by one above; the operator is
    // told, since a lost packindex/ object would be rebuilt from it.
    for (const auto& p : report->damaged_packs) run->message += p + "; ";
    // Marking snapshots damaged and removing chunks (below) happen only while this host holds
    // the lease. Checked first, before the checks are recorded: the new holder checks this
    // batch again (state stays running: Execute leaves it queued for the holder).
    if (!damaged.empty() && !CheckLease()) return OkStatus();
    // Damaged ones too: checked (and decoded) they were; the damage is recorded below.
    for (const auto& id : ids) RETURN_IF_ERROR(catalog_->RecordSnapshotChecked(id, at, !vo.checksum_only));
    if (!damaged.empty()) {
      std::string note;
      RETURN_IF_ERROR(HandleDamage(damaged, corrupt, &named, &note));
      run->message += note;
    }
    run->damaged = Join(named);
    RETURN_IF_ERROR(catalog_->UpdateMaintenanceRun(*run));
  }
  const int64_t decoded = static_cast<int64_t>(full_in_run);
  const int64_t quick = std::max<int64_t>(0, run->snapshots_checked - decoded);
  run->state = "succeeded";
  run->message += std::to_string(run->snapshots_checked) + " snapshot(s) checked: " + std::to_string(decoded) +
                  " by full decode, " + std::to_string(quick) + " by checksums only; " +
                  std::to_string(run->objects_checked) + " object(s); " +
                  (named.empty() ? "no damage found" : "damaged: " + run->damaged);
  if (!named.empty() && options_.events) {
    OperatorEvent e{kEventVerifyDamage, "error",
                    "verification found " + std::to_string(named.size()) + " damaged snapshot(s)", clock_->NowMillis(),
                    {{"run_id", std::to_string(run->run_id)}}};
    for (const auto& id : named) e.details.push_back({"snapshot_id", id});
    options_.events->Raise(std::move(e));
  }
  return OkStatus();
}

Status MaintenanceScheduler::RunDrill(MaintenanceRunRecord* run) {
  if (options_.drill.scratch_dir.empty()) {
    run->state = "failed";
    run->message += "no scratch directory for restore drills (--drill-dir)";
    return OkStatus();
  }
  ASSIGN_OR_RETURN(auto snaps, catalog_->ListSnapshots({.state = SnapshotState::kCompleted}));
  ASSIGN_OR_RETURN(auto drills, catalog_->ListRestoreDrills());
  // A resumed run skips what it drilled before it stopped.
  auto todo = PickDrillSnapshots(snaps, drills, options_.drill.per_account, run->run_id);
  std::vector<std::string> failed = SplitIds(run->damaged);  // a resumed run keeps what failed before
  for (const auto& s : todo) {
    if (Stopping() || !StillHolding()) return OkStatus();  // state stays running: Execute re-queues it
    DrillOutcome o = DrillSnapshot(repo_, pool_, s, options_.drill, clock_, &cancel_);
    if (o.stopped) return OkStatus();
    o.record.run_id = run->run_id;
    auto recorded = catalog_->RecordRestoreDrill(o.record);
    if (!recorded && recorded.error().code() != ErrorCode::kNotFound) return recorded;
    ++run->snapshots_checked;
    run->objects_checked += static_cast<int64_t>(o.blocks);
    run->message += o.summary + "; ";
    if (!o.record.ok) failed.push_back(s.snapshot_id);
    run->damaged = Join(failed);
    RETURN_IF_ERROR(catalog_->UpdateMaintenanceRun(*run));
  }
  run->state = failed.empty() ? "succeeded" : "failed";
  if (run->snapshots_checked == 0) run->message += "nothing to drill: no completed snapshot";
  else
    run->message += std::to_string(run->snapshots_checked) + " snapshot(s) drilled" +
                    (failed.empty() ? ", all restored" : "; drill failed: " + run->damaged);
  if (!failed.empty() && options_.events) {
    OperatorEvent e{kEventDrillFailed, "error",
                    "restore drill failed for " + std::to_string(failed.size()) + " snapshot(s)", clock_->NowMillis(),
                    {{"run_id", std::to_string(run->run_id)}}};
    for (const auto& id : failed) e.details.push_back({"snapshot_id", id});
    options_.events->Raise(std::move(e));
  }
  return OkStatus();
}

Status MaintenanceScheduler::HandleDamage(const std::vector<std::pair<std::string, std::string>>& damaged,
                                          const std::vector<Digest>& corrupt, std::vector<std::string>* named,
                                          std::string* note) {
  const int64_t now = clock_->NowMillis();
  const std::string when = FormatIso8601(now);
  std::set<std::string> marked;
  auto mark = [&](const std::string& id, const std::string& problem) -> Status {
    if (!marked.insert(id).second) return OkStatus();
    std::string message = "damaged: verification at " + when + " found: " + problem;
    if (message.size() > 500) message = message.substr(0, 497) + "...";
    auto st = catalog_->MarkSnapshotDamaged(id, now, problem, message);
    if (!st && st.error().code() == ErrorCode::kNotFound) return OkStatus();  // deleted meanwhile
    RETURN_IF_ERROR(st);
    // Best effort: a snapshot at its tag limit keeps its StateMessage only.
    (void)catalog_->SetTags(id, {{kDamagedTag, when}});
    if (std::find(named->begin(), named->end(), id) == named->end()) named->push_back(id);
    return OkStatus();
  };
  for (const auto& [id, problem] : damaged) RETURN_IF_ERROR(mark(id, problem));
  if (corrupt.empty()) return OkStatus();

  // Every other snapshot that references a damaged chunk is damaged too, checked today or not.
  DigestSet bad(corrupt.begin(), corrupt.end());
  ASSIGN_OR_RETURN(auto ids, repo_->ListManifestIds(false));
  for (const auto& id : ids) {
    if (marked.count(id)) continue;
    auto meta = repo_->GetManifest(id);
    if (!meta) continue;  // deleted meanwhile; a damaged root is verification's to find
    std::string hit;
    BlockMapReader reader(repo_, *meta);
    (void)reader.Walk([](uint32_t, const Digest&) -> Result<bool> { return true; },
                      [&](uint64_t, const Digest& c) -> Status {
                        if (hit.empty() && bad.count(c)) hit = ToHex(c);
                        return OkStatus();
                      });
    if (!hit.empty()) RETURN_IF_ERROR(mark(id, "chunk " + hit + " is damaged (found while checking another snapshot)"));
  }

  // Remove the damaged copies so that the next snapshot writes those blocks again instead of
  // finding them in the store. Published as a GC run: a snapshot that reused one of them and
  // finishes after this point waits, then finds it gone and fails (retryably) rather than
  // referencing it. One reused before (its mtime is recent) is left for the next check.
  std::array<uint8_t, 16> rid{};
  RETURN_IF_ERROR(RandomBytes(rid));
  GcRunInfo record;
  record.run_id = ToHex(rid);
  record.holder = ThisProcessHolder() + " (verification)";
  record.holder_start = ThisProcessStartToken();
  record.started_ms = record.heartbeat_ms = now;
  RETURN_IF_ERROR(repo_->PutGcRun(record));
  std::vector<Digest> removable;
  size_t reused = 0;
  for (const auto& c : corrupt) {
    auto mtime = repo_->ObjectMtime(ObjectKind::kChunk, c);
    if (!mtime) continue;  // gone already
    if (*mtime >= now - options_.gc_grace_ms) ++reused;
    else removable.push_back(c);
  }
  // Format 2 rewrites packs to drop them: never alongside a gc (a no-op check in format 1).
  Status removed = repo_->RequireSoleGcRun(record.run_id, now);
  if (removed) removed = repo_->DeleteObjects(ObjectKind::kChunk, removable);
  (void)repo_->RemoveGcRun(record.run_id);
  RETURN_IF_ERROR(removed);
  *note += "removed " + std::to_string(removable.size()) + " damaged chunk(s) so new snapshots write them again; ";
  if (reused) *note += std::to_string(reused) + " damaged chunk(s) left: written or reused in the grace period; ";
  return OkStatus();
}

}  // namespace snapvol::lifecycle
