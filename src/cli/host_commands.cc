#include "cli/host_commands.h"

#include <algorithm>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "cli/api_client.h"
#include "cli/cli_support.h"
#include "core/clock.h"
#include "core/ids.h"

namespace snapvol {

Status HostListCommand(Catalog* catalog, int64_t now_ms, int64_t timeout_ms, bool json, std::ostream& out) {
  ASSIGN_OR_RETURN(std::vector<HostRecord> hosts, catalog->ListHosts());
  ASSIGN_OR_RETURN(std::vector<VolumeRecord> volumes, catalog->ListVolumes(std::nullopt));
  nlohmann::json jhosts = nlohmann::json::array();
  std::vector<std::vector<std::string>> rows;
  for (const HostRecord& h : hosts) {
    const std::string state = HostStateAt(h, now_ms, timeout_ms);
    // The volumes it holds: out of reach with it when it is not up.
    const auto held = std::count_if(volumes.begin(), volumes.end(), [&](const VolumeRecord& v) { return v.host_id == h.host_id; });
    const std::string beat = h.heartbeat_ms ? FormatIso8601(h.heartbeat_ms) : "-";
    jhosts.push_back({{"HostId", h.host_id}, {"Name", h.name}, {"ApiUrl", h.api_url},
                      {"NbdEndpoint", h.nbd_endpoint}, {"Version", h.version},
                      {"StartTime", FormatIso8601(h.started_ms)},
                      {"LastHeartbeat", h.heartbeat_ms ? nlohmann::json(beat) : nlohmann::json(nullptr)},
                      {"HeartbeatMillis", h.heartbeat_ms}, {"State", state}, {"Volumes", held}});
    rows.push_back({h.host_id, h.name, h.api_url, h.nbd_endpoint, h.version, beat, std::to_string(held), state});
  }
  if (json) {
    out << nlohmann::json{{"Hosts", jhosts}}.dump(2) << "\n";
    return OkStatus();
  }
  const std::vector<std::string> header = {"HOST", "NAME", "API", "NBD", "VERSION", "LAST HEARTBEAT", "VOLUMES", "STATE"};
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

Status HostEvacuateCommand(const ApiClientOptions& api, const std::string& host_id, bool dry_run, bool json,
                           std::ostream& out) {
  if (!IsHostId(host_id)) return InvalidArgument("'" + host_id + "' is not a host id (host- and 17 hex digits; `snapvol host list`)");
  const std::string body = nlohmann::json{{"dryRun", dry_run}}.dump();
  ASSIGN_OR_RETURN(JsonApiAnswer answer, CallJsonApi(api, "POST", "hosts/" + host_id + "/evacuate", body));
  auto j = nlohmann::json::parse(answer.body, nullptr, false);
  if (answer.status != 200 || !j.is_object() || !j.contains("volumes")) {
    const bool err = j.is_object() && j.contains("error") && j["error"].is_object();
    std::string code = err ? j["error"].value("code", "") : "";
    std::string message = err ? j["error"].value("message", "") : answer.body;
    return Conflict("HTTP " + std::to_string(answer.status) + (code.empty() ? "" : " " + code) + ": " + message);
  }
  size_t failed = 0;
  std::vector<std::vector<std::string>> rows;
  for (const auto& v : j["volumes"]) {
    const std::string outcome = v.value("outcome", "");
    if (outcome == "failed") ++failed;
    rows.push_back({v.value("volumeId", ""), v.value("snapshotId", "-"), outcome, v.value("newVolumeId", "-"),
                    v.value("message", "")});
  }
  if (json) {
    out << j.dump(2) << "\n";
  } else {
    out << "host " << host_id << " is " << j.value("hostState", "") << "; its managed volumes "
        << (dry_run ? "would be" : "are") << " restored on " << j.value("toHostId", "") << "\n";
    cli::PrintTable({"VOLUME", "SNAPSHOT", "OUTCOME", "NEW VOLUME", "MESSAGE"}, rows, out);
  }
  if (failed) return Conflict(std::to_string(failed) + " volume(s) could not be restored (see MESSAGE)");
  return OkStatus();
}

void AddHostCommands(CLI::App& app, cli::Globals& g, std::function<void()>* action) {
  auto* host = app.add_subcommand("host", "The snapvold hosts registered in the catalog");
  host->require_subcommand(1);
  auto timeout_s = std::make_shared<double>(kDefaultHostTimeoutMs / 1000.0);
  auto* list = host->add_subcommand("list", "Every host: id, name, API, NBD, version, last heartbeat and state "
                                            "(up, unreachable after --host-timeout without a heartbeat, stopped) and how many volumes it holds");
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
  auto evac = std::make_shared<std::pair<ApiClientOptions, std::string>>();
  auto evac_dry = std::make_shared<bool>(false);
  auto* evacuate = host->add_subcommand(
      "evacuate",
      "Restore, on the snapvold at --endpoint, the latest completed snapshot of each managed volume of HOST-ID, "
      "a host that is not up (unreachable or stopped): each becomes a new managed volume of the same team there, "
      "tagged aws:snapvol:evacuated-from=VOL; run again, it makes no second copy. Refused while HOST-ID is up. "
      "Administrators only");
  evacuate->add_option("host_id", evac->second, "The host that is not up (host-…; `snapvol host list`)")->required();
  evacuate->add_option("--endpoint", evac->first.endpoint,
                       "The snapvold to restore onto (its URL, e.g. http://127.0.0.1:8787): the volumes land on its host")
      ->required();
  evacuate->add_option("--profile", evac->first.profile, "AWS credentials profile (default: $AWS_PROFILE or the env keys)");
  evacuate->add_option("--region", evac->first.region, "Region to sign for (default: $AWS_DEFAULT_REGION or us-east-1)");
  evacuate->add_flag("--dry-run", *evac_dry, "Say what would be restored, and from which snapshot, without restoring");
  evacuate->callback([&g, action, evac, evac_dry] {
    *action = [&g, evac, evac_dry] {
      cli::Must(HostEvacuateCommand(evac->first, evac->second, *evac_dry, g.output == "json", std::cout));
    };
  });
  leases->callback([&g, action] {
    *action = [&g] {
      auto dir = cli::OpenDir(g);
      cli::Must(HostLeasesCommand(dir->catalog(), Clock::Real()->NowMillis(), g.output == "json", std::cout));
    };
  });
}

}  // namespace snapvol
