// The JSON API's maintenance jobs (administrators only): GET /api/v1/jobs, GET /api/v1/jobs/ID
// and POST /api/v1/jobs/run, for gc, verify and drill (restore drills). Documented in docs/api.md.
#include <cstdlib>
#include <sstream>

#include "api/ec2_context.h"
#include "core/clock.h"
#include "lifecycle/maintenance.h"

namespace snapvol::api {
namespace {

nlohmann::json RunJson(const MaintenanceRunRecord& r) {
  nlohmann::json j = {{"runId", r.run_id},         {"job", r.job},
                      {"trigger", r.trigger},       {"state", r.state},
                      {"scheduledAt", FormatIso8601(r.scheduled_ms)}, {"missed", r.missed},
                      {"message", r.message}};
  if (!r.mode.empty()) j["mode"] = r.mode;
  if (r.started_ms) j["startedAt"] = FormatIso8601(r.started_ms);
  if (r.finished_ms) j["finishedAt"] = FormatIso8601(r.finished_ms);
  if (!r.host_id.empty()) {  // the host that ran it, under this generation of the lease `maintenance`
    j["hostId"] = r.host_id;
    j["leaseGeneration"] = r.lease_generation;
  }
  if (r.job == "gc") {
    j["bytesFreed"] = r.bytes_freed;
    j["objectsDeleted"] = r.objects_deleted;
  } else {
    j["snapshotsChecked"] = r.snapshots_checked;
    j["objectsChecked"] = r.objects_checked;
    nlohmann::json damaged = nlohmann::json::array();
    std::istringstream ids(r.damaged);
    for (std::string id; ids >> id;) damaged.push_back(id);
    j["damagedSnapshots"] = damaged;
  }
  return j;
}

nlohmann::json ScheduleJson(const lifecycle::MaintenanceOptions& o) {
  auto hhmm = [](int min) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%02d:%02d", min / 60, min % 60);
    return std::string(buf);
  };
  nlohmann::json gc = {{"enabled", o.gc_enabled}, {"graceSeconds", o.gc_grace_ms / 1000}};
  if (o.gc_every_ms > 0) gc["everySeconds"] = o.gc_every_ms / 1000;
  else gc["dailyAt"] = hhmm(o.gc_time_min);
  nlohmann::json verify = {{"enabled", o.verify_enabled}, {"periodDays", o.verify_period_days},
                           {"mode", o.verify_quick ? lifecycle::kVerifyQuickAndFull : "full"}};
  if (o.verify_every_ms > 0) verify["everySeconds"] = o.verify_every_ms / 1000;
  else verify["dailyAt"] = hhmm(o.verify_time_min);
  nlohmann::json drill = {{"enabled", o.drill_enabled}, {"perAccount", o.drill.per_account}};
  if (o.drill_every_ms > 0) drill["everySeconds"] = o.drill_every_ms / 1000;
  else if (o.drill_enabled) drill["dailyAt"] = hhmm(o.drill_time_min);
  if (!o.drill.check_command.empty()) drill["checkCommand"] = o.drill.check_command;
  return {{"gc", gc}, {"verify", verify}, {"drill", drill}};
}

std::unexpected<ApiError> JobNotFound(const std::string& id) {
  return std::unexpected(MakeApiError("InvalidJobRun.NotFound", "The maintenance run '" + QuoteForMessage(id) +
                                                                    "' does not exist."));
}

}  // namespace

