// `snapvol account|key|policy|restore-request|audit`, added to the command line by RunCli.
// Thread-safety: call from one thread (the CLI's).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

#include "cli/cli_support.h"

namespace snapvol::cli {

// Adds the subcommands; the one the command line names sets *action, which RunCli runs after
// parsing. g and action must outlive the parse and the action.
void AddAdminCommands(CLI::App& app, const Globals& g, std::function<void()>* action);

}  // namespace snapvol::cli
