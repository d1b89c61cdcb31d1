#include "engine/snapshot_jobs.h"

#include <algorithm>
#include <chrono>
#include <map>

#include "core/ids.h"
#include "core/service_metrics.h"
#include "volume/block_source.h"
#include "volume/cut_sources.h"

namespace snapvol {

std::optional<int> ProgressToWrite(int last_written, int percent) {
  const int pct = std::min(percent, 99);
  if (pct / kProgressStepPercent == last_written / kProgressStepPercent) return std::nullopt;
  return pct;
}

void AddSourceTags(const PreparedSource& p, bool has_parent, std::vector<Tag>* tags) {
  std::string consistency = p.consistency, changed = p.changed_blocks;
  if (consistency.empty())
    consistency = p.source && p.source->point_in_time() ? "point-in-time" : kConsistencyReadWhileRunning;
  if (changed.empty())
    changed = !has_parent          ? "full snapshot (no parent)"
              : p.maybe_changed    ? "changed-block tracking"
                                   : "full read (every block compared with the parent's)";
  // The freeze hooks' note, when they ran, comes first: "application-consistent; point-in-time
  // (reflink)".
  // A volume read live stays frozen until it has been read (SnapshotJobs::Start), so after a
  // pre-command that succeeded its copy is consistent although it was not cut.
  const bool live = !(p.source && p.source->point_in_time());
  for (const Tag& t : *tags)
    if (t.key == kConsistencyTag && !t.value.empty())
      consistency = live && t.value == kApplicationConsistent ? t.value + " (frozen until it was read)"
                                                              : t.value + "; " + consistency;
  std::erase_if(*tags, [](const Tag& t) { return t.key == kConsistencyTag || t.key == kChangedBlocksTag; });
  tags->push_back({kConsistencyTag, ClipTagValue(consistency)});
  tags->push_back({kChangedBlocksTag, ClipTagValue(changed)});
}

Status CheckCutOnOneHost(Catalog& catalog, const std::vector<SnapshotJobRequest>& requests,
                         const std::string& instance_id) {
  std::map<std::string, std::vector<std::string>> by_host;  // host id ('' : none) → its volumes
  for (const auto& r : requests) by_host[r.volume.host_id].push_back(r.volume.volume_id);
  if (by_host.size() <= 1) return OkStatus();
  ASSIGN_OR_RETURN(std::vector<HostRecord> hosts, catalog.ListHosts());
  std::string where;
  for (const auto& [host_id, volumes] : by_host) {
    std::string name = host_id.empty() ? "no host" : host_id;
    for (const auto& h : hosts)
      if (h.host_id == host_id && !h.name.empty()) name = h.name + " (" + host_id + ")";
    where += (where.empty() ? "" : "; ") + name + ":";
    for (const auto& v : volumes) where += " " + v;
  }
  return InvalidArgument("The volumes of " + instance_id + " live on different hosts (" + where +
                         "): snapvol cannot cut them at one instant. Snapshot them one at a time"
                         " with CreateSnapshot, or keep the instance's volumes on one host.");
}

SnapshotJobs::SnapshotJobs(Repository* repo, Catalog* catalog, ThreadPool* pool,
                           std::string runner_id, size_t runners, Clock* clock)
    : repo_(repo), catalog_(catalog), pool_(pool), runner_id_(std::move(runner_id)), clock_(clock) {
  for (size_t i = 0; i < std::max<size_t>(1, runners); ++i)
    runners_.emplace_back([this] { RunnerLoop(); });
}

SnapshotJobs::~SnapshotJobs() { Shutdown(); }

std::string SnapshotJobs::RoutedTo(const VolumeRecord& volume) const {
  // A volume this catalog's host does not hold is snapshotted by the host that does. Without a
  // local host (a catalog opened outside a data dir) or a volume's host, everything runs here.
  return catalog_->HostElsewhere(volume.host_id);
}

Result<std::vector<SnapshotRecord>> SnapshotJobs::Start(const std::vector<SnapshotJobRequest>& requests,
                                                        const std::string& instance_id, const StartFence& fence) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return MakeError(ErrorCode::kConflict, "the service is shutting down", true);
  }
  if (!instance_id.empty()) RETURN_IF_ERROR(CheckCutOnOneHost(*catalog_, requests, instance_id));
  // A volume being rolled back in place is half old, half new until its task ends: a
  // snapshot of it now would record neither. (Its task's safety snapshot starts before the
  // task's row exists, so it is not refused here.)
  ASSIGN_OR_RETURN(auto rolling_back, catalog_->ListUnfinishedReplaceRootVolumeTasks());
  for (const auto& req : requests)
    for (const auto& t : rolling_back)
      if (t.volume_id == req.volume.volume_id)
        return Conflict("volume " + t.volume_id + " is being rolled back in place by task " + t.task_id +
                        "; snapshot it once the task has ended");
  std::vector<Job> jobs;
  for (const auto& req : requests) {
    SnapshotRecord rec;
    rec.snapshot_id = NewSnapshotId();
    rec.volume_id = req.volume.volume_id;
    rec.account_id = req.volume.account_id;
    rec.state = SnapshotState::kPending;
    rec.progress = "0%";
    rec.start_time_ms = req.start_time_ms ? req.start_time_ms : clock_->NowMillis();
    rec.volume_size_bytes = req.volume.size_bytes;
    rec.block_size = repo_->block_size();
    rec.description = req.description;
    rec.encrypted = repo_->encrypted();
    std::string routed_to = RoutedTo(req.volume);
    // A routed snapshot is no process's yet: its host claims it from the queue (RunQueued).
    rec.runner = routed_to.empty() ? runner_id_ : QueuedRunner(routed_to);
    rec.tags = req.tags;
    if (!req.full) {
      auto parent = catalog_->LatestCompletedSnapshot(req.volume.volume_id);
      if (parent) rec.parent_snapshot_id = parent->snapshot_id;
      else if (parent.error().code() != ErrorCode::kNotFound) return std::unexpected(parent.error());
    }
    jobs.push_back({rec, req, {}, nullptr, std::move(routed_to)});
  }
  // The freeze hooks and the cut of the volumes held here (an instance's volumes are all here
  // or all on one other host, whose claim runs its hooks and its cut).
  ASSIGN_OR_RETURN(std::optional<std::string> hooks_failed, CutJobs(jobs, instance_id, /*check_quota=*/true));
  if (hooks_failed) return InsertFailed(jobs, *hooks_failed + "; no data was taken", fence);
  auto release = [&] {
    for (auto& j : jobs) Done(j, false);
  };
  const int64_t now_ms = clock_->NowMillis();
  auto inserted = catalog_->Transaction([&]() -> Status {
    // The caller's fence (a lifecycle run: this host still holds the cluster lease), asked under
    // the write lock that every other write transaction waits for: nobody can take the lease
    // between this check and the commit.
    if (fence) RETURN_IF_ERROR(fence());
    for (const auto& j : jobs) RETURN_IF_ERROR(catalog_->InsertSnapshot(j.record));
    // One queue row per routed CreateSnapshot; an instance's cut is one row, cut together.
    std::vector<SnapshotJobRecord> queued;
    for (const auto& j : jobs) {
      if (j.routed_to.empty()) continue;
      if (instance_id.empty() || queued.empty())
        queued.push_back({j.record.snapshot_id, j.routed_to, instance_id, {}, j.request.full, now_ms, "", 0});
      queued.back().snapshot_ids.push_back(j.record.snapshot_id);
    }
    for (const auto& q : queued) RETURN_IF_ERROR(catalog_->EnqueueSnapshotJob(q));
    return OkStatus();
  });
  if (!inserted) {
    release();
    return std::unexpected(inserted.error());
  }
  std::vector<SnapshotRecord> out;
  {
    std::lock_guard lock(mu_);
    if (stopping_) {
      // The caller is told no: routed rows end too (their host drops a job whose rows ended).
      for (const auto& j : jobs)
        (void)catalog_->MarkError(j.record.snapshot_id, "the service stopped before the snapshot started");
      release();
      return MakeError(ErrorCode::kConflict, "the service is shutting down", true);
    }
    for (auto& j : jobs) {
      out.push_back(j.record);
      if (j.routed_to.empty()) queues_[j.record.account_id].push_back(std::move(j));
    }
  }
  cv_.notify_all();
  return out;
}

