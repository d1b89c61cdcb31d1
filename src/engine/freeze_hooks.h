// Freeze hooks: an instance's pre and post commands (InstanceHooksRecord), run on the host
// around the cut of all of the instance's volumes, the way DLM's pre and post scripts run
// around an instance's multi-volume snapshot: pre (e.g. `virsh domfsfreeze`, `fsfreeze -f`, a
// database flush) → the cut → post (thaw). SnapshotJobs::Start drives one FreezeSession per
// call that names an instance; the session runs the commands and reports each run.
//
// Commands run without a shell (argv by SplitCommandLine), with a clean environment:
//   PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin, LANG=C.UTF-8,
//   SNAPVOL_HOOK_STAGE=pre|post, SNAPVOL_INSTANCE_ID, SNAPVOL_VOLUME_IDS and
//   SNAPVOL_SNAPSHOT_IDS (space-separated, in the same order), and for post SNAPVOL_PRE_RESULT
//   (`ok`, `failed`, or `none` without a pre-command).
// Each command has the hooks' timeout; a command that outlives it is killed with its process
// group. Their output (stdout and stderr, at most kHookOutputCap bytes) goes to the reporter.
// Thread-safety: Freeze is called once, by one thread; Thaw may be called from any thread,
// any number of times, and runs the post-command at most once.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "catalog/catalog_records.h"
#include "core/status.h"
#include "core/subprocess.h"

namespace snapvol {

// A snapshot taken with hooks says so in its kConsistencyTag (catalog/catalog_records.h):
// "application-consistent", or "crash-consistent (pre-command …)" when the pre-command failed
// and the hooks say to go on; AddSourceTags (engine/snapshot_jobs.h) adds how it was cut.
inline constexpr char kApplicationConsistent[] = "application-consistent";
inline constexpr size_t kHookOutputCap = 4096;

// One run of one command, for the daemon's log and audit log.
struct HookRun {
  std::string instance_id;
  std::string stage;  // "pre" | "post"
  std::string command;
  std::vector<std::string> volume_ids, snapshot_ids;
  bool ok = false;
  std::string outcome;  // "exited 0", "did not finish within 10 s (killed)", "cannot run …"
  std::string output;   // what it printed, at most kHookOutputCap bytes
  int64_t duration_ms = 0;
};

// Runs argv with exactly env and a deadline (RunCommand by default; tests pass fakes).
using HookCommandRunner = std::function<Result<CommandResult>(
    const std::vector<std::string>& argv, const std::vector<std::string>& env, int64_t timeout_ms)>;
HookCommandRunner RealHookCommandRunner();
using HookReporter = std::function<void(const HookRun&)>;

class FreezeSession {
 public:
  FreezeSession(InstanceHooksRecord hooks, std::vector<std::string> volume_ids, std::vector<std::string> snapshot_ids,
                HookCommandRunner run, HookReporter report);
  ~FreezeSession();  // Thaw(): whoever drops the last reference thaws
  FreezeSession(const FreezeSession&) = delete;
  FreezeSession& operator=(const FreezeSession&) = delete;

  // Runs the pre-command (none: nothing to do, true). False when it could not start, failed or
  // timed out; failure() then says how ("pre-command exited 1: …").
  bool Freeze();
  const std::string& failure() const { return failure_; }
  // The kConsistencyTag value after Freeze ("" when there is no pre-command: nothing was
  // made consistent beyond the crash-consistent cut, and nothing is claimed).
  std::string ConsistencyNote() const;
  // The pre-command ran and succeeded: the instance is frozen until Thaw.
  bool frozen() const { return froze_ && !hooks_.pre_command.empty() && failure_.empty(); }
  bool fails_snapshots() const { return !failure_.empty() && hooks_.on_pre_failure == "fail"; }

  // Runs the post-command once, if there is one and the pre-command was attempted (or there is
  // no pre-command): a thaw after a failed or timed-out freeze is harmless, a missed one is not.
  void Thaw();

 private:
  HookRun RunStage(const std::string& stage, const std::string& command, const std::string& pre_result);

  const InstanceHooksRecord hooks_;
  const std::vector<std::string> volume_ids_, snapshot_ids_;
  const HookCommandRunner run_;
  const HookReporter report_;
  bool froze_ = false;  // Freeze was called
  std::string failure_;
  std::mutex mu_;
  bool thawed_ = false;  // guarded by mu_
};

}  // namespace snapvol
