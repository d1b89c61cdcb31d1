// `snapvol store upgrade [--pack-size MiB] [--dry-run]`: converts the data dir's format-1
// snapshot store (local or S3) to format 2 in place (docs/store-format.md, "Upgrading a
// format-1 store"), with progress on stderr and a summary at the end.
// Thread-safety: call from the CLI's one thread.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

namespace snapvol {

// Adds `upgrade` under the `store` command. data_dir and output are the CLI's global options,
// read when the command runs. The callback sets *action; failures print one `snapvol: error:`
// line and set *exit_code to 1.
void AddStoreUpgradeCommand(CLI::App* store_cmd, const std::string* data_dir, const std::string* output,
                            std::function<void()>* action, int* exit_code);

}  // namespace snapvol
