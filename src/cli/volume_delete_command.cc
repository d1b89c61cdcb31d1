#include "cli/volume_delete_command.h"

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/data_dir.h"
#include "core/ids.h"
#include "managed/volume_deletion.h"

namespace snapvol {
namespace {

Status Run(const std::string& data_dir, bool json_out, const std::string& volume_id) {
  if (data_dir.empty()) return InvalidArgument("no data dir: pass --data-dir DIR or set SNAPVOL_DATA_DIR");
  if (!IsVolumeId(volume_id)) return InvalidArgument("'" + volume_id + "' is not a volume id (vol-…)");
  ASSIGN_OR_RETURN(auto dir, DataDir::Open(data_dir));
  // No NBD server runs in this process: snapvold's own connections to a managed volume are
  // ended by `aws ec2 delete-volume` (the help text says so). The volume directory is not
  // known here (snapvold --restore-dir), so snapvol's own image is recognised by its name.
  VolumeDeletionResult result;
  RETURN_IF_ERROR(DeleteVolume({.catalog = dir->catalog()}, volume_id, &result));
  const VolumeRecord& v = result.volume;
  const char* kind = v.managed ? "managed" : !v.snapshot_id.empty() ? "restored" : "registered";
  if (json_out) {
    nlohmann::json j = {{"VolumeId", v.volume_id}, {"Kind", kind}, {"Path", v.path},
                        {"FilesRemoved", result.files_removed}, {"LeftBehind", result.left_behind}};
    std::cout << j.dump(2) << "\n";
    return OkStatus();
  }
  std::cout << "deleted " << kind << " volume " << v.volume_id;
  if (result.files_removed) std::cout << " and its image " << v.path;
  else if (std::string(kind) == "registered") std::cout << " (its disk " << v.path << " is untouched)";
  std::cout << "; its snapshots are kept\n";
  if (!result.left_behind.empty())
    std::cerr << "snapvol: warning: " << result.left_behind << "\n";
  return OkStatus();
}

}  // namespace

void AddVolumeDeleteCommand(CLI::App* volume_cmd, const std::string* data_dir, const std::string* output,
                            std::function<void()>* action, int* exit_code) {
  auto* cmd = volume_cmd->add_subcommand(
      "delete",
      "Delete a volume: its catalog entry and tags. A registered volume's file or block device is\n"
      "untouched (only snapvol forgets it); a managed or restored volume's image in the volume\n"
      "directory is removed. Its snapshots are kept. Refused while it is attached, still being\n"
      "restored, or being rolled back. A managed volume that a running snapvold serves over NBD:\n"
      "use `aws ec2 delete-volume`, which also ends its connections.");
  auto volume_id = std::make_shared<std::string>();
  cmd->add_option("volume_id", *volume_id, "The volume (vol-…)")->required();
  cmd->callback([=] {
    *action = [=] {
      auto st = Run(*data_dir, *output == "json", *volume_id);
      if (!st) {
        std::cerr << "snapvol: error: volume delete: " << st.error().message() << "\n";
        *exit_code = 1;
        return;
      }
      *exit_code = 0;
    };
  });
}

}  // namespace snapvol
