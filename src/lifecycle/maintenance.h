// MaintenanceScheduler: runs the store's maintenance jobs — garbage collection and
// verification — in the daemon, on the same Clock and the same kind of run records as the
// lifecycle policies.
//
// Schedules (UTC): GC daily at gc_time (default 04:00, after the 02:00 snapshots), verification
// daily at verify_time (default 05:00). For tests and operators who want it, either may instead
// run every N seconds (gc_every_ms / verify_every_ms, counted from 1970-01-01 00:00 UTC).
//
// Each Tick():
//  1. (first Tick of a process only) a run left `running` by a process that was killed is
//     queued again and resumed: GC starts over (mark and sweep is idempotent); verification
//     carries on with the snapshots it had not checked yet (checks are recorded as they end);
//  2. for each enabled job, queues a run when a scheduled time has passed that is later than
//     the job's last scheduled run and not before the service existed (its first account).
//     After downtime this is one run for the latest missed time; the others are counted in the
//     run's `missed`. A scheduled run is a catalog row keyed by job and time: it happens once;
//  3. runs the queued runs one at a time, oldest first, on the calling thread: never two at
//     once. GC waits while a lifecycle run is in progress, so that it frees what that run's
//     retention deleted the same day.
//
// GC: CollectGarbage with the grace period, the repack threshold (format 2) and the store's
// writer leases; the snapshots that
// lazily restored volumes still read are kept even when their root was deleted.
// Verification: each run fully decodes the day's share of the completed snapshots — ceil(N /
// runs per period), at least every snapshot that would otherwise go a whole period without a
// full decode — least recently decoded first (never decoded: by start time), so each is fully
// decoded at least once per period. With verify_quick (mode "quick+full") the run also checks
// the checksums of every other completed snapshot, so each is checked every run and still
// decoded once per period; the run's message says how many got each kind, and the catalog keeps
// per snapshot the last check of any kind (checked_ms) and the last full decode (full_ms).
// A manual run checks every snapshot in the one mode asked for. A damaged snapshot keeps its
// state (`completed`) but gets a StateMessage saying so, the system tag aws:snapvol:damaged, and is
// never again the parent of an incremental snapshot; every other snapshot that references a
// damaged chunk is marked too, and the damaged chunk objects are removed so that the next
// snapshot writes those blocks afresh instead of reusing them. An OperatorEvent
// (kEventVerifyDamage, kEventGcFailed) tells the operator.
//
// Restore drills (job "drill", off unless drill_enabled; lifecycle/restore_drill.h): each run
// restores, of every account, the latest completed snapshot of its volumes that was drilled
// least recently (drill.per_account of them) to drill.scratch_dir, runs the check command if
// one is set, records the restore's time per snapshot, and fails naming every snapshot whose
// drill failed (kEventDrillFailed). A run stopped part-way resumes with the snapshots it had
// not drilled yet.
//
// Once per cluster (docs/multi-host.md part 4): with options.lease set (snapvold's LeaseKeeper),
// Tick does nothing unless this host holds the cluster lease `maintenance`: only the holder
// queues scheduled runs and runs queued ones (manual runs asked for on any host included: they
// wait in the catalog for the holder). Each run records the host and the lease generation it
// ran under, and its record is fenced by it (Catalog::UpdateMaintenanceRun). The lease is
// checked in the catalog (CheckClusterLease) before a run starts, before GC deletes anything
// (and before each group of deletions), and before verification marks snapshots damaged and
// removes chunks. A holder that finds its lease stale stops the run there and leaves it
// `queued` for the new holder (which also re-queues every `running` run when it takes the
// lease): GC starts over, verification and drills carry on with what they had not done yet.
// Without options.lease (tests, one process on a data dir) this process always holds.
//
// Thread-safety: Tick(), RequestRun() and the readers may be called from any thread; Tick()
// serialises itself (a second concurrent Tick waits). Start() runs Tick every second on a
// thread of its own until Stop().
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "catalog/catalog.h"
#include "core/clock.h"
#include "core/events.h"
#include "core/system_tags.h"
#include "core/thread_pool.h"
#include "engine/usage_accounting.h"
#include "lifecycle/held_lease.h"
#include "lifecycle/restore_drill.h"
#include "store/repository.h"