Result<std::optional<std::string>> SnapshotJobs::CutJobs(std::vector<Job>& jobs, const std::string& instance_id,
                                                         bool check_quota) {
  std::vector<Job*> here;
  for (auto& j : jobs)
    if (j.routed_to.empty()) here.push_back(&j);
  if (here.empty()) return std::nullopt;
  // The instance's freeze hooks: the pre-command now, before the cut and outside every lock.
  // `freeze` thaws (post-command) when the last reference goes: at the latest when this call
  // returns, whichever way.
  std::shared_ptr<FreezeSession> freeze;
  if (!instance_id.empty()) {
    auto hooks = catalog_->GetInstanceHooks(instance_id);
    if (!hooks && hooks.error().code() != ErrorCode::kNotFound) return std::unexpected(hooks.error());
    if (hooks) {
      // Over the snapshot quota nothing is frozen: the insert below would refuse the snapshots
      // after the file systems had been held for nothing. (The insert still decides.) A claimed
      // job's rows are in already.
      if (check_quota) {
        std::map<std::string, uint64_t> per_account;
        for (const Job* j : here) ++per_account[j->record.account_id];
        for (const auto& [account_id, n] : per_account) RETURN_IF_ERROR(catalog_->CheckSnapshotQuota(account_id, n));
      }
      std::vector<std::string> volume_ids, snapshot_ids;
      for (const Job* j : here) {
        volume_ids.push_back(j->record.volume_id);
        snapshot_ids.push_back(j->record.snapshot_id);
      }
      freeze = std::make_shared<FreezeSession>(std::move(*hooks), std::move(volume_ids), std::move(snapshot_ids),
                                               hook_runner_, hook_reporter_);
      freeze->Freeze();
      if (freeze->fails_snapshots()) return std::optional<std::string>(freeze->failure());
      const std::string note = freeze->ConsistencyNote();
      // Read by AddSourceTags below, which puts how each volume was cut after it (reserved tags
      // do not count toward the 50 a snapshot may have).
      for (Job* j : here)
        if (!note.empty()) j->record.tags.push_back({kConsistencyTag, note});
    }
  }
  // The instant of the snapshots: the sources are cut now (the caller holds any barrier that
  // makes several cuts one instant).
  if (provider_) {
    std::vector<CutRequest> cuts;
    for (const Job* j : here) cuts.push_back({j->request.volume, j->record.snapshot_id, j->record.parent_snapshot_id});
    auto prepared = provider_->PrepareAll(cuts);
    if (!prepared) return std::unexpected(prepared.error());
    for (size_t i = 0; i < here.size(); ++i)
      if ((*prepared)[i]) here[i]->prepared = std::move(*(*prepared)[i]);
  }
  // The cut is made: writes go on.
  // A job that reads its volume live keeps it frozen until it has read it; the others are cut.
  // (After a failed pre-command there is nothing to keep: thaw what may be half frozen now.)
  // (A prepared source that is not point in time, e.g. an image on a file system without
  // reflink, is read live too.)
  for (Job* j : here)
    if (!(j->prepared.source && j->prepared.source->point_in_time()) && freeze && freeze->frozen()) j->freeze = freeze;
  freeze.reset();  // thaws now unless a job holds it
  for (Job* j : here) AddSourceTags(j->prepared, !j->record.parent_snapshot_id.empty(), &j->record.tags);
  return std::nullopt;
}

