#include "engine/snapshot_jobs.h"

#include <chrono>
#include <map>

#include "core/ids.h"
#include "core/service_metrics.h"
#include "volume/block_source.h"
#include "volume/cut_sources.h"

namespace snapvol {

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

Result<std::vector<SnapshotRecord>> SnapshotJobs::Start(const std::vector<SnapshotJobRequest>& requests,
                                                        const std::string& instance_id) {
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
    rec.runner = runner_id_;
    rec.tags = req.tags;
    if (!req.full) {
      auto parent = catalog_->LatestCompletedSnapshot(req.volume.volume_id);
      if (parent) rec.parent_snapshot_id = parent->snapshot_id;
      else if (parent.error().code() != ErrorCode::kNotFound) return std::unexpected(parent.error());
    }
    jobs.push_back({rec, req, {}, nullptr});
  }
  // The instance's freeze hooks: the pre-command now, before the cut and outside every lock.
  // `freeze` thaws (post-command) when the last reference goes: at the latest when this call
  // returns, whichever way.
  std::shared_ptr<FreezeSession> freeze;
  if (!instance_id.empty()) {
    auto hooks = catalog_->GetInstanceHooks(instance_id);
    if (!hooks && hooks.error().code() != ErrorCode::kNotFound) return std::unexpected(hooks.error());
    if (hooks) {
      // Over the snapshot quota nothing is frozen: the insert below would refuse the snapshots
      // after the file systems had been held for nothing. (The insert still decides.)
      std::map<std::string, uint64_t> per_account;
      for (const auto& j : jobs) ++per_account[j.record.account_id];
      for (const auto& [account_id, n] : per_account) RETURN_IF_ERROR(catalog_->CheckSnapshotQuota(account_id, n));
      std::vector<std::string> volume_ids, snapshot_ids;
      for (const auto& j : jobs) {
        volume_ids.push_back(j.record.volume_id);
        snapshot_ids.push_back(j.record.snapshot_id);
      }
      freeze = std::make_shared<FreezeSession>(std::move(*hooks), std::move(volume_ids), std::move(snapshot_ids),
                                               hook_runner_, hook_reporter_);
      freeze->Freeze();
      if (freeze->fails_snapshots()) return InsertFailed(jobs, freeze->failure() + "; no data was taken");
      const std::string note = freeze->ConsistencyNote();
      // Read by AddSourceTags below, which puts how each volume was cut after it (reserved tags
      // do not count toward the 50 a snapshot may have).
      for (auto& j : jobs)
        if (!note.empty()) j.record.tags.push_back({kConsistencyTag, note});
    }
  }
  // The instant of the snapshots: the sources are cut now (the caller holds any barrier that
  // makes several cuts one instant).
  auto release = [&] {
    for (auto& j : jobs) Done(j, false);
  };
  if (provider_) {
    std::vector<CutRequest> cuts;
    for (const auto& j : jobs) cuts.push_back({j.request.volume, j.record.snapshot_id, j.record.parent_snapshot_id});
    auto prepared = provider_->PrepareAll(cuts);
    if (!prepared) {
      release();
      return std::unexpected(prepared.error());
    }
    for (size_t i = 0; i < jobs.size(); ++i)
      if ((*prepared)[i]) jobs[i].prepared = std::move(*(*prepared)[i]);
  }
  // The cut is made: writes go on.
  // A job that reads its volume live keeps it frozen until it has read it; the others are cut.
  // (After a failed pre-command there is nothing to keep: thaw what may be half frozen now.)
  // (A prepared source that is not point in time, e.g. an image on a file system without
  // reflink, is read live too.)
  for (auto& j : jobs)
    if (!(j.prepared.source && j.prepared.source->point_in_time()) && freeze && freeze->frozen()) j.freeze = freeze;
  freeze.reset();  // thaws now unless a job holds it
  for (auto& j : jobs) AddSourceTags(j.prepared, !j.record.parent_snapshot_id.empty(), &j.record.tags);
  auto inserted = catalog_->Transaction([&]() -> Status {
    for (const auto& j : jobs) RETURN_IF_ERROR(catalog_->InsertSnapshot(j.record));
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
      for (const auto& j : jobs)
        (void)catalog_->MarkError(j.record.snapshot_id, "the service stopped before the snapshot started");
      release();
      return MakeError(ErrorCode::kConflict, "the service is shutting down", true);
    }
    for (auto& j : jobs) {
      out.push_back(j.record);
      queues_[j.record.account_id].push_back(std::move(j));
    }
  }
  cv_.notify_all();
  return out;
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

Result<std::vector<SnapshotRecord>> SnapshotJobs::InsertFailed(std::vector<Job>& jobs, const std::string& why) {
  for (auto& j : jobs) {
    j.record.state = SnapshotState::kError;
    j.record.state_message = why;
    RaiseFailed(j.record, why);
  }
  auto inserted = catalog_->Transaction([&]() -> Status {
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
  int last_pct = 0;
  auto progress = [&](const JobProgress& p) {
    int pct = std::min(p.Percent(), 99);
    if (pct != last_pct) {
      last_pct = pct;
      (void)catalog_->UpdateProgress(rec.snapshot_id, std::to_string(pct) + "%");
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
