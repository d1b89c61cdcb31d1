// SnapshotJobs: runs snapshots in the background for the daemon. A request inserts a
// `pending` catalog row at once (its StartTime is the instant the request was accepted) and
// queues a job; a fixed number of runners take jobs round-robin between accounts, so one
// team's hundred volumes do not starve another's one. Progress reaches the catalog as the job
// runs; the row ends `completed` or `error` with a reason.
// Thread-safety: all methods may be called from many threads.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "catalog/catalog.h"
#include "engine/snapshot_engine.h"

namespace snapvol {

struct SnapshotJobRequest {
  VolumeRecord volume;
  std::string description;
  std::vector<Tag> tags;
  int64_t start_time_ms = 0;
  bool full = false;  // ignore the parent
};

class SnapshotJobs {
 public:
  // runners: how many snapshots run at once. runner_id names this process in catalog rows.
  SnapshotJobs(Repository* repo, Catalog* catalog, ThreadPool* pool, std::string runner_id,
               size_t runners = 2, Clock* clock = Clock::Real());
  ~SnapshotJobs();  // Shutdown()
  SnapshotJobs(const SnapshotJobs&) = delete;
  SnapshotJobs& operator=(const SnapshotJobs&) = delete;

  // Inserts the pending rows and queues one job per request, all or nothing. Returns the
  // records as inserted.
  Result<std::vector<SnapshotRecord>> Start(const std::vector<SnapshotJobRequest>& requests);

  // Stops taking jobs, cancels running ones (they end `error`: "the daemon stopped"), marks
  // queued ones `error` too, and joins the runners.
  void Shutdown();

  size_t queued() const;

 private:
  struct Job {
    SnapshotRecord record;
    SnapshotJobRequest request;
  };
  void RunnerLoop();
  void Run(Job& job);
  bool PopFairLocked(Job* out);  // REQUIRES mu_

  Repository* repo_;
  Catalog* catalog_;
  ThreadPool* pool_;
  std::string runner_id_;
  Clock* clock_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::deque<Job>> queues_;  // by account; guarded by mu_
  std::string last_account_;                       // round-robin cursor; guarded by mu_
  bool stopping_ = false;                          // guarded by mu_
  std::atomic<bool> cancel_{false};
  std::vector<std::thread> runners_;
};

}  // namespace snapvol
