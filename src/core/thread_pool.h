// A fixed set of worker threads with a bounded queue: Submit blocks while the queue is full,
// so a fast producer cannot run memory up.
// Thread-safety: Submit and Wait may be called from any thread; destruction waits for all
// submitted work.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace snapvol {

class ThreadPool {
 public:
  // threads == 0 means one per core.
  explicit ThreadPool(size_t threads = 0, size_t max_queue = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  void Submit(std::function<void()> task);
  // Blocks until every submitted task has finished.
  void Wait();
  size_t size() const { return workers_.size(); }

  static size_t DefaultThreads();

 private:
  void Run();

  std::mutex mu_;
  std::condition_variable work_cv_;   // a task was queued or stop_ set
  std::condition_variable space_cv_;  // the queue has room
  std::condition_variable idle_cv_;   // pending_ reached zero
  std::deque<std::function<void()>> queue_;  // guarded by mu_
  size_t pending_ = 0;                       // queued + running; guarded by mu_
  size_t max_queue_;
  bool stop_ = false;  // guarded by mu_
  std::vector<std::thread> workers_;
};

}  // namespace snapvol
