// `snapvol doctor` (see doctor.h): the latest lifecycle and maintenance runs, damage found by
// verification, the daemon's /healthz, and the command's registration.
#include <httplib.h>

#include <chrono>
#include <iostream>
#include <map>
#include <memory>
#include <regex>

#include "cli/doctor.h"
#include "core/clock.h"

namespace snapvol {
namespace {

DoctorFinding Make(const char* check, DoctorStatus s, std::string what, std::string fix = "") {
  return {check, s, std::move(what), std::move(fix)};
}

std::string Ago(int64_t now_ms, int64_t then_ms) {
  const int64_t s = (now_ms - then_ms) / 1000;
  if (s < 120) return std::to_string(s) + " s ago";
  if (s < 7200) return std::to_string(s / 60) + " min ago";
  if (s < 2 * 86400) return std::to_string(s / 3600) + " h ago";
  return std::to_string(s / 86400) + " days ago";
}

// The latest finished run of one maintenance job, and how long the job has been quiet.
void CheckMaintenanceJob(Catalog* catalog, const std::string& job, int64_t now_ms, int64_t service_since_ms,
                         std::vector<DoctorFinding>* out) {
  const char* check = job == "gc" ? "gc runs" : "verify runs";
  const std::string name = job == "gc" ? "GC" : "verification";
  auto runs = catalog->ListMaintenanceRuns(job, 50);
  if (!runs) {
    out->push_back(Make(check, DoctorStatus::kFail, runs.error().message(), "snapvol catalog rebuild"));
    return;
  }
  const MaintenanceRunRecord* last = nullptr;
  for (const auto& r : *runs)
    if (r.state == "succeeded" || r.state == "failed") {
      last = &r;
      break;
    }
  if (last && last->state == "failed") {
    out->push_back(Make(check, DoctorStatus::kWarn,
                        "the latest " + name + " run (" + std::to_string(last->run_id) + ", finished " +
                            FormatIso8601(last->finished_ms) + ") failed: " + last->message,
                        "snapvol job show " + std::to_string(last->run_id) + "; fix the cause, then snapvol job run " + job));
    return;
  }
  if (last && last->finished_ms >= now_ms - kDoctorMaintenanceQuietMs) {
    std::string outcome = job == "gc" ? std::to_string(last->bytes_freed) + " bytes freed"
                                      : std::to_string(last->snapshots_checked) + " snapshots checked";
    out->push_back(Make(check, DoctorStatus::kOk,
                        "the latest " + name + " run (" + std::to_string(last->run_id) + ") succeeded " +
                            Ago(now_ms, last->finished_ms) + ": " + outcome));
    return;
  }
  // Runs are scheduled daily from the day the service existed (its first account).
  if (service_since_ms > now_ms - kDoctorMaintenanceQuietMs) {
    out->push_back(Make(check, DoctorStatus::kOk,
                        std::string(last ? "the latest " + name + " run succeeded" : "no " + name + " run yet") +
                            "; the service is younger than 2 days (since " + FormatIso8601(service_since_ms) + ")"));
    return;
  }
  out->push_back(Make(check, DoctorStatus::kWarn,
                      last ? "no " + name + " run has finished in the last 2 days (the latest ended " +
                                 FormatIso8601(last->finished_ms) + ")"
                           : "no " + name + " run has ever finished",
                      "is snapvold running on this data dir with maintenance enabled? (snapvol job list shows the "
                      "runs; snapvol job run " + job + " asks for one now)"));
}

}  // namespace

std::vector<DoctorFinding> LifecycleRunFindings(Catalog* catalog) {
  std::vector<DoctorFinding> out;
  auto policies = catalog->ListLifecyclePolicies(std::nullopt);
  if (!policies) return {Make("lifecycle runs", DoctorStatus::kFail, policies.error().message(), "snapvol catalog rebuild")};
  size_t enabled = 0, checked = 0;
  for (const auto& p : *policies) {
    if (p.state != "ENABLED") continue;
    ++enabled;
    auto runs = catalog->ListLifecycleRuns(p.policy_id, 100);
    if (!runs) {
      out.push_back(Make("lifecycle runs", DoctorStatus::kFail, runs.error().message(), "snapvol catalog rebuild"));
      continue;
    }
    std::map<std::string, const LifecycleRunRecord*> latest;  // per schedule, newest first
    for (const auto& r : *runs) latest.emplace(r.schedule_name, &r);
    for (const auto& [schedule, r] : latest) {
      ++checked;
      if (r->state != "failed" && r->state != "partial") continue;
      out.push_back(Make("lifecycle runs", DoctorStatus::kWarn,
                         "policy " + p.policy_id + " (account " + p.account_id + ", schedule '" + schedule +
                             "'): the run for " + FormatIso8601(r->scheduled_ms) + " " + r->state + " (" +
                             std::to_string(r->created) + " created, " + std::to_string(r->failed) +
                             " failed): " + r->message,
                         "snapvol policy runs --policy-id " + p.policy_id +
                             "; fix what the message names (a volume gone, a quota, the store) before the next run"));
    }
  }
  if (out.empty())
    out.push_back(Make("lifecycle runs", DoctorStatus::kOk,
                       std::to_string(enabled) + " enabled lifecycle polic" + (enabled == 1 ? "y" : "ies") + ": " +
                           (checked ? "the latest run of each schedule did not fail" : "no runs yet")));
  return out;
}

std::vector<DoctorFinding> MaintenanceFindings(Catalog* catalog, int64_t now_ms) {
  std::vector<DoctorFinding> out;
  int64_t since = now_ms;
  if (auto accounts = catalog->ListAccounts(); accounts && !accounts->empty()) since = accounts->front().created_ms;
  CheckMaintenanceJob(catalog, "gc", now_ms, since, &out);
  CheckMaintenanceJob(catalog, "verify", now_ms, since, &out);
  auto checks = catalog->ListSnapshotVerifications();
  if (!checks) {
    out.push_back(Make("damaged snapshots", DoctorStatus::kFail, checks.error().message(), "snapvol catalog rebuild"));
    return out;
  }
  std::string names, first_problem;
  size_t damaged = 0;
  for (const auto& c : *checks) {
    if (c.damaged_ms == 0) continue;
    if (damaged++ < 10) names += (names.empty() ? "" : ", ") + c.snapshot_id;
    if (first_problem.empty()) first_problem = c.problem;
  }
  if (damaged) {
    if (damaged > 10) names += " and " + std::to_string(damaged - 10) + " more";
    out.push_back(Make("damaged snapshots", DoctorStatus::kFail,
                       "verification found " + std::to_string(damaged) + " damaged snapshot(s): " + names +
                           " (first problem: " + first_problem + ")",
                       "restore from another snapshot what you need, then delete the damaged ones (snapvol snapshot "
                       "delete --snapshot-id ID); the next snapshot of each volume stores the damaged blocks afresh"));
  } else {
    out.push_back(Make("damaged snapshots", DoctorStatus::kOk,
                       std::to_string(checks->size()) + " snapshot(s) verified so far, none damaged"));
  }
  return out;
}

std::vector<DoctorFinding> ClusterLeaseFindings(Catalog* catalog, int64_t now_ms) {
  auto leases = catalog->ListClusterLeases();
  if (!leases) return {Make("cluster leases", DoctorStatus::kFail, leases.error().message(), "snapvol catalog rebuild")};
  auto hosts = catalog->ListHosts();
  if (!hosts) return {Make("cluster leases", DoctorStatus::kFail, hosts.error().message(), "snapvol catalog rebuild")};
  std::vector<DoctorFinding> out;
  size_t fine = 0;
  for (const auto& l : *leases) {
    const std::string state = ClusterLeaseStateAt(l, now_ms);
    if (state == "released") {
      ++fine;
      continue;
    }
    std::string host_state = "not registered";
    for (const auto& h : *hosts)
      if (h.host_id == l.holder) host_state = HostStateAt(h, now_ms, kDefaultHostTimeoutMs);
    if (host_state == "up") {
      ++fine;
      continue;
    }
    out.push_back(Make("cluster leases", DoctorStatus::kWarn,
                       "lease " + l.name + " (generation " + std::to_string(l.generation) + ", " + state +
                           (state == "held" ? " until " : " since ") + FormatIso8601(l.expires_ms) +
                           ") is held by " + l.holder + ", which is " + host_state +
                           ": its duty runs on no host until another snapvold takes the lease",
                       "start snapvold on a host of this catalog (it takes an expired lease within a renewal); "
                       "snapvol host list and snapvol host leases show the hosts and leases"));
  }
  if (out.empty())
    out.push_back(Make("cluster leases", DoctorStatus::kOk,
                       leases->empty() ? std::string("no cluster lease taken yet")
                                       : std::to_string(fine) + " cluster lease(s), each held by an up host or released"));
  return out;
}

std::vector<DoctorFinding> VolumeFindings(Catalog* catalog, int64_t now_ms) {
  auto volumes = catalog->ListVolumes(std::nullopt);
  if (!volumes) return {Make("volumes", DoctorStatus::kFail, volumes.error().message(), "snapvol catalog rebuild")};
  auto hosts = catalog->ListHosts();
  if (!hosts) return {Make("volumes", DoctorStatus::kFail, hosts.error().message(), "snapvol catalog rebuild")};
  std::vector<const VolumeRecord*> failed, waiting;
  std::string first_waiting_host_state;  // of waiting.front()'s host
  for (const auto& v : *volumes) {
    if (v.state == "error") failed.push_back(&v);
    if (v.state != "deleting" && v.state != "creating") continue;
    const std::string host_state = VolumeHostState(*hosts, v.host_id, now_ms, kDefaultHostTimeoutMs);
    if (host_state.empty() || host_state == "up") continue;  // under way
    if (waiting.empty()) first_waiting_host_state = host_state;
    waiting.push_back(&v);
  }
  std::vector<DoctorFinding> out;
  if (!failed.empty()) {
    const VolumeRecord& v = *failed.front();
    out.push_back(Make("volumes", DoctorStatus::kWarn,
                       std::to_string(failed.size()) + " volume(s) in state error, e.g. " + v.volume_id +
                           (v.state_message.empty() ? std::string() : ": " + v.state_message),
                       "snapvol volume list -o json gives each one's StateMessage; once the cause is fixed, delete "
                       "them (aws ec2 delete-volume --volume-id ID) and create or restore them again"));
  }
  if (!waiting.empty()) {
    const VolumeRecord& v = *waiting.front();
    out.push_back(Make("volumes", DoctorStatus::kWarn,
                       std::to_string(waiting.size()) + " volume(s) deleting or creating on a host that is not up, e.g. " +
                           v.volume_id + " (" + v.state + ") on " + v.host_id + ", which is " + first_waiting_host_state +
                           ": the work waits for that host (a creation is ended error once its heartbeat has expired)",
                       "start snapvold on that host again; snapvol host list shows the hosts"));
  }
  if (out.empty())
    out.push_back(Make("volumes", DoctorStatus::kOk,
                       std::to_string(volumes->size()) + " volume(s), none in error or waiting for a host that is not up"));
  return out;
}

DoctorFinding DaemonFinding(const std::string& endpoint) {
  static const std::regex kUrl(R"(^(https?)://([^/?#]+)/?$)");
  std::smatch m;
  if (!std::regex_match(endpoint, m, kUrl))
    return Make("daemon", DoctorStatus::kFail, "'" + endpoint + "' is not an http(s)://HOST:PORT URL",
                "pass snapvold's listen address, e.g. --endpoint http://127.0.0.1:8787");
  httplib::Client client(m[1].str() + "://" + m[2].str());
  client.set_connection_timeout(5);
  client.set_read_timeout(10);
  const auto start = std::chrono::steady_clock::now();
  auto res = client.Get("/healthz");
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  const std::string took = " (" + std::to_string(ms) + " ms)";
  if (!res)
    return Make("daemon", DoctorStatus::kFail, "GET " + endpoint + "/healthz: " + httplib::to_string(res.error()) + took,
                "is snapvold running and listening there? (systemctl status snapvold; its --listen address)");
  if (res->status != 200 || res->body != "ok\n")
    return Make("daemon", DoctorStatus::kFail,
                "GET " + endpoint + "/healthz answered HTTP " + std::to_string(res->status) + took +
                    ", not snapvold's 200 ok",
                "check that the endpoint is snapvold's listen address and not another service or a proxy's error");
  if (ms > 2000)
    return Make("daemon", DoctorStatus::kWarn, "GET " + endpoint + "/healthz answered 200 ok but slowly" + took,
                "check snapvold's load and the host (CPU, I/O wait, swapping)");
  return Make("daemon", DoctorStatus::kOk, "GET " + endpoint + "/healthz answered 200 ok" + took);
}

void AddDoctorCommand(CLI::App& app, const std::string* data_dir, const std::string* output,
                      std::function<void()>* action, int* exit_code) {
  auto* cmd = app.add_subcommand(
      "doctor",
      "Check a data dir and (with --endpoint) a running snapvold: permissions, catalog, store reachability,\n"
      "clock skew against S3, free space, usage accounting backlog, the latest lifecycle and maintenance runs,\n"
      "damaged snapshots, leftovers of interrupted writes. One line per check (OK, WARN, FAIL) with how to fix\n"
      "what is wrong; exit 1 if any check failed (warnings alone: 0). Changes nothing except a probe object\n"
      "written to the store under doctor/ and deleted again. Run it as the data dir's owner or as root.");
  auto endpoint = std::make_shared<std::string>();
  cmd->add_option("--endpoint", *endpoint, "Also check snapvold at this URL (GET /healthz, no credentials), "
                                           "e.g. http://127.0.0.1:8787");
  cmd->callback([=] {
    *action = [=] {
      if (data_dir->empty() && endpoint->empty()) {
        std::cerr << "snapvol: error: nothing to check: pass --data-dir DIR (or set SNAPVOL_DATA_DIR) and/or --endpoint URL\n";
        *exit_code = 1;
        return;
      }
      DoctorOptions o{*data_dir, *endpoint, Clock::Real()->NowMillis()};
      auto findings = RunDoctor(o);
      PrintDoctorReport(findings, *output == "json", std::cout);
      *exit_code = DoctorExitCode(findings);
    };
  });
}

}  // namespace snapvol