Status SnapshotJobs::RunQueued(const SnapshotJobRecord& queued_job) {
  const std::string queued = QueuedRunner(queued_job.host_id);
  const std::string& job_id = queued_job.job_id;
  if (queued_job.claimed_by != runner_id_)
    return Conflict("snapshot job " + job_id + " is claimed by '" + queued_job.claimed_by + "', not by " + runner_id_);
  std::vector<Job> jobs;
  // Ends every snapshot still waiting for this job `error` (never pending forever), then the job.
  auto fail_all = [&](const std::string& why) -> Status {
    for (auto& j : jobs) {
      Done(j, false);
      RaiseFailed(j.record, why);
      (void)catalog_->MarkError(j.record.snapshot_id, why);
    }
    return catalog_->FinishSnapshotJob(job_id, runner_id_);
  };
  for (const auto& id : queued_job.snapshot_ids) {
    auto rec = catalog_->GetSnapshot(id);
    if (!rec && rec.error().code() == ErrorCode::kNotFound) continue;  // deleted meanwhile
    if (!rec) return fail_all("its host could not read the snapshot's row: " + rec.error().message());
    // Ended meanwhile (by a recovery that judged this host gone), or not this queue's.
    if (rec->state != SnapshotState::kPending || rec->runner != queued) continue;
    Job j;
    j.record = *rec;
    auto vol = catalog_->GetVolume(rec->volume_id);
    std::string why;
    if (!vol) why = "its host could not read volume " + rec->volume_id + ": " + vol.error().message();
    else if (vol->host_id != queued_job.host_id)
      why = "volume " + rec->volume_id + " no longer lives on host " + queued_job.host_id + " (now: '" +
            vol->host_id + "')";
    if (!why.empty()) {
      RaiseFailed(j.record, why);
      (void)catalog_->MarkError(id, why);
      continue;
    }
    j.request = {*vol, rec->description, rec->tags, rec->start_time_ms, queued_job.full};
    jobs.push_back(std::move(j));
  }
  if (jobs.empty()) return catalog_->FinishSnapshotJob(job_id, runner_id_);
  {
    std::lock_guard lock(mu_);
    if (stopping_) return fail_all("the service stopped before the snapshot started");
  }
  auto cut = CutJobs(jobs, queued_job.instance_id, /*check_quota=*/false);
  if (!cut) return fail_all("the cut failed: " + cut.error().message());
  if (*cut) return fail_all(**cut + "; no data was taken");
  // The rows become this process's, with the tags that say how they were cut, and the job
  // leaves the queue: all at once, so a snapshot is either queued or running, never neither.
  auto started = catalog_->Transaction([&]() -> Status {
    for (const auto& j : jobs) {
      RETURN_IF_ERROR(catalog_->HandOverSnapshot(j.record.snapshot_id, queued, runner_id_));
      RETURN_IF_ERROR(catalog_->SetTags(j.record.snapshot_id, j.record.tags));
    }
    return catalog_->FinishSnapshotJob(job_id, runner_id_);
  });
  if (!started) {
    Status ended = fail_all("its host could not start the snapshot: " + started.error().message());
    (void)ended;
    return std::unexpected(started.error());
  }
  {
    std::lock_guard lock(mu_);
    if (stopping_) {
      for (auto& j : jobs) {
        (void)catalog_->MarkError(j.record.snapshot_id, "the service stopped before the snapshot started");
        Done(j, false);
      }
      return OkStatus();
    }
    for (auto& j : jobs) {
      j.record.runner = runner_id_;
      queues_[j.record.account_id].push_back(std::move(j));
    }
  }
  cv_.notify_all();
  return OkStatus();
}

