// Token buckets with bounded memory, and the pending-snapshot cap (api/ebs_limits.h).
#include "api/ebs_limits.h"

#include <algorithm>
#include <cstdio>

namespace snapvol::api {
namespace {

// One request, less what a sum of fractional refills may lose to rounding.
constexpr double kOne = 1.0 - 1e-9;

const char* OpName(EbsOp op) {
  switch (op) {
    case EbsOp::kPutBlock: return "PutSnapshotBlock";
    case EbsOp::kGetBlock: return "GetSnapshotBlock";
    case EbsOp::kListBlocks: return "ListSnapshotBlocks";
    case EbsOp::kListChangedBlocks: return "ListChangedBlocks";
  }
  return "ebs";
}

std::string Rate(double per_second) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", per_second);
  return buf;
}

std::unexpected<ApiError> Throttled(const char* reason, std::string message) {
  return std::unexpected(ApiError{std::string("RequestThrottledException:") + reason, std::move(message), 400});
}

}  // namespace

EbsRateLimiter::EbsRateLimiter(const EbsLimits& limits, Clock* clock, size_t max_buckets)
    : limits_(limits), clock_(clock), max_buckets_(std::max<size_t>(max_buckets, 2)) {}

double EbsRateLimiter::Capacity(double rate) const { return std::max(1.0, rate * limits_.burst_seconds); }

EbsRateLimiter::Bucket& EbsRateLimiter::Refilled(const std::string& key, double rate, int64_t now_ms) {
  auto it = index_.find(key);
  if (it == index_.end()) {
    // Forget the least recently used bucket first: bounded memory whatever the keys.
    while (index_.size() >= max_buckets_) {
      index_.erase(lru_.back().key);
      lru_.pop_back();
    }
    lru_.push_front(Bucket{key, Capacity(rate), now_ms});
    index_.emplace(key, lru_.begin());
    return lru_.front();
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  Bucket& b = *it->second;
  // A wall clock stepped back refills nothing (and is not held against the client).
  const int64_t elapsed = std::max<int64_t>(0, now_ms - b.last_ms);
  b.tokens = std::min(Capacity(rate), b.tokens + static_cast<double>(elapsed) * rate / 1000.0);
  b.last_ms = std::max(b.last_ms, now_ms);
  return b;
}

ApiStatus EbsRateLimiter::Admit(EbsOp op, const std::string& account_id, const std::string& snapshot_id) {
  const bool block = op == EbsOp::kPutBlock || op == EbsOp::kGetBlock;
  const double account_rate = block ? limits_.account_block_rps : limits_.account_list_rps;
  const double snapshot_rate = block && !snapshot_id.empty() ? limits_.snapshot_block_rps : 0;
  if (account_rate <= 0 && snapshot_rate <= 0) return {};
  const std::string name = OpName(op);
  const int64_t now = clock_->NowMillis();
  std::lock_guard<std::mutex> lock(mu_);
  Bucket* account = account_rate > 0 ? &Refilled(name + " account " + account_id, account_rate, now) : nullptr;
  Bucket* snapshot = snapshot_rate > 0 ? &Refilled(name + " snapshot " + snapshot_id, snapshot_rate, now) : nullptr;
  // (Making room for the snapshot's bucket never forgets the account's: it was just used, and
  // at least two buckets are kept.)
  if (account && account->tokens < kOne)
    return Throttled("ACCOUNT_THROTTLED", "Rate exceeded: " + name + " requests of account " + account_id +
                                              " are limited to " + Rate(account_rate) + " per second.");
  if (snapshot && snapshot->tokens < kOne)
    return Throttled("RESOURCE_LEVEL_THROTTLE", "Rate exceeded: " + name + " requests for snapshot " + snapshot_id +
                                                    " are limited to " + Rate(snapshot_rate) + " per second.");
  if (account) account->tokens -= 1.0;
  if (snapshot) snapshot->tokens -= 1.0;
  return {};
}

size_t EbsRateLimiter::bucket_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return index_.size();
}

ApiStatus EbsPendingGate::Check(int64_t pending) const {
  if (max_pending_ <= 0 || pending < max_pending_) return {};
  return std::unexpected(ApiError{"ConcurrentLimitExceededException",
                                  "This account already has " + std::to_string(pending) +
                                      " pending snapshots started by StartSnapshot, the most it may have (" +
                                      std::to_string(max_pending_) + "); complete one first.",
                                  400});
}

}  // namespace snapvol::api
