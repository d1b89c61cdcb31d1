#include "daemon/host_heartbeat.h"

#include <chrono>
#include <utility>

#include "core/service_metrics.h"

namespace snapvol {

std::string NbdEndpointText(const std::string& unix_socket, const std::string& tcp_listen, int tcp_port) {
  std::string out = "unix:" + unix_socket;
  if (!tcp_listen.empty()) out += " tcp:" + tcp_listen.substr(0, tcp_listen.rfind(':')) + ":" + std::to_string(tcp_port);
  return out;
}

HostHeartbeat::HostHeartbeat(Catalog* catalog, Clock* clock, HostRecord self, int64_t interval_ms,
                             std::function<void(const Error&)> on_failure)
    : catalog_(catalog),
      clock_(clock),
      self_(std::move(self)),
      interval_ms_(interval_ms),
      on_failure_(std::move(on_failure)) {}

HostHeartbeat::~HostHeartbeat() { Stop(); }

Status HostHeartbeat::Register() {
  self_.started_ms = self_.heartbeat_ms = clock_->NowMillis();
  return catalog_->UpsertHost(self_);
}

void HostHeartbeat::Start() {
  started_ = true;
  thread_ = std::thread([this] { Loop(); });
}

void HostHeartbeat::Beat() {
  Status st = catalog_->Heartbeat(self_.host_id, clock_->NowMillis());
  // The row was removed meanwhile (by hand, or a catalog restored from elsewhere): register
  // again rather than stay unknown.
  if (!st && st.error().code() == ErrorCode::kNotFound) {
    self_.heartbeat_ms = clock_->NowMillis();
    st = catalog_->UpsertHost(self_);
  }
  if (!st) {
    ServiceMetrics().host_heartbeat_failures.With()->Add();
    if (on_failure_) on_failure_(st.error());
  }
}

void HostHeartbeat::Loop() {
  std::unique_lock lock(mu_);
  while (!cv_.wait_for(lock, std::chrono::milliseconds(interval_ms_), [this] { return stopping_; })) {
    lock.unlock();
    Beat();
    lock.lock();
  }
}

void HostHeartbeat::Stop() {
  if (!started_) return;
  started_ = false;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (Status st = catalog_->Heartbeat(self_.host_id, 0); !st) {
    ServiceMetrics().host_heartbeat_failures.With()->Add();
    if (on_failure_) on_failure_(st.error());
  }
}

}  // namespace snapvol
