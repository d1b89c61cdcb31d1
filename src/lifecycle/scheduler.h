// LifecycleScheduler: runs lifecycle (DLM) policies in the daemon.
//
// Each Tick():
//  1. gives every account that never had one its default policy ("daily-0200-utc": every
//     volume, daily at the configured UTC time, keep the configured count), once;
//  2. for each ENABLED policy and schedule, starts a run when a scheduled time has passed that
//     is later than the schedule's last run and not before the policy was created. After
//     downtime this is one run for the latest missed time, however many were missed; the
//     others are counted in the run's `missed`. A run is a catalog row keyed by policy,
//     schedule and time, so it happens once, across restarts too;
//  3. advances every running run: snapshots the targets that have no snapshot of this run yet
//     (so a run interrupted by a restart carries on without duplicates; a snapshot cut short
//     by a stop is retried, at most 3 times), and once all of them have settled applies the
//     retention rule and records the outcome (created, failed, deleted).
// Snapshots a policy makes carry the system tags aws:dlm:lifecycle-policy-id and
// aws:dlm:lifecycle-schedule-name (AWS DLM's keys) and aws:snapvol:lifecycle-run (the run's
// scheduled time; core/system_tags.h); retention considers only those of the same policy and schedule,
// never a pending one and never one a running restore reads. Manual snapshots are never
// touched. The snapshot jobs queue (bounded runners, fair between accounts) spreads a run's
// work: 500 volumes are queued at once but only `runners` read at a time.
//
//
// Once per cluster (docs/multi-host.md part 4): with options.lease set (snapvold's LeaseKeeper
// of the cluster lease `lifecycle`), Tick does nothing unless this host holds that lease: not
// even the default policies. A run records the host and the lease generation it was started or
// last advanced under (lifecycle_runs.host_id, lease_generation), and its record is fenced by
// it (Catalog::UpdateLifecycleRun refuses a lower generation). What cannot be repeated is fenced
// by the lease as the catalog holds it (CheckClusterLease), inside the write transaction that
// does it: the insert of a run's pending snapshot rows (SnapshotJobs::Start's fence) and each
// retention deletion (SnapshotDeletion::fence). A holder that finds its lease stale stops the
// pass there and writes nothing; the new holder carries the run on: the snapshots the old one
// started (pending, queued for their hosts included) count as this run's, so none is taken
// twice. Without options.lease (tests, one host) this process always holds.
//
// Thread-safety: Tick() may be called from any thread but not concurrently with itself;
// Start() runs it every second on a thread of its own until Stop().
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "catalog/catalog.h"
#include "core/clock.h"
#include "core/events.h"
#include "core/system_tags.h"
#include "engine/recycle_bin.h"
#include "engine/snapshot_jobs.h"
#include "lifecycle/held_lease.h"
#include "lifecycle/policy_details.h"
#include "store/repository.h"

namespace snapvol::lifecycle {

inline constexpr char kDefaultPolicyTag[] = "snapvol:default-policy";
// The cluster lease under which lifecycle policies run.
inline constexpr char kLifecycleLease[] = "lifecycle";

struct SchedulerOptions {
  int default_retention = 7;       // Count of the default policy given to new accounts
  int default_time_min = 2 * 60;   // its daily time, minutes after 00:00 UTC
  std::string default_schedule_name = "daily-0200-utc";
  int max_attempts = 3;            // snapshots of one volume in one run, when stops interrupt them
  // Told of every run that ends failed or partial (kEventLifecycleRunFailed); not owned, may
  // be null.
  EventSink* events = nullptr;
  // The daemon's default Recycle Bin rule, for the snapshots retention deletes.
  RecycleBinSettings recycle_bin = {};
  // The cluster lease `lifecycle` (optional, see above); must outlive the scheduler.
  HeldLease* lease = nullptr;
  // For tests (snapvold --schedule-clock-offset-seconds): which scheduled time is due is judged
  // this far ahead of the clock; a run's times, retention and the lease keep the real clock.
  int64_t schedule_clock_offset_ms = 0;
};

// The lifecycle policy id format: "policy-" + 17 lowercase hex digits.
std::string NewPolicyId();
bool IsPolicyId(const std::string& id);

// True when the stored policy is an account's default policy (its Tags say so).
bool IsDefaultPolicy(const LifecyclePolicyRecord& p);

class LifecycleScheduler {
 public:
  LifecycleScheduler(Catalog* catalog, Repository* repo, SnapshotJobs* jobs, Clock* clock,
                     SchedulerOptions options = {});
  ~LifecycleScheduler();  // Stop()
  LifecycleScheduler(const LifecycleScheduler&) = delete;
  LifecycleScheduler& operator=(const LifecycleScheduler&) = delete;

  // One pass (see above). Errors of one policy are recorded in its run and do not stop the
  // others; the returned status is the first catalog failure, if any.
  Status Tick();

  void Start();
  void Stop();

 private:
  Status EnsureDefaultPolicies();
  Status StartDueRuns();
  Status AdvanceRun(const LifecycleRunRecord& run);
  void RaiseRunFailed(const LifecycleRunRecord& run, const std::string& account_id);
  Status ApplyRetention(const LifecyclePolicyRecord& policy, const Schedule& schedule,
                        const std::vector<std::string>& volume_ids, int64_t* deleted);
  // OK while this host holds the lease under held_ (asked of the catalog); otherwise records
  // the reason in lost_ and returns it. OK without a lease.
  Status CheckLease();

  Catalog* catalog_;
  Repository* repo_;
  SnapshotJobs* jobs_;
  Clock* clock_;
  SchedulerOptions options_;

  std::map<std::string, int> start_failures_;  // run/volume → failed Starts; Tick's thread only
  // run/volume → why the account's snapshot quota refused it (not retried); Tick's thread only
  std::map<std::string, std::string> quota_refusals_;
  // The lease this pass runs under (empty holder without a lease), and why it was found lost
  // during the pass (empty while held). Tick's thread only.
  HeldLease::Held held_;
  std::string lost_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace snapvol::lifecycle
