// snapvold's /metrics: access rules, the listener of its own, the catalog collector (see
// metrics_endpoint.h; the metric names are listed in docs/metrics.md).
#include "daemon/metrics_endpoint.h"

#include <openssl/crypto.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>

#include "core/file_util.h"
#include "core/service_metrics.h"

namespace snapvol {
namespace {

constexpr char kContentType[] = "text/plain; version=0.0.4; charset=utf-8";

bool IsLoopback(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

Result<std::string> ReadToken(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return InvalidArgument("--metrics-token-file " + path + ": cannot read it (" + std::strerror(errno) + ")");
  if (!S_ISREG(st.st_mode)) return InvalidArgument("--metrics-token-file " + path + " is not a regular file");
  if (st.st_mode & 077)
    return InvalidArgument("--metrics-token-file " + path + " may be read by other users (mode " +
                           [&] {
                             char m[8];
                             std::snprintf(m, sizeof m, "%04o", st.st_mode & 07777);
                             return std::string(m);
                           }() +
                           "); make it 0600");
  ASSIGN_OR_RETURN(auto bytes, ReadWholeFile(path));
  std::string token(bytes.begin(), bytes.end());
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ' || token.back() == '\t'))
    token.pop_back();
  if (token.size() < 16)
    return InvalidArgument("--metrics-token-file " + path + " holds no token of at least 16 characters");
  for (unsigned char c : token)
    if (c < 0x21 || c > 0x7e)
      return InvalidArgument("--metrics-token-file " + path +
                             ": the token must be one line of printable characters without spaces");
  return token;
}

}  // namespace

void AddMetricsOptions(CLI::App& app, MetricsSettings* settings) {
  app.add_option("--metrics-token-file", settings->token_file,
                 "File (mode 0600) holding the bearer token that /metrics asks for on the API listener "
                 "(Authorization: Bearer TOKEN; Prometheus's credentials_file). Without it /metrics on the "
                 "API listener answers 403");
  app.add_option("--metrics-listen", settings->listen,
                 "Also serve /metrics (and nothing else) on this HOST:PORT (port 0 picks one; default off). "
                 "A loopback address needs no token unless --metrics-token-file is set; another address "
                 "needs the token file and TLS (or --insecure-http)");
}

void RecordApiRequest(const std::string& action, const std::string& error_code, double seconds) {
  // A request's action is the client's word until the action table accepted it: refusals
  // before that are counted under "none", so clients cannot mint label values.
  const bool known = !action.empty() && error_code != "InvalidAction" && error_code != "MissingAction" &&
                     action.size() <= 64;
  std::vector<std::string> labels = {known ? action : "none", error_code.empty() ? "ok" : error_code};
  auto& m = ServiceMetrics();
  m.api_requests.With(labels)->Add();
  m.api_duration.With(std::move(labels))->Observe(seconds);
}

Result<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Create(Options options) {
  auto e = std::unique_ptr<MetricsEndpoint>(new MetricsEndpoint(std::move(options)));
  const MetricsSettings& s = e->options_.settings;
  if (!s.token_file.empty()) {
    ASSIGN_OR_RETURN(std::string token, ReadToken(s.token_file));
    e->token_hash_ = Sha256(AsBytes(token));
    e->has_token_ = true;
  }
  if (!s.listen.empty()) {
    auto colon = s.listen.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == s.listen.size())
      return InvalidArgument("--metrics-listen must be HOST:PORT, not '" + s.listen + "'");
    const std::string host = s.listen.substr(0, colon);
    const std::string port = s.listen.substr(colon + 1);
    if (port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5 || std::stoi(port) > 65535)
      return InvalidArgument("--metrics-listen " + s.listen + ": the port must be a number up to 65535");
    if (!IsLoopback(host)) {
      if (!e->has_token_)
        return InvalidArgument("--metrics-listen " + s.listen +
                               " is not a loopback address: give --metrics-token-file too, so that only "
                               "Prometheus can read the metrics");
      if (e->options_.tls_cert.empty() && !e->options_.insecure_http)
        return InvalidArgument("--metrics-listen " + s.listen +
                               " is not a loopback address: the token would cross the network in clear; "
                               "give --tls-cert/--tls-key (or --insecure-http)");
    }
  }
  (void)ServiceMetrics();  // every family is declared from the first scrape on, samples or not
  return e;
}

Status MetricsEndpoint::Check(const Options& options) {
  auto e = Create(options);
  if (!e) return std::unexpected(e.error());
  return OkStatus();
}

MetricsEndpoint::~MetricsEndpoint() {
  Stop();
  if (collector_id_) metrics::Registry::Global().RemoveCollector(collector_id_);
}

void MetricsEndpoint::Serve(const httplib::Request& req, httplib::Response& res, bool token_required) const {
  if (token_required) {
    if (!has_token_) {
      res.status = 403;
      res.set_content("/metrics on this listener needs a bearer token: start snapvold with --metrics-token-file "
                      "(or serve it on a listener of its own with --metrics-listen)\n",
                      "text/plain");
      return;
    }
    const std::string auth = req.get_header_value("Authorization");
    constexpr std::string_view kBearer = "Bearer ";
    bool ok = false;
    if (auth.size() > kBearer.size() && auth.compare(0, kBearer.size(), kBearer) == 0) {
      Digest given = Sha256(AsBytes(std::string_view(auth).substr(kBearer.size())));
      ok = CRYPTO_memcmp(given.data(), token_hash_.data(), given.size()) == 0;
    }
    if (!ok) {
      res.status = 401;
      res.set_header("WWW-Authenticate", "Bearer realm=\"snapvol metrics\"");
      res.set_content("/metrics needs Authorization: Bearer TOKEN with the token of --metrics-token-file\n",
                      "text/plain");
      return;
    }
  }
  res.set_header("Cache-Control", "no-store");
  res.set_content(metrics::Registry::Global().Scrape(), kContentType);
}

void MetricsEndpoint::Mount(httplib::Server& api_server, Catalog* catalog) {
  catalog_ = catalog;
  if (!collector_id_)
    collector_id_ = metrics::Registry::Global().AddCollector([this](metrics::Exposition* out) { Collect(out); });
  api_server.Get("/metrics", [this](const httplib::Request& req, httplib::Response& res) { Serve(req, res, true); });
}

Result<std::string> MetricsEndpoint::Start() {
  const std::string& listen = options_.settings.listen;
  if (listen.empty()) return std::string();
  auto colon = listen.rfind(':');
  std::string host = listen.substr(0, colon);
  int port = std::stoi(listen.substr(colon + 1));
  HttpLimits limits = options_.limits;
  limits.max_connections_per_client = std::min<size_t>(limits.max_connections_per_client, 8);
  if (!options_.tls_cert.empty()) {
    auto ssl = std::make_unique<GuardedServer<httplib::SSLServer>>(limits, options_.tls_cert.c_str(),
                                                                    options_.tls_key.c_str());
    if (!ssl->is_valid()) return InvalidArgument("--metrics-listen: the TLS certificate or key is not valid");
    server_ = std::move(ssl);
  } else {
    server_ = std::make_unique<GuardedServer<httplib::Server>>(limits);
  }
  httplib::Server& svr = *server_;
  svr.new_task_queue = [] { return new httplib::ThreadPool(4); };  // a scraper or two, not the world
  svr.set_keep_alive_timeout(1);
  svr.set_payload_max_length(4096);  // nothing here takes a body
  // Only /metrics; a token is asked for when one is configured.
  svr.Get("/metrics", [this](const httplib::Request& req, httplib::Response& res) { Serve(req, res, has_token_); });
  svr.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.body.empty()) res.set_content("this listener serves /metrics only\n", "text/plain");
  });
  if (port == 0) {
    port = svr.bind_to_any_port(host);
    if (port < 0) return InvalidArgument("--metrics-listen: cannot listen on " + host);
  } else if (!svr.bind_to_port(host, port)) {
    return InvalidArgument("--metrics-listen: cannot listen on " + listen + " (in use, or not an address of this host)");
  }
  thread_ = std::thread([&svr] { svr.listen_after_bind(); });
  return (options_.tls_cert.empty() ? "http://" : "https://") + host + ":" + std::to_string(port);
}

