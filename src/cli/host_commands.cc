#include "cli/host_commands.h"

#include <algorithm>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/cli_support.h"
#include "core/clock.h"

namespace snapvol {

Status HostListCommand(Catalog* catalog, int64_t now_ms, int64_t timeout_ms, bool json, std::ostream& out) {
  ASSIGN_OR_RETURN(std::vector<HostRecord> hosts, catalog->ListHosts());
  nlohmann::json jhosts = nlohmann::json::array();
  std::vector<std::vector<std::string>> rows;
  for (const HostRecord& h : hosts) {
    const std::string state = HostStateAt(h, now_ms, timeout_ms);
    const std::string beat = h.heartbeat_ms ? FormatIso8601(h.heartbeat_ms) : "-";
    jhosts.push_back({{"HostId", h.host_id}, {"Name", h.name}, {"ApiUrl", h.api_url},
                      {"NbdEndpoint", h.nbd_endpoint}, {"Version", h.version},
                      {"StartTime", FormatIso8601(h.started_ms)},
                      {"LastHeartbeat", h.heartbeat_ms ? nlohmann::json(beat) : nlohmann::json(nullptr)},
                      {"HeartbeatMillis", h.heartbeat_ms}, {"State", state}});
    rows.push_back({h.host_id, h.name, h.api_url, h.nbd_endpoint, h.version, beat, state});
  }
  if (json) {
    out << nlohmann::json{{"Hosts", jhosts}}.dump(2) << "\n";
    return OkStatus();
  }
  const std::vector<std::string> header = {"HOST", "NAME", "API", "NBD", "VERSION", "LAST HEARTBEAT", "STATE"};
  cli::PrintTable(header, rows, out);
  return OkStatus();
}

Status HostLeasesCommand(Catalog* catalog, int64_t now_ms, bool json, std::ostream& out) {
  ASSIGN_OR_RETURN(std::vector<ClusterLeaseRecord> leases, catalog->ListClusterLeases());
  ASSIGN_OR_RETURN(std::vector<HostRecord> hosts, catalog->ListHosts());
  nlohmann::json jleases = nlohmann::json::array();
  std::vector<std::vector<std::string>> rows;
  for (const ClusterLeaseRecord& l : leases) {
    // A holder without a host row (a CLI process, or a host since removed) has no name.
    auto host = std::find_if(hosts.begin(), hosts.end(), [&](const HostRecord& h) { return h.host_id == l.holder; });
    const std::string name = host == hosts.end() ? "" : host->name;
    const std::string state = ClusterLeaseStateAt(l, now_ms);
    const std::string expires = l.expires_ms ? FormatIso8601(l.expires_ms) : "-";
    jleases.push_back({{"Name", l.name}, {"Generation", l.generation}, {"Holder", l.holder}, {"HolderName", name},
                       {"Expires", l.expires_ms ? nlohmann::json(expires) : nlohmann::json(nullptr)},
                       {"ExpiresMillis", l.expires_ms}, {"State", state}});
    rows.push_back({l.name, std::to_string(l.generation), l.holder, name.empty() ? "-" : name, expires, state});
  }
  if (json) {
    out << nlohmann::json{{"Leases", jleases}}.dump(2) << "\n";
    return OkStatus();
  }
  cli::PrintTable({"LEASE", "GENERATION", "HOLDER", "NAME", "EXPIRES", "STATE"}, rows, out);
  return OkStatus();
}

void AddHostCommands(CLI::App& app, cli::Globals& g, std::function<void()>* action) {
  auto* host = app.add_subcommand("host", "The snapvold hosts registered in the catalog");
  host->require_subcommand(1);
  auto timeout_s = std::make_shared<double>(kDefaultHostTimeoutMs / 1000.0);
  auto* list = host->add_subcommand("list", "Every host: id, name, API, NBD, version, last heartbeat and state "
                                            "(up, unreachable after --host-timeout without a heartbeat, stopped)");
  list->add_option("--host-timeout", *timeout_s,
                   "Seconds without a heartbeat after which a host is unreachable (default 30)")
      ->check(CLI::Range(0.001, 86400.0));
  list->callback([&g, action, timeout_s] {
    *action = [&g, timeout_s] {
      auto dir = cli::OpenDir(g);
      cli::Must(HostListCommand(dir->catalog(), Clock::Real()->NowMillis(), static_cast<int64_t>(*timeout_s * 1000),
                                g.output == "json", std::cout));
    };
  });
  auto* leases = host->add_subcommand("leases", "The once-per-cluster duties (cluster leases): lease, generation, "
                                                "holding host, expiry and state (held, expired, released)");
  leases->callback([&g, action] {
    *action = [&g] {
      auto dir = cli::OpenDir(g);
      cli::Must(HostLeasesCommand(dir->catalog(), Clock::Real()->NowMillis(), g.output == "json", std::cout));
    };
  });
}

}  // namespace snapvol
