// MetricsEndpoint: snapvold's /metrics (Prometheus text format 0.0.4), its access rules, its
// optional listener of its own, and the scrape-time collector of what lives in the catalog.
//
// Access (Prometheus cannot sign SigV4 requests):
//   - on the API listener, /metrics answers only a request bearing `Authorization: Bearer
//     <token>`, the token read from --metrics-token-file (a file only its owner may read; it is
//     Prometheus's authorization.credentials_file), compared in constant time. Without a token
//     file it answers 403; a missing or wrong token gets 401;
//   - --metrics-listen HOST:PORT opens a listener that serves /metrics alone (default off). On a
//     loopback address it needs no token unless a token file is set; any other address needs the
//     token file, and TLS (the API's --tls-cert/--tls-key) or --insecure-http.
// Requests to /metrics are not API requests: they are not counted, logged or audited as such.
//
// Thread-safety: Mount, Start and Stop are called from the thread that sets the daemon up;
// handlers run on server threads; RecordApiRequest may be called from any thread.
#pragma once

#include <httplib.h>

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "catalog/catalog.h"
#include "core/hash.h"
#include "core/metrics.h"
#include "core/status.h"
#include "daemon/guarded_http_server.h"

namespace snapvol {

struct MetricsSettings {
  std::string token_file;  // --metrics-token-file
  std::string listen;      // --metrics-listen HOST:PORT; empty: no listener of its own
};

// Adds --metrics-token-file and --metrics-listen (also TOML keys of --config).
void AddMetricsOptions(CLI::App& app, MetricsSettings* settings);

// Unique bytes per account, filled in by usage accounting when it exists: exposed as
// snapvol_account_exclusive_bytes{account} (bytes only this account's snapshots reference) and
// snapvol_account_shared_bytes{account} (bytes its snapshots share with another account's).
struct AccountUsageBytes {
  std::string account_id;
  uint64_t exclusive_bytes = 0, shared_bytes = 0;
};
using AccountUsageFn = std::function<Result<std::vector<AccountUsageBytes>>()>;

// Counts one API request: action as the request record names it (requests refused before an
// action was known, or naming no valid action, count as "none"), error_code empty on success.
void RecordApiRequest(const std::string& action, const std::string& error_code, double seconds);

class MetricsEndpoint {
 public:
  struct Options {
    MetricsSettings settings;
    HttpLimits limits;          // for the listener of its own
    std::string tls_cert, tls_key;  // the API's: the listener serves HTTPS with them when set
    bool insecure_http = false;
  };
  // Reads and checks the token file and the listen address, before anything else is set up.
  // InvalidArgument (naming the setting) for a token file others may read, an empty token, a
  // malformed address, or a non-loopback address without a token or without TLS.
  static Result<std::unique_ptr<MetricsEndpoint>> Create(Options options);
  // The same checks, for a daemon that refuses bad settings before it sets anything up.
  static Status Check(const Options& options);
  ~MetricsEndpoint();  // Stop(), and the collector is removed
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

  // Unique-bytes gauges (see AccountUsageBytes); until set, those families are not exposed.
  // Call before Mount (scrapes may start then).
  void SetAccountUsage(AccountUsageFn fn) { usage_ = std::move(fn); }
  // Serves GET /metrics on the API server, behind the bearer token, with the catalog's totals
  // (catalog must outlive this endpoint).
  void Mount(httplib::Server& api_server, Catalog* catalog);
  // Binds and starts the listener of its own, if one is configured. Returns its address
  // ("" when there is none).
  Result<std::string> Start();
  void Stop();

 private:
  explicit MetricsEndpoint(Options options) : options_(std::move(options)) {}
  // Answers req: the scrape, or 401/403. token_required: whether this listener asks for it.
  void Serve(const httplib::Request& req, httplib::Response& res, bool token_required) const;
  void Collect(metrics::Exposition* out) const;

  Options options_;
  Catalog* catalog_ = nullptr;  // set by Mount
  bool has_token_ = false;
  Digest token_hash_{};  // SHA-256 of the token: compared in constant time, same length always
  AccountUsageFn usage_;
  int collector_id_ = 0;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

}  // namespace snapvol
