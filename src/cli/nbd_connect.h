// `snapvol nbd connect`: how a team reaches its attached volume over NBD. Writes the TLS
// pre-shared key of the caller's access key (nbd/nbd_psk.h) to a key file only the caller can
// read, and prints the exact URI and qemu options that use it.
// Thread-safety: call once per process.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace snapvol {

// Adds the `nbd` command group; its callbacks set *action, run after parsing, which prints a
// failure on stderr and sets *exit_code to 1.
void AddNbdCommands(CLI::App& app, std::function<void()>* action, int* exit_code);

}  // namespace snapvol
