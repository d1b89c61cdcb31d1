#include "engine/freeze_hooks.h"

#include <chrono>

namespace snapvol {

namespace {

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : " ") + s;
  return out;
}

// Tag values are at most 256 characters; keep whole UTF-8 characters.
std::string Clip(std::string s, size_t max_bytes) {
  if (s.size() <= max_bytes) return s;
  size_t end = max_bytes - 3;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  return s.substr(0, end) + "...";
}

}  // namespace

HookCommandRunner RealHookCommandRunner() {
  return [](const std::vector<std::string>& argv, const std::vector<std::string>& env, int64_t timeout_ms) {
    return RunCommand(argv, "", timeout_ms, kHookOutputCap, nullptr, &env);
  };
}

FreezeSession::FreezeSession(InstanceHooksRecord hooks, std::vector<std::string> volume_ids,
                             std::vector<std::string> snapshot_ids, HookCommandRunner run, HookReporter report)
    : hooks_(std::move(hooks)),
      volume_ids_(std::move(volume_ids)),
      snapshot_ids_(std::move(snapshot_ids)),
      run_(run ? std::move(run) : RealHookCommandRunner()),
      report_(std::move(report)) {}

FreezeSession::~FreezeSession() { Thaw(); }

HookRun FreezeSession::RunStage(const std::string& stage, const std::string& command, const std::string& pre_result) {
  HookRun r;
  r.instance_id = hooks_.instance_id;
  r.stage = stage;
  r.command = command;
  r.volume_ids = volume_ids_;
  r.snapshot_ids = snapshot_ids_;
  const int64_t timeout_ms = hooks_.timeout_s * 1000;
  std::vector<std::string> env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                  "LANG=C.UTF-8",
                                  "SNAPVOL_HOOK_STAGE=" + stage,
                                  "SNAPVOL_INSTANCE_ID=" + hooks_.instance_id,
                                  "SNAPVOL_VOLUME_IDS=" + Join(volume_ids_),
                                  "SNAPVOL_SNAPSHOT_IDS=" + Join(snapshot_ids_)};
  if (stage == "post") env.push_back("SNAPVOL_PRE_RESULT=" + pre_result);
  const auto started = std::chrono::steady_clock::now();
  auto argv = SplitCommandLine(command);  // checked when set; checked again, never trusted
  Result<CommandResult> ran = argv ? run_(*argv, env, timeout_ms) : std::unexpected(argv.error());
  r.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
  if (!ran) {
    r.outcome = "could not be run: " + ran.error().message();
  } else {
    r.ok = ran->ok();
    r.outcome = ran->Describe(timeout_ms);
    r.output = ran->output;
  }
  if (report_) report_(r);
  return r;
}

bool FreezeSession::Freeze() {
  froze_ = true;
  if (hooks_.pre_command.empty()) return true;
  HookRun r = RunStage("pre", hooks_.pre_command, "");
  if (!r.ok) failure_ = "pre-command " + r.outcome;
  return r.ok;
}

std::string FreezeSession::ConsistencyNote() const {
  if (hooks_.pre_command.empty()) return "";
  if (failure_.empty()) return kApplicationConsistent;
  return Clip("crash-consistent (" + failure_ + ")", 256);
}

void FreezeSession::Thaw() {
  {
    std::lock_guard lock(mu_);
    if (thawed_ || !froze_) return;
    thawed_ = true;
  }
  if (hooks_.post_command.empty()) return;
  RunStage("post", hooks_.post_command, hooks_.pre_command.empty() ? "none" : failure_.empty() ? "ok" : "failed");
}

}  // namespace snapvol
