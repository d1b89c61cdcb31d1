// `snapvol volume delete VOL`: deletes a volume through the one deletion path
// (managed/volume_deletion.h), offline on the data dir: the same refusals as EC2's
// DeleteVolume (attached, still being restored, a rollback of it not ended); the catalog
// entry and its tags go; snapvol's own files go with a managed or restored volume; a
// registered volume's file or block device is never touched; its snapshots stay.
// Thread-safety: call from the CLI's one thread.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

namespace snapvol {

// Adds `delete` under the `volume` command. data_dir and output are the CLI's global options,
// read when the command runs. The callback sets *action; failures print one `snapvol: error:`
// line and set *exit_code to 1.
void AddVolumeDeleteCommand(CLI::App* volume_cmd, const std::string* data_dir, const std::string* output,
                            std::function<void()>* action, int* exit_code);

}  // namespace snapvol
