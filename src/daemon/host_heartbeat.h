// HostHeartbeat: snapvold's row in the catalog's hosts table (docs/multi-host.md part 2). It is
// written once at start (Register), then its heartbeat_ms every interval on a thread of its own,
// so a slow or failing catalog never holds up a request; a failed heartbeat is reported to
// on_failure and counted in snapvol_host_heartbeat_failures_total, never fatal. Stop sets
// heartbeat_ms to 0: the host stopped cleanly (other hosts then count none of its runners alive).
// Thread-safety: Register, Start and Stop from one thread; the catalog is thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "catalog/catalog.h"
#include "core/clock.h"
#include "core/status.h"

namespace snapvol {

// The hosts row's nbd_endpoint: "unix:SOCKET", then " tcp:HOST:PORT" when NBD also listens on
// TCP (tcp_listen as given, its port replaced by the one bound).
std::string NbdEndpointText(const std::string& unix_socket, const std::string& tcp_listen, int tcp_port);

// What this host records for other hosts (and clients) to reach it: snapvold's
// --advertise-api URL and --advertise-nbd HOST:PORT, when given, instead of the bound addresses
// (docs/multi-host.md part 2).
struct AdvertiseFlags {
  std::string api;  // "http(s)://HOST[:PORT][/PATH]"; empty: the bound URL
  std::string nbd;  // "HOST:PORT" of the NBD TCP listener as others reach it; empty: the bound one
};
// Checks the flags before anything starts: a malformed URL or HOST:PORT, or --advertise-nbd
// without --nbd-listen (a Unix socket is reachable on this machine only) → kInvalidArgument
// naming the flag.
Status CheckAdvertiseFlags(const AdvertiseFlags& flags, const std::string& nbd_listen);
// The row's api_url and nbd_endpoint: the advertised ones, else the bound ones
// (bound_api_url; NbdEndpointText of the listeners).
struct HostAddresses {
  std::string api_url, nbd_endpoint;
  // One sentence per bound address on an unspecified IP (0.0.0.0, ::) recorded for want of an
  // advertise flag: other hosts cannot use it. For the start-up log.
  std::vector<std::string> warnings;
};
HostAddresses AdvertisedAddresses(const AdvertiseFlags& flags, const std::string& bound_api_url,
                                  const std::string& unix_socket, const std::string& nbd_listen, int nbd_port);

class HostHeartbeat {
 public:
  // catalog and clock must outlive this object. self.started_ms and heartbeat_ms are set by
  // Register.
  HostHeartbeat(Catalog* catalog, Clock* clock, HostRecord self, int64_t interval_ms,
                std::function<void(const Error&)> on_failure);
  ~HostHeartbeat();  // Stop()
  HostHeartbeat(const HostHeartbeat&) = delete;
  HostHeartbeat& operator=(const HostHeartbeat&) = delete;

  // Upserts this host's row, started and heartbeat now. Its error is the caller's to judge.
  Status Register();
  // Starts the heartbeat thread (after Register).
  void Start();
  // Stops the thread and records a clean stop (heartbeat_ms 0); a failure there is reported
  // like a failed heartbeat. Idempotent.
  void Stop();

 private:
  void Beat();
  void Loop();

  Catalog* const catalog_;
  Clock* const clock_;
  HostRecord self_;
  const int64_t interval_ms_;
  std::function<void(const Error&)> on_failure_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  bool started_ = false;   // set by Start, cleared by Stop (one thread)
  std::thread thread_;
};

}  // namespace snapvol