void SnapshotJobs::RaiseFailed(const SnapshotRecord& rec, const std::string& why) {
  // Raised before the row says error: whoever sees the error (a lifecycle run settling)
  // finds the event already raised, so the snapshot's event comes before the run's.
  if (!events_ || cancel_) return;
  OperatorEvent ev;
  ev.kind = kEventSnapshotFailed;
  ev.severity = "error";
  ev.summary = "snapshot " + rec.snapshot_id + " of " + rec.volume_id + " failed: " + why;
  ev.time_ms = clock_->NowMillis();
  ev.details = {{"snapshot_id", rec.snapshot_id}, {"volume_id", rec.volume_id},
                {"account_id", rec.account_id},   {"description", rec.description},
                {"message", why}};
  events_->Raise(std::move(ev));
}

Result<std::vector<SnapshotRecord>> SnapshotJobs::InsertFailed(std::vector<Job>& jobs, const std::string& why,
                                                               const StartFence& fence) {
  for (auto& j : jobs) {
    j.record.state = SnapshotState::kError;
    j.record.state_message = why;
    RaiseFailed(j.record, why);
  }
  auto inserted = catalog_->Transaction([&]() -> Status {
    if (fence) RETURN_IF_ERROR(fence());  // as in Start: a stale caller records no failure either
    for (const auto& j : jobs) RETURN_IF_ERROR(catalog_->InsertSnapshot(j.record));
    return OkStatus();
  });
  if (!inserted) return std::unexpected(inserted.error());
  std::vector<SnapshotRecord> out;
  for (const auto& j : jobs) out.push_back(j.record);
  return out;
}

bool SnapshotJobs::PopFairLocked(Job* out) {
  if (queues_.empty()) return false;
  // The next account after the one served last, wrapping around.
  auto it = queues_.upper_bound(last_account_);
  if (it == queues_.end()) it = queues_.begin();
  *out = std::move(it->second.front());
  it->second.pop_front();
  last_account_ = it->first;
  if (it->second.empty()) queues_.erase(it);
  return true;
}

void SnapshotJobs::RunnerLoop() {
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queues_.empty(); });
      if (stopping_) return;
      PopFairLocked(&job);
    }
    Run(job);
  }
}

void ReleaseCuts(std::vector<std::optional<PreparedSource>>& cuts) {
  for (auto& c : cuts)
    if (c && c->on_done) {
      auto done = std::move(c->on_done);
      c->on_done = nullptr;
      done(false);
    }
}

Result<std::vector<std::optional<PreparedSource>>> SourceProvider::PrepareAll(const std::vector<CutRequest>& cuts) {
  std::vector<VolumeRecord> volumes;
  for (const auto& c : cuts) volumes.push_back(c.volume);
  ASSIGN_OR_RETURN(auto held, HoldWrites(volumes));
  std::vector<std::optional<PreparedSource>> out;
  for (const auto& c : cuts) {
    auto p = Prepare(c.volume, c.snapshot_id, c.parent_id);
    if (!p) {
      ReleaseCuts(out);
      return std::unexpected(p.error());
    }
    out.push_back(std::move(*p));
  }
  return out;
}