void MetricsEndpoint::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

void MetricsEndpoint::Collect(metrics::Exposition* out) const {
  auto totals = catalog_->MetricsTotals();
  out->Gauge("snapvol_catalog_read_ok", "1 when this scrape read the catalog's totals, 0 when that failed.", {},
             totals ? 1 : 0);
  auto& m = ServiceMetrics();
  // Since the daemon started: plaintext / stored bytes of the chunks snapshots added.
  const double plain = m.snapshot_new_plain_bytes.With()->Value(), packed = m.snapshot_new_stored_bytes.With()->Value();
  const char* kCompression = "Plaintext bytes / stored bytes of the chunks snapshots added since the daemon started.";
  out->Declare("snapvol_compression_ratio", metrics::Type::kGauge, kCompression);
  if (packed > 0) out->Gauge("snapvol_compression_ratio", kCompression, {}, plain / packed);
  if (totals) {
    const char* kSnapshots = "Snapshots in the catalog, by account and state (pending, completed, error).";
    const char* kStored = "Bytes completed snapshots of the account added to the store (their stored size).";
    const char* kLogical = "Volume bytes covered by the account's completed snapshots (logical size).";
    out->Declare("snapvol_snapshots", metrics::Type::kGauge, kSnapshots);
    out->Declare("snapvol_account_stored_bytes", metrics::Type::kGauge, kStored);
    out->Declare("snapvol_account_logical_bytes", metrics::Type::kGauge, kLogical);
    double stored = 0, logical = 0;
    for (const auto& t : totals->snapshots) {
      out->Gauge("snapvol_snapshots", kSnapshots, {{"account", t.account_id}, {"state", t.state}},
                 static_cast<double>(t.snapshots));
      if (t.state != "completed") continue;
      out->Gauge("snapvol_account_stored_bytes", kStored, {{"account", t.account_id}}, static_cast<double>(t.stored_bytes));
      out->Gauge("snapvol_account_logical_bytes", kLogical, {{"account", t.account_id}},
                 static_cast<double>(t.volume_bytes));
      stored += static_cast<double>(t.stored_bytes);
      logical += static_cast<double>(t.volume_bytes);
    }
    out->Gauge("snapvol_stored_bytes", "Bytes all completed snapshots added to the store.", {}, stored);
    out->Gauge("snapvol_logical_bytes", "Volume bytes all completed snapshots cover.", {}, logical);
    const char* kRatio =
        "Logical bytes of completed snapshots / bytes they stored: what incremental snapshots, dedup and "
        "compression save together.";
    out->Declare("snapvol_dedup_ratio", metrics::Type::kGauge, kRatio);
    if (stored > 0) out->Gauge("snapvol_dedup_ratio", kRatio, {}, logical / stored);
    const char* kRuns = "Lifecycle policy runs recorded in the catalog, by state (running, succeeded, partial, failed).";
    const char* kLast = "When the latest lifecycle run in this state ended (started, while running), Unix time.";
    out->Declare("snapvol_lifecycle_runs", metrics::Type::kGauge, kRuns);
    out->Declare("snapvol_lifecycle_last_run_timestamp_seconds", metrics::Type::kGauge, kLast);
    for (const auto& r : totals->lifecycle_runs) {
      out->Gauge("snapvol_lifecycle_runs", kRuns, {{"state", r.state}}, static_cast<double>(r.runs));
      out->Gauge("snapvol_lifecycle_last_run_timestamp_seconds", kLast, {{"state", r.state}},
                 static_cast<double>(r.last_ms) / 1000.0);
    }
  }
  if (usage_) {
    const char* kExclusive = "Stored bytes only this account's snapshots reference.";
    const char* kShared = "Stored bytes this account's snapshots share with another account's.";
    out->Declare("snapvol_account_exclusive_bytes", metrics::Type::kGauge, kExclusive);
    out->Declare("snapvol_account_shared_bytes", metrics::Type::kGauge, kShared);
    if (auto usage = usage_()) {
      for (const auto& u : *usage) {
        out->Gauge("snapvol_account_exclusive_bytes", kExclusive, {{"account", u.account_id}},
                   static_cast<double>(u.exclusive_bytes));
        out->Gauge("snapvol_account_shared_bytes", kShared, {{"account", u.account_id}},
                   static_cast<double>(u.shared_bytes));
      }
    }
  }
}

}  // namespace snapvol
