#include "daemon/lease_keeper.h"

#include <chrono>
#include <cstdio>
#include <utility>

#include "core/service_metrics.h"

namespace snapvol {

namespace {
std::string Seconds(int64_t ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", static_cast<double>(ms) / 1000);
  return buf;
}
}  // namespace

Status ValidateLeaseTimes(int64_t interval_ms, int64_t ttl_ms) {
  if (interval_ms < 1) return InvalidArgument("--lease-renew-seconds must be above 0");
  if (ttl_ms <= interval_ms)
    return InvalidArgument("--lease-ttl-seconds (" + Seconds(ttl_ms) + ") must be more than --lease-renew-seconds (" +
                           Seconds(interval_ms) + "): the lease would lapse between renewals");
  return OkStatus();
}

LeaseKeeper::LeaseKeeper(Catalog* catalog, Clock* clock, std::string name, std::string holder, int64_t interval_ms,
                         int64_t ttl_ms, std::function<void(const Error&)> on_failure,
                         std::function<void(const std::string&)> on_change)
    : catalog_(catalog),
      clock_(clock),
      name_(std::move(name)),
      holder_(std::move(holder)),
      interval_ms_(interval_ms),
      ttl_ms_(ttl_ms),
      on_failure_(std::move(on_failure)),
      on_change_(std::move(on_change)) {}

LeaseKeeper::~LeaseKeeper() { Stop(); }

std::optional<lifecycle::HeldLease::Held> LeaseKeeper::Current() {
  const int64_t now = clock_->NowMillis();
  std::lock_guard lock(state_mu_);
  if (!last_ || last_->holder != holder_ || now >= last_->expires_ms) return std::nullopt;
  return Held{holder_, last_->generation};
}

std::string LeaseKeeper::HolderText() {
  std::lock_guard lock(state_mu_);
  if (!last_) return "not known: this host has not read lease " + name_ + " yet";
  return "held by " + last_->holder + " under generation " + std::to_string(last_->generation) + " until " +
         FormatIso8601(last_->expires_ms) + ", as last read";
}

void LeaseKeeper::Say(const std::string& what) {
  if (on_change_) on_change_(what);
}

Status LeaseKeeper::Renew() {
  auto taken = catalog_->AcquireClusterLease(name_, holder_, clock_->NowMillis(), ttl_ms_);
  if (!taken) {
    ServiceMetrics().cluster_lease_failures.With({name_})->Add();
    if (on_failure_) on_failure_(taken.error());
  } else {
    std::lock_guard lock(state_mu_);
    last_ = *taken;
  }
  const auto held = Current();
  bool changed = false;
  {
    std::lock_guard lock(state_mu_);
    changed = held.has_value() != said_holding_;
    said_holding_ = held.has_value();
  }
  if (changed && held)
    Say("this host holds lease " + name_ + " under generation " + std::to_string(held->generation));
  else if (changed)
    Say("this host no longer holds lease " + name_ + " (" + (taken ? HolderText() : "its renewal failed: " +
                                                                            taken.error().message()) + ")");
  if (!taken) return std::unexpected(taken.error());
  return OkStatus();
}

void LeaseKeeper::Start() {
  if (started_) return;
  started_ = true;
  {
    std::lock_guard lock(mu_);
    stopping_ = false;
  }
  (void)Renew();  // reported and counted there
  thread_ = std::thread([this] { Loop(); });
}

void LeaseKeeper::Loop() {
  std::unique_lock lock(mu_);
  while (!cv_.wait_for(lock, std::chrono::milliseconds(interval_ms_), [this] { return stopping_; })) {
    lock.unlock();
    (void)Renew();
    lock.lock();
  }
}

void LeaseKeeper::Stop() {
  if (!started_) return;
  started_ = false;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  bool mine = false;
  {
    std::lock_guard lock(state_mu_);
    mine = last_ && last_->holder == holder_;
    said_holding_ = false;
  }
  if (!mine) return;
  // Released even when it lapsed meanwhile: nobody took it, so it is still this host's row.
  Status st = catalog_->ReleaseClusterLease(name_, holder_);
  if (!st && st.error().code() != ErrorCode::kConflict) {  // kConflict: another host holds it now
    ServiceMetrics().cluster_lease_failures.With({name_})->Add();
    if (on_failure_) on_failure_(st.error());
    return;
  }
  {
    std::lock_guard lock(state_mu_);
    last_.reset();
  }
  if (st) Say("this host released lease " + name_);
}

}  // namespace snapvol
