// `snapvol instance set-hooks|show`: an administrator's freeze hooks of an instance (pre and
// post commands run on the host around the cut of its volumes; engine/freeze_hooks.h), and how
// `instance list` shows them. The hooks are set here, on the host, and never through the API:
// they run as the daemon's user.
// Thread-safety: call from one thread (the CLI's).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/cli_support.h"

namespace snapvol::cli {

// Adds set-hooks and show under `instance`; the one the command line names sets *action.
// g and action must outlive the parse and the action.
void AddInstanceHooksCommands(CLI::App* instance, const Globals& g, std::function<void()>* action);

// {"PreCommand", "PostCommand", "TimeoutSeconds", "OnPreFailure", "UpdateTime"}, or null.
nlohmann::json HooksJson(const std::optional<InstanceHooksRecord>& h);
// "pre+post 10s crash-consistent", "post 30s fail", or "-".
std::string HooksSummary(const std::optional<InstanceHooksRecord>& h);

}  // namespace snapvol::cli
