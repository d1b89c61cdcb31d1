// `snapvol notify test`: asks snapvold (POST /api/v1/notifications/test, administrators) to send
// a test notification through its configured channels, and prints what each channel did.
// Thread-safety: called from main's thread only.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace snapvol {

// Adds the `notify` command group; its callbacks set *action (run after parsing) and
// *exit_code (1 when a channel did not deliver). Failures are thrown as the CLI's errors are.
void AddNotifyCommands(CLI::App& app, std::function<void()>* action, int* exit_code);

}  // namespace snapvol
