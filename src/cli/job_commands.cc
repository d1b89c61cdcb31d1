// `snapvol job …` (see job_commands.h).
#include "cli/job_commands.h"

#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "lifecycle/maintenance.h"

namespace snapvol {
namespace {

std::string Time(int64_t ms) { return ms ? FormatIso8601(ms) : "-"; }

nlohmann::json ToJson(const MaintenanceRunRecord& r) {
  return {{"runId", r.run_id},
          {"job", r.job},
          {"trigger", r.trigger},
          {"mode", r.mode},
          {"state", r.state},
          {"scheduledAt", Time(r.scheduled_ms)},
          {"startedAt", Time(r.started_ms)},
          {"finishedAt", Time(r.finished_ms)},
          {"missed", r.missed},
          {"bytesFreed", r.bytes_freed},
          {"objectsDeleted", r.objects_deleted},
          {"snapshotsChecked", r.snapshots_checked},
          {"objectsChecked", r.objects_checked},
          {"damagedSnapshots", r.damaged},
          {"message", r.message},
          {"hostId", r.host_id},
          {"leaseGeneration", r.lease_generation}};
}

// What the run did, in a few words for the table.
std::string Outcome(const MaintenanceRunRecord& r) {
  if (r.state == "queued" || r.state == "running") return "";
  if (r.state == "failed") return r.job == "drill" && !r.damaged.empty() ? "failed: " + r.damaged : "failed";
  if (r.job == "gc") return std::to_string(r.bytes_freed) + " bytes freed";
  if (r.job == "drill") return std::to_string(r.snapshots_checked) + " snapshots restored";
  std::string s = std::to_string(r.snapshots_checked) + " snapshots checked";
  if (!r.damaged.empty()) s += ", DAMAGED: " + r.damaged;
  return s;
}

}  // namespace

Status JobListCommand(Catalog* catalog, const std::string& job, size_t limit, bool json, std::ostream& out) {
  if (!job.empty() && job != "gc" && job != "verify" && job != "drill")
    return InvalidArgument("--job must be gc, verify or drill");
  ASSIGN_OR_RETURN(auto runs, catalog->ListMaintenanceRuns(job.empty() ? std::nullopt : std::optional(job), limit));
  if (json) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& r : runs) a.push_back(ToJson(r));
    out << a.dump(2) << "\n";
    return OkStatus();
  }
  char line[256];
  std::snprintf(line, sizeof line, "%-6s %-7s %-9s %-10s %-24s %-24s %s\n", "ID", "JOB", "TRIGGER", "STATE",
                "SCHEDULED", "FINISHED", "OUTCOME");
  out << line;
  for (const auto& r : runs) {
    std::snprintf(line, sizeof line, "%-6lld %-7s %-9s %-10s %-24s %-24s ", static_cast<long long>(r.run_id),
                  r.job.c_str(), r.trigger.c_str(), r.state.c_str(), Time(r.scheduled_ms).c_str(),
                  Time(r.finished_ms).c_str());
    out << line << Outcome(r) << "\n";
  }
  return OkStatus();
}

Status JobShowCommand(Catalog* catalog, const std::string& id, bool json, std::ostream& out) {
  char* end = nullptr;
  long long n = std::strtoll(id.c_str(), &end, 10);
  if (id.empty() || *end != '\0' || n < 1) return InvalidArgument("a run id is a number (snapvol job list shows them)");
  ASSIGN_OR_RETURN(auto r, catalog->GetMaintenanceRun(n));
  if (json) {
    out << ToJson(r).dump(2) << "\n";
    return OkStatus();
  }
  out << "run:        " << r.run_id << "\n"
      << "job:        " << r.job << (r.mode.empty() ? "" : " (" + r.mode + ")") << "\n"
      << "trigger:    " << r.trigger << "\n"
      << "state:      " << r.state << "\n"
      << "scheduled:  " << Time(r.scheduled_ms) << "\n"
      << "started:    " << Time(r.started_ms) << "\n"
      << "finished:   " << Time(r.finished_ms) << "\n";
  if (r.missed) out << "missed:     " << r.missed << "\n";
  if (!r.host_id.empty())
    out << "host:       " << r.host_id << " (lease generation " << r.lease_generation << ")\n";
  if (r.job == "gc") {
    out << "freed:      " << r.bytes_freed << " bytes, " << r.objects_deleted << " objects\n";
  } else if (r.job == "drill") {
    out << "restored:   " << r.snapshots_checked << " snapshots, " << r.objects_checked << " blocks checked\n"
        << "failed:     " << (r.damaged.empty() ? "none" : r.damaged) << "\n";
  } else {
    out << "checked:    " << r.snapshots_checked << " snapshots, " << r.objects_checked << " objects\n"
        << "damaged:    " << (r.damaged.empty() ? "none" : r.damaged) << "\n";
  }
  out << "message:    " << r.message << "\n";
  return OkStatus();
}

Status JobRunCommand(Catalog* catalog, Repository* repo, ThreadPool* pool, const std::string& job, bool quick,
                     bool json, std::ostream& out) {
  if (quick && job != "verify") return InvalidArgument("--quick is for verify only");
  lifecycle::MaintenanceScheduler queue(catalog, repo, pool, Clock::Real());
  ASSIGN_OR_RETURN(auto run, queue.RequestRun(job, job == "verify" ? (quick ? "quick" : "full") : ""));
  if (json) {
    out << ToJson(run).dump(2) << "\n";
    return OkStatus();
  }
  out << "queued " << job << " run " << run.run_id << ": snapvold on this data dir starts it within a second"
      << " (snapvol job show " << run.run_id << ")\n";
  return OkStatus();
}

}  // namespace snapvol