namespace snapvol::lifecycle {

// The mode of a scheduled verification with verify_quick: checksums of all, decode of a share.
inline constexpr char kVerifyQuickAndFull[] = "quick+full";
// The cluster lease under which GC, verification and restore drills run.
inline constexpr char kMaintenanceLease[] = "maintenance";

struct MaintenanceOptions {
  bool gc_enabled = true;
  int gc_time_min = 4 * 60;   // daily, minutes after 00:00 UTC
  int64_t gc_every_ms = 0;    // > 0: every this many ms instead of daily (tests)
  int64_t gc_grace_ms = 15 * 60 * 1000;
  // Format-2 stores: GC rewrites a pack when more than this share of its bytes is dead
  // (GcOptions::repack_threshold; above 0, at most 1).
  double gc_repack_threshold = 0.10;
  bool verify_enabled = true;
  int verify_time_min = 5 * 60;
  int64_t verify_every_ms = 0;
  int verify_period_days = 7;  // every snapshot is checked at least once in this many days
  bool verify_quick = false;   // scheduled runs also checksum every other snapshot (see above)
  bool drill_enabled = false;  // scheduled restore drills (manual runs work either way)
  int drill_time_min = 6 * 60;
  int64_t drill_every_ms = 0;
  DrillOptions drill;  // its scratch_dir must be set for any drill to run
  EventSink* events = nullptr;  // optional
  // Usage accounting (optional): GC first counts the pending changes and keeps what a
  // deletion it could not count yet still has to read.
  UsageAccounting* usage = nullptr;
  // Added to the clock when GC judges which binned snapshots' retention has ended (snapvold
  // --recycle-bin-clock-offset-days; tests move the bin's time with it, never the API's).
  int64_t recycle_bin_clock_offset_ms = 0;
  // The cluster lease `maintenance` (optional, see above); must outlive the scheduler.
  HeldLease* lease = nullptr;
};

// Refuses options that cannot work, naming the setting (as the daemon's flags call it).
Status ValidateMaintenanceOptions(const MaintenanceOptions& o);

class MaintenanceScheduler {
 public:
  MaintenanceScheduler(Catalog* catalog, Repository* repo, ThreadPool* pool, Clock* clock,
                       MaintenanceOptions options = {});
  ~MaintenanceScheduler();  // Stop()
  MaintenanceScheduler(const MaintenanceScheduler&) = delete;
  MaintenanceScheduler& operator=(const MaintenanceScheduler&) = delete;

  // One pass (see above). Returns the first catalog failure, if any; a job's own failure is
  // recorded in its run.
  Status Tick();

  // Queues a manual run of job ("gc", "drill" or "verify"; mode for verify: "full" or "quick",
  // checking every snapshot). kInvalidArgument for another job or mode; kConflict (naming it) while a
  // run of the same job is queued or running. The run starts at the next Tick of the host that
  // holds the lease (this one, without a lease).
  Result<MaintenanceRunRecord> RequestRun(const std::string& job, const std::string& mode);

  const MaintenanceOptions& options() const { return options_; }

  void Start();
  void Stop();

 private:
  Status QueueDueRuns();
  Status ResumeRunning();
  Status Execute(MaintenanceRunRecord run);
  // OK while this host holds the lease under held_ (asked of the catalog); otherwise records
  // the reason in lost_ and returns it. OK without a lease.
  Status CheckLease();
  // False once the keeper says the lease lapsed (no catalog read), recording why in lost_.
  bool StillHolding();
  Status RunGc(MaintenanceRunRecord* run);
  Status RunVerify(MaintenanceRunRecord* run);
  Status RunDrill(MaintenanceRunRecord* run);
  // Marks what the damaged snapshots share, removes the damaged chunks; names go to *named.
  Status HandleDamage(const std::vector<std::pair<std::string, std::string>>& damaged,
                      const std::vector<Digest>& corrupt, std::vector<std::string>* named, std::string* note);
  bool Stopping();

  Catalog* catalog_;
  Repository* repo_;
  ThreadPool* pool_;
  Clock* clock_;
  MaintenanceOptions options_;

  std::mutex tick_mu_;    // held by Tick: one pass at a time
  bool resumed_ = false;  // guarded by tick_mu_
  // The lease this pass runs under (empty holder without a lease), and why it was lost during
  // the pass (empty while held). Guarded by tick_mu_.
  HeldLease::Held held_;
  std::string lost_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
  std::atomic<bool> cancel_{false};  // stop_ for the engine: a drill's restore ends early
  std::thread thread_;
};

}  // namespace snapvol::lifecycle
