// Request rate and concurrency limits of the EBS direct APIs, as EBS applies and reports them:
// token buckets per account and per snapshot for the block and listing requests
// (RequestThrottledException with Reason ACCOUNT_THROTTLED or RESOURCE_LEVEL_THROTTLE), and a
// cap on an account's pending direct snapshots (ConcurrentLimitExceededException). The limits
// protect the service from one client, and accounts from each other; they are not billing.
// Thread-safety: every method may be called from many threads at once.
#pragma once

#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

#include "api/api_error.h"
#include "core/clock.h"

namespace snapvol::api {

// snapvold's settings (--ebs-…). A rate of 0 turns that limit off; so does a pending cap of 0.
struct EbsLimits {
  // Started and not yet completed (or ended) direct snapshots one account may have; EBS's
  // "Pending snapshots per account" default.
  int64_t max_pending_snapshots = 100;
  // PutSnapshotBlock and GetSnapshotBlock, each, per account per second (EBS's default quota).
  double account_block_rps = 1000;
  // PutSnapshotBlock and GetSnapshotBlock, each, per snapshot per second.
  double snapshot_block_rps = 1000;
  // ListSnapshotBlocks and ListChangedBlocks, each, per account per second (EBS's default).
  double account_list_rps = 50;
  // A bucket holds this many seconds of its rate (at least one request): the burst an idle
  // client may send at once before the rate applies.
  double burst_seconds = 1;
};

// The operations a bucket is kept for: each has its own rate, as each has its own EBS quota.
enum class EbsOp { kPutBlock, kGetBlock, kListBlocks, kListChangedBlocks };

// Token buckets keyed by (operation, account) and (operation, snapshot). At most max_buckets
// are kept: the least recently used one is forgotten first, which loses nothing when it is full
// (idle for burst_seconds) and at worst grants a client forgotten while throttled one burst more.
class EbsRateLimiter {
 public:
  static constexpr size_t kDefaultMaxBuckets = 20000;
  EbsRateLimiter(const EbsLimits& limits, Clock* clock, size_t max_buckets = kDefaultMaxBuckets);
  EbsRateLimiter(const EbsRateLimiter&) = delete;
  EbsRateLimiter& operator=(const EbsRateLimiter&) = delete;

  // Takes one request from the account's bucket for op and, when snapshot_id is not empty, from
  // the snapshot's: both or neither. Refused → RequestThrottledException with Reason
  // ACCOUNT_THROTTLED (the account's bucket is empty) or RESOURCE_LEVEL_THROTTLE (the
  // snapshot's is), HTTP 400, and no bucket changes.
  ApiStatus Admit(EbsOp op, const std::string& account_id, const std::string& snapshot_id = "");

  size_t bucket_count() const;  // for tests: how many buckets are kept now

 private:
  struct Bucket {
    std::string key;
    double tokens = 0;
    int64_t last_ms = 0;
  };
  using Lru = std::list<Bucket>;
  // The bucket of key, refilled to now (a new one is full); moved to the front of lru_.
  // REQUIRES: mu_ held.
  Bucket& Refilled(const std::string& key, double rate, int64_t now_ms);
  double Capacity(double rate) const;

  const EbsLimits limits_;
  Clock* const clock_;
  const size_t max_buckets_;
  mutable std::mutex mu_;
  Lru lru_;                                                // guarded by mu_; most recent first
  std::unordered_map<std::string, Lru::iterator> index_;  // guarded by mu_; key → its bucket
};

// The cap on an account's pending direct snapshots. StartSnapshot holds Lock() while it counts
// the account's pending snapshots and starts one, so two racing starts cannot pass the cap.
class EbsPendingGate {
 public:
  explicit EbsPendingGate(int64_t max_pending) : max_pending_(max_pending) {}
  std::unique_lock<std::mutex> Lock() { return std::unique_lock<std::mutex>(mu_); }
  // pending: the account's pending direct snapshots, counted under Lock(). At the cap →
  // ConcurrentLimitExceededException (HTTP 400, no Reason), as EBS answers.
  ApiStatus Check(int64_t pending) const;
  bool enabled() const { return max_pending_ > 0; }

 private:
  const int64_t max_pending_;
  std::mutex mu_;
};

}  // namespace snapvol::api
