// HostSweep: ends the work of hosts that are not up (docs/multi-host.md part 5). On the host
// that holds the cluster lease `maintenance` (snapvold's LeaseKeeper, through
// lifecycle::HeldLease), every interval: each pending snapshot whose runner is another host's
// (a process "pid:N@BOOT@HOST", or "queued@HOST" for a routed job not yet started) and whom
// RunnerJudge counts dead — that host is unreachable (heartbeat older than the host timeout),
// stopped, or unregistered — is settled as a host's start settles its own (DataDir::
// RecoverInterrupted): `completed` when its manifest root is already in the store (the host died
// after publishing it), else `error` with a reason naming the host and since when, and its
// queue row removed. The end itself is Catalog::EndAbandonedSnapshot, which checks the lease
// and the host's state again in its write transaction: a stale holder, or a host that came back
// meanwhile, ends nothing. One exception to "not up runs nothing, at once": a snapshot queued
// for a host that stopped cleanly (a restart, an upgrade) waits for it until the host timeout
// has passed since the request (its StartTime), then ends like a dead host's; a host back by
// then claims it as usual. What the dead host had written of an ended snapshot is unreferenced:
// its store lease is removed, so GC removes it after its grace.
// The same sweep ends the host's other waiting work, each in a transaction of its own with the
// same checks: its `pending` rollback tasks, queued or claimed (`failed`, the reason as the
// task's; Catalog::EndAbandonedRollbackTask; one in progress had written part of its volume and
// is its host's to resume), and its `creating` volumes, queued, claimed or being restored (`error`
// with the reason; Catalog::EndAbandonedVolume). A stopped host's wait the host timeout after
// each request (the task's start, the volume's creation), as its queued snapshots do.
// Each host swept is reported to on_swept (snapvold logs it) and counted in
// snapvol_host_sweep_snapshots_total{host}.
// Thread-safety: Tick may be called from any thread (calls are serialised); Start and Stop from
// one thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "catalog/catalog.h"
#include "cli/host_identity.h"
#include "core/clock.h"
#include "core/status.h"
#include "lifecycle/maintenance.h"
#include "store/repository.h"

namespace snapvol {

// What one Tick did to one host's work.
struct SweptHost {
  std::string host_id;
  std::string name;       // '' when the host has no row
  std::string state;      // "unreachable", "stopped" or "unregistered"
  std::string reason;     // the state message its snapshots got
  std::vector<std::string> ended;      // ended `error` (queued or running)
  std::vector<std::string> completed;  // their manifest was published: `completed`
  std::vector<std::string> failed_tasks;    // rollback tasks ended `failed`
  std::vector<std::string> ended_volumes;   // `creating` volumes ended `error`
};

// The state message of a snapshot a host that is not up left: "host NAME (host-…) unreachable
// since T (its last heartbeat)", "... stopped and was not back within S s of this snapshot's
// request" or "host host-… is not registered: …". what: the work it is said of ("snapshot",
// "task", "volume").
std::string AbandonedReason(const std::string& host_id, const std::string& name, const std::string& state,
                            int64_t last_heartbeat_ms, int64_t timeout_ms, const std::string& what = "snapshot");

class HostSweep {
 public:
  struct Options {
    std::string self_host_id;  // this host: its own runners are its start's to settle, never swept
    int64_t host_timeout_ms = kDefaultHostTimeoutMs;
    int64_t interval_ms = 5000;
    lifecycle::HeldLease* lease = nullptr;  // required: sweeps only while it is held
    std::function<void(const SweptHost&)> on_swept;    // optional
    std::function<void(const Error&)> on_failure;      // optional: a failed read or end
  };
  // catalog, repo, clock and options.lease must outlive this object.
  HostSweep(Catalog* catalog, Repository* repo, Clock* clock, Options options);
  ~HostSweep();  // Stop()
  HostSweep(const HostSweep&) = delete;
  HostSweep& operator=(const HostSweep&) = delete;

  // One sweep now. Nothing when this host does not hold the lease. Returns the hosts whose
  // work it ended (a host with nothing pending is not listed); the first catalog or store error
  // stops it (already reported to on_failure).
  Result<std::vector<SweptHost>> Tick();
  void Start();
  void Stop();  // idempotent

 private:
  // A host's waiting work the sweep ends (TickLocked gathers it).
  struct Work {
    std::vector<SnapshotRecord> snapshots;
    std::vector<ReplaceRootVolumeTaskRecord> tasks;
    std::vector<VolumeRecord> volumes;
  };
  Result<std::vector<SweptHost>> TickLocked();
  // Ends host_id's tasks and volumes into *swept (the snapshots are TickLocked's).
  Status EndTasksAndVolumes(const Work& work, const HostRecord* host, const LeaseFence& fence, int64_t now,
                            SweptHost* swept);
  void Fail(const Error& e);

  Catalog* const catalog_;
  Repository* const repo_;
  Clock* const clock_;
  Options options_;
  RunnerJudge judge_;
  std::mutex tick_mu_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  bool started_ = false;   // Start/Stop's thread only
  std::thread thread_;
};

}  // namespace snapvol