void SnapshotJobs::Done(Job& job, bool completed) {
  if (job.prepared.on_done) {
    auto done = std::move(job.prepared.on_done);
    job.prepared.on_done = nullptr;
    done(completed);
  }
}

namespace {

// What a completed snapshot did, for throughput, dedup and compression metrics.
void RecordCompleted(const SnapshotStats& st) {
  auto& m = ServiceMetrics();
  m.snapshot_volume_bytes.With()->Add(static_cast<double>(st.volume_bytes));
  m.snapshot_read_bytes.With()->Add(static_cast<double>(st.bytes_read));
  m.snapshot_new_plain_bytes.With()->Add(static_cast<double>(st.new_chunk_plain_bytes));
  m.snapshot_new_stored_bytes.With()->Add(static_cast<double>(st.new_chunk_bytes));
  m.snapshot_blocks.With({"new"})->Add(static_cast<double>(st.new_chunks));
  m.snapshot_blocks.With({"dedup"})->Add(static_cast<double>(st.dedup_blocks));
  m.snapshot_blocks.With({"unchanged"})->Add(static_cast<double>(st.unchanged_blocks));
  m.snapshot_blocks.With({"hole"})->Add(static_cast<double>(st.hole_blocks));
  m.snapshot_blocks.With({"zero"})->Add(static_cast<double>(st.zero_blocks));
}

}  // namespace

void SnapshotJobs::Run(Job& job) {
  const SnapshotRecord& rec = job.record;
  const auto started = std::chrono::steady_clock::now();
  auto count = [&](const char* outcome) {
    auto& m = ServiceMetrics();
    m.snapshot_jobs.With({rec.account_id, outcome})->Add();
    m.snapshot_duration.With({outcome})->Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  };
  auto fail = [&](const std::string& why) {
    RaiseFailed(rec, why);
    (void)catalog_->MarkError(rec.snapshot_id, why);
    count("error");
    Done(job, false);
  };
  std::shared_ptr<BlockSource> source = job.prepared.source;
  if (!source) {
    auto src = FileSource::Open(job.request.volume.path);
    if (!src) return fail("cannot read the volume: " + src.error().message());
    source = std::move(*src);
  }
  SnapshotRequest req;
  req.snapshot_id = rec.snapshot_id;
  req.volume_id = rec.volume_id;
  req.owner_id = rec.account_id;
  req.description = rec.description;
  for (const auto& t : rec.tags) req.tags.emplace_back(t.key, t.value);
  req.parent_id = rec.parent_snapshot_id;
  req.start_time_ms = rec.start_time_ms;
  req.lease_holder = runner_id_;
  req.maybe_changed = job.prepared.maybe_changed;
  int written_pct = 0;
  auto progress = [&](const JobProgress& p) {
    if (auto pct = ProgressToWrite(written_pct, p.Percent())) {
      written_pct = *pct;
      (void)catalog_->UpdateProgress(rec.snapshot_id, std::to_string(*pct) + "%");
    }
  };
  SnapshotEngine engine(repo_, pool_);
  auto out = engine.Create(source.get(), req, progress, &cancel_);
  if (!out) return fail(cancel_ ? "the service stopped while the snapshot was taken"
                                : out.error().message());
  auto st = catalog_->MarkCompleted(rec.snapshot_id, out->manifest.completed_time_ms,
                                    out->manifest.stored_bytes, out->manifest.changed_blocks,
                                    out->stats.blocks);
  (void)st;  // kConflict only if someone else settled it; the manifest is published either way
  RecordCompleted(out->stats);
  count("completed");
  Done(job, true);
}

void SnapshotJobs::Shutdown() {
  std::map<std::string, std::deque<Job>> left;
  {
    std::lock_guard lock(mu_);
    if (stopping_ && runners_.empty()) return;
    stopping_ = true;
    left.swap(queues_);
  }
  cancel_ = true;
  cv_.notify_all();
  for (auto& t : runners_) t.join();
  runners_.clear();
  for (auto& [account, jobs] : left)
    for (auto& j : jobs) {
      (void)catalog_->MarkError(j.record.snapshot_id, "the service stopped before the snapshot started");
      Done(j, false);
    }
}

size_t SnapshotJobs::queued() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [a, q] : queues_) n += q.size();
  return n;
}

}  // namespace snapvol
