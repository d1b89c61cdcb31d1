#include "cli/qemu_volume_options.h"

#include <filesystem>

#include "cli/cli_support.h"
#include "engine/qemu_cut_driver.h"

namespace snapvol {

using cli::Failure;
using cli::Must;

void AddQemuVolumeOptions(CLI::App* register_cmd, QemuVolumeOptions* o) {
  register_cmd->add_option("--qemu-qmp", o->qmp,
                           "A QEMU disk instead of --path: the QMP socket of its VM or qemu-storage-daemon");
  register_cmd->add_option("--qemu-node", o->node, "With --qemu-qmp: the disk's block node (query-named-block-nodes)");
  register_cmd->add_option("--qemu-nbd", o->nbd,
                           "With --qemu-qmp: the unix socket of the NBD server QEMU already runs (QEMU runs one at "
                           "most; default: snapvol starts one per snapshot)");
}

std::optional<RegisteredDisk> ResolveQemuVolume(const QemuVolumeOptions& o, const std::string& path) {
  if (o.qmp.empty()) {
    if (!o.node.empty() || !o.nbd.empty()) throw Failure{"--qemu-node and --qemu-nbd need --qemu-qmp"};
    if (path.empty()) throw Failure{"pass --path (a file or block device) or --qemu-qmp and --qemu-node"};
    return std::nullopt;
  }
  if (!path.empty()) throw Failure{"--path and --qemu-qmp exclude each other"};
  if (o.node.empty()) throw Failure{"--qemu-qmp needs --qemu-node (the disk's block node)"};
  auto abs = [](const std::string& p) {
    if (p.empty() || p[0] == '/') return p;
    return std::filesystem::absolute(p).lexically_normal().string();
  };
  QemuDisk disk = Must(QemuDisk::Make(o.node, abs(o.qmp), abs(o.nbd)), "cannot register the QEMU disk");
  RegisteredDisk out;
  out.size = Must(QemuDiskSize(disk), "cannot register the QEMU disk " + o.node);
  out.path = disk.Path();
  return out;
}

}  // namespace snapvol
