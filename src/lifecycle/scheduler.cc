#include "lifecycle/scheduler.h"

#include <algorithm>
#include <map>
#include <set>

#include "core/file_util.h"
#include "core/ids.h"
#include "engine/snapshot_deletion.h"

namespace snapvol::lifecycle {
namespace {

using nlohmann::json;

bool IsInterruption(const std::string& message) {
  return message.rfind("interrupted", 0) == 0 || message.rfind("the service stopped", 0) == 0;
}

std::string TagValue(const std::vector<Tag>& tags, const std::string& key) {
  for (const auto& t : tags)
    if (t.key == key) return t.value;
  return {};
}

bool HasTag(const std::vector<Tag>& tags, const std::string& key) {
  return std::any_of(tags.begin(), tags.end(), [&](const Tag& t) { return t.key == key; });
}

// A volume's tags as a policy's TargetTags see them: its own, plus Name = its name when it has
// no Name tag.
std::vector<Tag> EffectiveTags(const VolumeRecord& v) {
  std::vector<Tag> tags = v.tags;
  if (!HasTag(tags, "Name") && !v.name.empty()) tags.push_back({"Name", v.name});
  return tags;
}

// DLM targets resources that carry any of the target tags.
bool Targeted(const std::vector<Tag>& target, const std::vector<Tag>& tags) {
  if (target.empty()) return true;  // a default policy: everything
  for (const auto& want : target)
    for (const auto& have : tags)
      if (want == have) return true;
  return false;
}

void SetTag(std::vector<Tag>* tags, const std::string& key, const std::string& value) {
  for (auto& t : *tags)
    if (t.key == key) {
      t.value = value;
      return;
    }
  tags->push_back({key, value});
}

// One snapshot set of a run: a volume (VOLUME policies) or an instance's volumes (INSTANCE).
struct Target {
  std::string instance_id;  // empty for a volume target
  std::vector<VolumeRecord> volumes;
};

}  // namespace

std::string NewPolicyId() { return "policy-" + NewSnapshotId().substr(5); }

bool IsPolicyId(const std::string& id) {
  return id.size() == 24 && id.rfind("policy-", 0) == 0 &&
         std::all_of(id.begin() + 7, id.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool IsDefaultPolicy(const LifecyclePolicyRecord& p) {
  auto tags = json::parse(p.tags, nullptr, false);
  return tags.is_object() && tags.contains(kDefaultPolicyTag) && tags[kDefaultPolicyTag] == "true";
}

LifecycleScheduler::LifecycleScheduler(Catalog* catalog, Repository* repo, SnapshotJobs* jobs, Clock* clock,
                                       SchedulerOptions options)
    : catalog_(catalog), repo_(repo), jobs_(jobs), clock_(clock), options_(std::move(options)) {}

LifecycleScheduler::~LifecycleScheduler() { Stop(); }

void LifecycleScheduler::Start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return;
  stop_ = false;
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

void LifecycleScheduler::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Status LifecycleScheduler::Tick() {
  lost_.clear();
  if (options_.lease != nullptr) {
    const auto now_held = options_.lease->Current();
    if (!now_held) return OkStatus();  // another host (or nobody) runs the policies
    held_ = *now_held;
  }
  Status first = OkStatus();
  auto note = [&](Status st) {
    if (!st && first) first = st;
  };
  note(EnsureDefaultPolicies());
  note(StartDueRuns());
  auto running = catalog_->ListRunningLifecycleRuns();
  if (!running) return std::unexpected(running.error());
  for (const auto& run : *running) {
    if (!lost_.empty()) break;  // stale: the new holder carries the runs on
    note(AdvanceRun(run));
  }
  return first;
}

Status LifecycleScheduler::CheckLease() {
  if (options_.lease == nullptr) return OkStatus();
  Status st = catalog_->CheckClusterLease(kLifecycleLease, held_.holder, held_.generation, clock_->NowMillis());
  if (!st && lost_.empty()) lost_ = st.error().message();
  return st;
}

Status LifecycleScheduler::EnsureDefaultPolicies() {
  ASSIGN_OR_RETURN(auto accounts, catalog_->AccountsWithoutDefaultLifecyclePolicy());
  for (const auto& account_id : accounts) {
    const int64_t now = clock_->NowMillis();
    LifecyclePolicyRecord p;
    p.policy_id = NewPolicyId();
    p.account_id = account_id;
    p.description = options_.default_schedule_name;
    p.state = "ENABLED";
    p.role_arn = "arn:aws:iam::" + account_id + ":role/snapvol-lifecycle-default";
    p.details = DefaultPolicyDetails(options_.default_schedule_name, options_.default_time_min,
                                     options_.default_retention)
                    .dump();
    p.tags = json{{kDefaultPolicyTag, "true"}}.dump();
    p.created_ms = p.modified_ms = now;
    auto st = catalog_->InsertDefaultLifecyclePolicy(p);
    if (!st && st.error().code() != ErrorCode::kAlreadyExists) return st;
  }
  return OkStatus();
}

Status LifecycleScheduler::StartDueRuns() {
  ASSIGN_OR_RETURN(auto policies, catalog_->ListLifecyclePolicies(std::nullopt));
  const int64_t now = clock_->NowMillis();
  for (const auto& p : policies) {
    if (p.state != "ENABLED") continue;
    auto details = ParsePolicyDetails(json::parse(p.details, nullptr, false), IsDefaultPolicy(p));
    if (!details) continue;  // validated when stored; a damaged row is left for an operator
    // Times before the policy took its present form do not count: a policy created (or
    // re-timed, or enabled) at 02:30 first runs at the next 02:00.
    const int64_t anchor = std::max(p.created_ms, p.modified_ms);
    for (const auto& s : details->schedules) {
      const int64_t due = LatestAtOrBefore(s.create, now + options_.schedule_clock_offset_ms);
      if (due == kNever || due < anchor) continue;
      ASSIGN_OR_RETURN(auto latest, catalog_->LatestLifecycleRun(p.policy_id, s.name));
      if (latest && due <= latest->scheduled_ms) continue;
      LifecycleRunRecord run;
      run.policy_id = p.policy_id;
      run.schedule_name = s.name;
      run.scheduled_ms = due;
      run.started_ms = now;
      run.host_id = held_.holder;
      run.lease_generation = held_.generation;
      run.missed = CountStrictlyBetween(s.create, std::max(anchor - 1, latest ? latest->scheduled_ms : anchor - 1), due);
      if (run.missed > 0)
        run.message = "caught up once for " + std::to_string(run.missed) +
                      " earlier scheduled time(s) missed while the service was down; ";
      if (now - due > 5 * 60'000)
        run.message += "started " + std::to_string((now - due) / 60'000) + " min after its scheduled time; ";
      auto st = catalog_->InsertLifecycleRun(run);
      if (!st && st.error().code() != ErrorCode::kAlreadyExists) return st;
    }
  }
  return OkStatus();
}

namespace {

// Keeps a policy snapshot's user tags within the 50 a resource holds (the system's own added
// after do not count). The schedule's tags (TagsToAdd, VariableTags) are what retention scripts
// and people filter on, so the tags copied from the volume are left out first, the last copied
// first; never silently: returns what was left out, in words, or "" when all fit.
std::string FitTagLimit(std::vector<Tag>* tags, const Schedule& sched) {
  if (tags->size() <= kMaxTagsPerResource) return "";
  auto schedules = [&](const std::string& key) {
    return HasTag(sched.tags_to_add, key) || HasTag(sched.variable_tags, key);
  };
  std::vector<std::string> left;
  for (size_t i = tags->size(); i-- > 0 && tags->size() > kMaxTagsPerResource;)
    if (!schedules((*tags)[i].key)) {
      left.insert(left.begin(), (*tags)[i].key);
      tags->erase(tags->begin() + static_cast<std::ptrdiff_t>(i));
    }
  while (tags->size() > kMaxTagsPerResource) {  // the schedule's alone are more than 50
    left.push_back(tags->back().key);
    tags->pop_back();
  }
  std::string keys;
  for (const auto& k : left) keys += (keys.empty() ? "" : ", ") + k;
  return std::to_string(left.size()) + " tag" + (left.size() == 1 ? "" : "s") +
         " left out of its snapshot, past the " + std::to_string(kMaxTagsPerResource) +
         " a snapshot holds (copied tags go first): " + keys;
}

}  // namespace

Status LifecycleScheduler::AdvanceRun(const LifecycleRunRecord& run_in) {
  LifecycleRunRecord run = run_in;
  std::string account_id;  // known once the policy is read
  // A write refused because a newer holder wrote the run: this host is stale and stops.
  auto fenced = [&](Status st) -> Status {
    if (!st && st.error().code() == ErrorCode::kConflict && options_.lease != nullptr) {
      if (lost_.empty()) lost_ = st.error().message();
      return OkStatus();
    }
    return st;
  };
  if (run.lease_generation > held_.generation) {
    // Advanced by a newer holder: this host's lease is stale (its keeper has not seen it yet).
    if (lost_.empty()) lost_ = "run of " + run.policy_id + " is carried on under lease generation " +
                               std::to_string(run.lease_generation) + " by " + run.host_id;
    return OkStatus();
  }
  if (run.host_id != held_.holder || run.lease_generation != held_.generation) {
    // Taken over: recorded before anything else is done for the run, so that the old holder's
    // writes to it are refused from now on.
    if (!run.host_id.empty())
      run.message += "carried on by " + held_.holder + " (lease generation " + std::to_string(held_.generation) +
                     ") after " + run.host_id + " stopped or lost the lease; ";
    run.host_id = held_.holder;
    run.lease_generation = held_.generation;
    Status claimed = fenced(catalog_->UpdateLifecycleRun(run));
    if (!claimed || !lost_.empty()) return claimed;
  }
  auto finish = [&](const std::string& state, const std::string& why) -> Status {
    run.state = state;
    run.finished_ms = clock_->NowMillis();
    run.message += why;
    RETURN_IF_ERROR(fenced(catalog_->UpdateLifecycleRun(run)));
    if (!lost_.empty()) return OkStatus();
    if (state != "succeeded") RaiseRunFailed(run, account_id);  // once: the run is no longer running
    return OkStatus();
  };
  auto policy = catalog_->GetLifecyclePolicy(run.policy_id);
  if (!policy) {
    if (policy.error().code() == ErrorCode::kNotFound) return finish("failed", "the policy was deleted during the run");
    return std::unexpected(policy.error());
  }
  account_id = policy->account_id;
  auto details = ParsePolicyDetails(json::parse(policy->details, nullptr, false), IsDefaultPolicy(*policy));
  if (!details) return finish("failed", "the policy does not parse: " + details.error().message());
  auto sched = std::find_if(details->schedules.begin(), details->schedules.end(),
                            [&](const Schedule& s) { return s.name == run.schedule_name; });
  if (sched == details->schedules.end()) return finish("failed", "the schedule was removed during the run");

  // What to snapshot now.
  ASSIGN_OR_RETURN(auto volumes, catalog_->ListVolumes(policy->account_id));
  std::vector<Target> targets;
  auto usable = [](const VolumeRecord& v) { return v.state != "creating" && v.state != "error"; };
  if (details->resource_type == "VOLUME") {
    for (const auto& v : volumes)
      if (usable(v) && Targeted(details->target_tags, EffectiveTags(v))) targets.push_back({"", {v}});
  } else {
    ASSIGN_OR_RETURN(auto instances, catalog_->ListInstances(policy->account_id));
    for (const auto& inst : instances) {
      if (!Targeted(details->target_tags, {{"Name", inst.name}})) continue;
      Target t{inst.instance_id, {}};
      for (const auto& v : volumes)
        if (v.instance_id == inst.instance_id && usable(v) && !(v.boot && details->exclude_boot_volume))
          t.volumes.push_back(v);
      if (!t.volumes.empty()) targets.push_back(std::move(t));
    }
  }

  // This run's snapshots so far, by volume.
  const std::string run_time = FormatIso8601(run.scheduled_ms);
  ASSIGN_OR_RETURN(auto made, catalog_->ListSnapshots({.account_id = policy->account_id,
                                                        .tag = Tag{kPolicyIdTag, policy->policy_id}}));
  std::map<std::string, std::vector<SnapshotRecord>> by_volume;
  for (auto& s : made)
    if (TagValue(s.tags, kScheduleTag) == run.schedule_name && TagValue(s.tags, kRunTag) == run_time)
      by_volume[s.volume_id].push_back(std::move(s));

  bool waiting = false;
  int64_t created = 0, failed = 0;
  std::vector<std::string> retained_volumes;
  std::vector<std::pair<std::string, std::vector<SnapshotJobRequest>>> batches;  // by instance ('' volumes)
  std::map<std::string, std::string> tag_notes;  // volume → what FitTagLimit left out of its snapshot
  const std::string description =
      "Created for policy: " + policy->policy_id + " schedule: " + run.schedule_name + " (automatic)";
  for (const auto& target : targets) {
    std::vector<SnapshotJobRequest> batch;
    const int64_t start = clock_->NowMillis();  // one instant per set: an instance's disks together
    for (const auto& v : target.volumes) {
      const auto& attempts = by_volume[v.volume_id];
      bool done = std::any_of(attempts.begin(), attempts.end(),
                              [](const SnapshotRecord& s) { return s.state == SnapshotState::kCompleted; });
      bool pending = std::any_of(attempts.begin(), attempts.end(),
                                 [](const SnapshotRecord& s) { return s.state == SnapshotState::kPending; });
      bool retry = !attempts.empty() && static_cast<int>(attempts.size()) < options_.max_attempts &&
                   std::all_of(attempts.begin(), attempts.end(), [](const SnapshotRecord& s) {
                     return s.state == SnapshotState::kError && IsInterruption(s.state_message);
                   });
      if (done) {
        ++created;
        retained_volumes.push_back(v.volume_id);
        continue;
      }
      if (pending) {
        waiting = true;
        continue;
      }
      if (!attempts.empty() && !retry) {
        ++failed;
        continue;
      }
      // Tags: copied from the volume, then the schedule's, then the variable ones, then ours.
      std::vector<Tag> tags;
      if (sched->copy_tags)
        for (const auto& t : v.tags)
          if (!HasReservedTagPrefix(t.key)) tags.push_back(t);  // user-defined tags only, as DLM
      if (!HasTag(tags, "Name") && !HasTag(sched->tags_to_add, "Name"))
        tags.push_back({"Name", TagValue(EffectiveTags(v), "Name")});
      for (const auto& t : sched->tags_to_add) SetTag(&tags, t.key, t.value);
      for (const auto& t : sched->variable_tags)
        SetTag(&tags, t.key, t.value == "$(instance-id)" ? target.instance_id : run_time);
      if (std::string left = FitTagLimit(&tags, *sched); !left.empty())
        tag_notes[v.volume_id] = v.volume_id + ": " + left + "; ";
      SetTag(&tags, kPolicyIdTag, policy->policy_id);
      SetTag(&tags, kScheduleTag, run.schedule_name);
      SetTag(&tags, kRunTag, run_time);
      batch.push_back({v, description, tags, start, false});
    }
    if (!batch.empty()) batches.emplace_back(target.instance_id, std::move(batch));
  }
  for (const auto& [instance_id, batch] : batches) {
    // A failure is not fatal for the run: the next tick tries again (the catalog was busy,
    // the service is stopping). A target that cannot be started 3 times counts as failed.
    std::string key = run.policy_id + "/" + run.schedule_name + "/" + run_time + "/" + batch.front().volume.volume_id;
    if (auto refused = quota_refusals_.find(key); refused != quota_refusals_.end()) {
      failed += static_cast<int64_t>(batch.size());
      run.message += refused->second;
      continue;
    }
    if (start_failures_[key] >= 3) {
      failed += static_cast<int64_t>(batch.size());
      run.message += "could not start a snapshot of " + batch.front().volume.volume_id + "; ";
      continue;
    }
    // An instance target's freeze hooks run around its cut (as DLM's scripts run for instance
    // targets only).
    // Fenced: the rows are inserted only while this host holds the lease, checked in their
    // transaction; a stale holder writes nothing and stops here.
    auto started = jobs_->Start(batch, instance_id, [this] { return CheckLease(); });
    if (!lost_.empty()) return OkStatus();
    if (!started && (started.error().code() == ErrorCode::kQuotaExceeded ||
                     started.error().code() == ErrorCode::kInvalidArgument)) {
      // Trying again cannot help until the team deletes snapshots or an operator raises its
      // quota, or (refused: an instance whose volumes live on different hosts) until its
      // volumes move: these volumes fail in this run, with the reason, and nothing was created.
      std::string why = "no snapshot of " + batch.front().volume.volume_id +
                        (batch.size() > 1 ? " and " + std::to_string(batch.size() - 1) + " more volume(s)" : "") +
                        ": " + started.error().message() + "; ";
      quota_refusals_[key] = why;
      failed += static_cast<int64_t>(batch.size());
      run.message += why;
      continue;
    }
    if (!started) ++start_failures_[key];
    waiting = true;
    if (!started) continue;
    // Said in the run's record as the snapshots start (the run is read again at every tick).
    std::string notes;
    for (const auto& j : batch)
      if (auto it = tag_notes.find(j.volume.volume_id); it != tag_notes.end()) notes += it->second;
    if (notes.empty()) continue;
    run.message += notes;
    RETURN_IF_ERROR(fenced(catalog_->UpdateLifecycleRun(run)));
    if (!lost_.empty()) return OkStatus();
  }
  if (waiting) return OkStatus();

  int64_t deleted = 0;
  auto kept = ApplyRetention(*policy, *sched, retained_volumes, &deleted);
  if (!lost_.empty()) return OkStatus();  // stale: the new holder applies retention and ends the run
  run.created = created;
  run.failed = failed;
  run.deleted = deleted;
  std::string outcome = std::to_string(created) + " snapshot(s) completed, " + std::to_string(failed) +
                        " failed, " + std::to_string(deleted) + " deleted by retention";
  if (targets.empty()) outcome = "no volume matched the policy's targets";
  if (!kept) outcome += "; retention failed: " + kept.error().message();
  std::string state = failed == 0 && kept ? "succeeded" : created == 0 && failed > 0 ? "failed" : "partial";
  return finish(state, outcome);
}

void LifecycleScheduler::RaiseRunFailed(const LifecycleRunRecord& run, const std::string& account_id) {
  if (!options_.events) return;
  OperatorEvent ev;
  ev.kind = kEventLifecycleRunFailed;
  ev.severity = run.state == "failed" ? "error" : "warning";
  ev.summary = "lifecycle run " + run.state + ": policy " + run.policy_id + " schedule " + run.schedule_name + " (" +
               std::to_string(run.created) + " snapshot(s) completed, " + std::to_string(run.failed) + " failed)";
  ev.time_ms = run.finished_ms;
  ev.details = {{"policy_id", run.policy_id},
                {"schedule", run.schedule_name},
                {"state", run.state},
                {"scheduled_time", FormatIso8601(run.scheduled_ms)},
                {"snapshots_created", std::to_string(run.created)},
                {"snapshots_failed", std::to_string(run.failed)},
                {"snapshots_deleted", std::to_string(run.deleted)},
                {"message", run.message}};
  if (!account_id.empty()) ev.details.insert(ev.details.begin() + 1, {"account_id", account_id});
  options_.events->Raise(std::move(ev));
}

Status LifecycleScheduler::ApplyRetention(const LifecyclePolicyRecord& policy, const Schedule& schedule,
                                          const std::vector<std::string>& volume_ids, int64_t* deleted) {
  ASSIGN_OR_RETURN(auto snaps, catalog_->ListSnapshots({.account_id = policy.account_id,
                                                         .state = SnapshotState::kCompleted,
                                                         .tag = Tag{kPolicyIdTag, policy.policy_id}}));
  const std::set<std::string> wanted(volume_ids.begin(), volume_ids.end());
  std::map<std::string, std::vector<SnapshotRecord>> by_volume;
  for (auto& s : snaps)
    if (wanted.count(s.volume_id) && TagValue(s.tags, kScheduleTag) == schedule.name)
      by_volume[s.volume_id].push_back(std::move(s));
  const int64_t cutoff = RetainCutoff(schedule.retain, clock_->NowMillis());
  for (auto& [volume, list] : by_volume) {
    std::sort(list.begin(), list.end(), [](const SnapshotRecord& a, const SnapshotRecord& b) {
      return a.start_time_ms != b.start_time_ms ? a.start_time_ms > b.start_time_ms : a.snapshot_id > b.snapshot_id;
    });
    for (size_t i = 1; i < list.size(); ++i) {  // the newest always stays
      const auto& s = list[i];
      bool expired = schedule.retain.count > 0 ? i >= static_cast<size_t>(schedule.retain.count)
                                               : s.start_time_ms < cutoff;
      if (!expired) continue;
      // One deletion path (engine/snapshot_deletion.h): a snapshot a running restore reads, or
      // one locked (LockSnapshot), is refused (kConflict) and stays until the next run.
      // A retention rule of the account may keep it in the Recycle Bin, as for any deletion.
      // Fenced: deleted only while this host holds the lease, checked in the deletion's
      // transaction; a stale holder deletes nothing more.
      auto del = DeleteSnapshot({.catalog = catalog_, .repo = repo_, .recycle_bin = options_.recycle_bin,
                                 .fence = [this] { return CheckLease(); }},
                                s.snapshot_id, clock_->NowMillis());
      if (!lost_.empty()) return del ? OkStatus() : del;
      if (!del && del.error().code() == ErrorCode::kConflict) continue;
      if (!del && del.error().code() != ErrorCode::kNotFound) return del;
      if (del) ++*deleted;
    }
  }
  return OkStatus();
}

}  // namespace snapvol::lifecycle