ApiResult<nlohmann::json> DispatchJobs(Ec2Context& x, Caller& c, const RestCall& r) {
  const auto& seg = r.parts;
  lifecycle::MaintenanceScheduler* m = x.options.maintenance;
  if (r.method == "GET" && seg.size() == 1) {
    c.record->action = "snapvol:ListMaintenanceRuns";
    API_RETURN_IF_ERROR(CheckRestParams(r, {.query = {"job", "limit"}}));
    API_RETURN_IF_ERROR(x.Authorize(c, "snapvol:ListMaintenanceRuns", {}));
    std::optional<std::string> job;
    if (auto it = r.query.find("job"); it != r.query.end()) {
      if (it->second != "gc" && it->second != "verify" && it->second != "drill")
        return std::unexpected(InvalidParameterValue("job", it->second, "Expecting gc, verify or drill."));
      job = it->second;
    }
    size_t limit = 50;
    if (auto it = r.query.find("limit"); it != r.query.end()) {
      char* end = nullptr;
      unsigned long v = std::strtoul(it->second.c_str(), &end, 10);
      if (it->second.empty() || *end != '\0' || v < 1 || v > 1000)
        return std::unexpected(InvalidParameterValue("limit", it->second, "Expecting 1 to 1000."));
      limit = v;
    }
    auto runs = x.catalog->ListMaintenanceRuns(job, limit);
    if (!runs) return std::unexpected(FromError(runs.error()));
    nlohmann::json a = nlohmann::json::array();
    for (const auto& run : *runs) a.push_back(RunJson(run));
    nlohmann::json out = {{"runs", a}};
    if (m) out["schedule"] = ScheduleJson(m->options());
    return out;
  }
  if (r.method == "GET" && seg.size() == 2) {
    c.record->action = "snapvol:GetMaintenanceRun";
    c.record->detail = "run " + seg[1];
    API_RETURN_IF_ERROR(CheckRestParams(r, {}));
    API_RETURN_IF_ERROR(x.Authorize(c, "snapvol:GetMaintenanceRun", {}));
    char* end = nullptr;
    long long id = std::strtoll(seg[1].c_str(), &end, 10);
    if (seg[1].empty() || *end != '\0' || id < 1) return JobNotFound(seg[1]);
    auto run = x.catalog->GetMaintenanceRun(id);
    if (!run && run.error().code() == ErrorCode::kNotFound) return JobNotFound(seg[1]);
    if (!run) return std::unexpected(FromError(run.error()));
    return nlohmann::json{{"run", RunJson(*run)}};
  }
  if (r.method == "POST" && seg.size() == 2 && seg[1] == "run") {
    c.record->action = "snapvol:RunMaintenanceJob";
    API_RETURN_IF_ERROR(CheckRestParams(r, {.body = {"job", "mode"}}));
    API_RETURN_IF_ERROR(x.Authorize(c, "snapvol:RunMaintenanceJob", {}));
    auto field = [&](const char* name) -> ApiResult<std::string> {
      auto it = r.body.find(name);
      if (it == r.body.end() || it->is_null()) return std::string();
      if (!it->is_string())
        return std::unexpected(MakeApiError(ec2::kInvalidParameterValue,
                                            std::string("Value for parameter ") + name + " must be a string."));
      return it->get<std::string>();
    };
    API_ASSIGN_OR_RETURN(std::string job, field("job"));
    API_ASSIGN_OR_RETURN(std::string mode, field("mode"));
    if (job.empty()) return std::unexpected(MissingParameter("job"));
    if (job != "gc" && job != "verify" && job != "drill")
      return std::unexpected(InvalidParameterValue("job", job, "Expecting gc, verify or drill."));
    if (job != "verify" && !mode.empty())
      return std::unexpected(InvalidParameterValue("mode", mode, job + " takes no mode."));
    if (job == "verify" && !mode.empty() && mode != "full" && mode != "quick")
      return std::unexpected(InvalidParameterValue("mode", mode, "Expecting full or quick."));
    if (!m)
      return std::unexpected(MakeApiError(ec2::kIncorrectState, "Maintenance jobs do not run in this process."));
    auto run = m->RequestRun(job, mode);
    if (!run && run.error().code() == ErrorCode::kConflict)
      return std::unexpected(MakeApiError(ec2::kIncorrectState, "Not queued: " + run.error().message() + "."));
    if (!run) return std::unexpected(FromError(run.error()));
    return nlohmann::json{{"run", RunJson(*run)}};
  }
  return std::unexpected(MakeApiError(ec2::kInvalidAction, "No such API path: " + r.method + " /api/v1/jobs/..."));
}

}  // namespace snapvol::api
