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

namespace {

// The host of "HOST:PORT" or of a URL's authority, brackets kept ("[::]").
std::string HostOf(const std::string& host_port) {
  const auto colon = host_port.rfind(':');
  if (colon == std::string::npos || host_port.ends_with("]")) return host_port;
  return host_port.substr(0, colon);
}

bool Unspecified(const std::string& host) {
  return host.empty() || host == "0.0.0.0" || host == "::" || host == "[::]";
}

// HOST:PORT with a host (a name, an IPv4 address or a bracketed IPv6 one) and a port 1-65535.
bool ValidHostPort(const std::string& s) {
  const auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size() || colon + 6 < s.size()) return false;
  const std::string host = s.substr(0, colon), port = s.substr(colon + 1);
  if (host.find_first_of(" \t/@?#") != std::string::npos || Unspecified(host)) return false;
  if (host.find(':') != std::string::npos && !(host.starts_with("[") && host.ends_with("]"))) return false;
  if (port.find_first_not_of("0123456789") != std::string::npos) return false;
  const int n = std::stoi(port);
  return n >= 1 && n <= 65535;
}

}  // namespace

Status CheckAdvertiseFlags(const AdvertiseFlags& flags, const std::string& nbd_listen) {
  if (!flags.api.empty()) {
    const std::string scheme = flags.api.starts_with("https://") ? "https://" : "http://";
    const std::string rest = flags.api.starts_with(scheme) ? flags.api.substr(scheme.size()) : "";
    const std::string authority = rest.substr(0, rest.find('/'));
    const bool has_port = authority.rfind(':') != std::string::npos && !authority.ends_with("]");
    if (rest.empty() || flags.api.find_first_of(" \t") != std::string::npos ||
        (has_port ? !ValidHostPort(authority) : (authority.empty() || Unspecified(authority))))
      return InvalidArgument("--advertise-api '" + flags.api +
                             "' is not a URL other hosts can use: give http(s)://HOST[:PORT], e.g. "
                             "https://snap1.example.net:8787");
  }
  if (!flags.nbd.empty()) {
    if (!ValidHostPort(flags.nbd))
      return InvalidArgument("--advertise-nbd '" + flags.nbd + "' is not HOST:PORT (a host other hosts can reach, "
                             "a port 1-65535), e.g. snap1.example.net:10809");
    if (nbd_listen.empty())
      return InvalidArgument("--advertise-nbd needs --nbd-listen: without a TCP listener NBD is served on a Unix "
                             "socket, which only this machine reaches");
  }
  return OkStatus();
}

HostAddresses AdvertisedAddresses(const AdvertiseFlags& flags, const std::string& bound_api_url,
                                  const std::string& unix_socket, const std::string& nbd_listen, int nbd_port) {
  HostAddresses out;
  out.api_url = flags.api.empty() ? bound_api_url : flags.api;
  if (flags.api.empty()) {
    const std::string rest = bound_api_url.substr(bound_api_url.find("://") + 3);
    if (Unspecified(HostOf(rest)))
      out.warnings.push_back("the API address recorded for other hosts is " + bound_api_url +
                             ", which they cannot use (an unspecified address): give --advertise-api URL");
  }
  if (!flags.nbd.empty()) {
    out.nbd_endpoint = "unix:" + unix_socket + " tcp:" + flags.nbd;
  } else {
    out.nbd_endpoint = NbdEndpointText(unix_socket, nbd_listen, nbd_port);
    if (!nbd_listen.empty() && Unspecified(HostOf(nbd_listen)))
      out.warnings.push_back("the NBD address recorded for other hosts (and in the volumes' aws:snapvol:nbd tags) "
                             "is " + HostOf(nbd_listen) + ":" + std::to_string(nbd_port) +
                             ", which they cannot use (an unspecified address): give --advertise-nbd HOST:PORT");
  }
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
