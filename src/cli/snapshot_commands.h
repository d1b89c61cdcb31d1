// `snapvol snapshot create|list|show|delete`, `snapvol restore` and `snapvol verify`: the
// offline commands on a data dir's snapshots, added to the command line by RunCli.
// Thread-safety: call from one thread (the CLI's).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

#include "cli/cli_support.h"

namespace snapvol::cli {

// Adds the subcommands; the one the command line names sets *action, which RunCli runs after
// parsing; `verify` sets *exit_code to 1 when a snapshot is damaged. g, action and exit_code
// must outlive the parse and the action.
void AddSnapshotCommands(CLI::App& app, const Globals& g, std::function<void()>* action, int* exit_code);

}  // namespace snapvol::cli
