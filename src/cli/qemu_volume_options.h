// `snapvol volume register --qemu-qmp SOCKET --qemu-node NODE [--qemu-nbd SOCKET]`: a disk of
// a running VM or qemu-storage-daemon registered as a volume (engine/qemu_cut_driver.h), in
// place of --path. Thread-safety: call from the CLI's one thread.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <optional>
#include <string>

namespace snapvol {

struct QemuVolumeOptions {
  std::string qmp, node, nbd;
};

// Adds the --qemu-… options to `volume register`.
void AddQemuVolumeOptions(CLI::App* register_cmd, QemuVolumeOptions* o);

// The volume to register: with --qemu-qmp, the QEMU disk's path ("qemu:NODE@SOCKET") and size,
// asked over QMP; else nullopt (register --path). Throws Failure on a bad combination or when
// QEMU cannot be asked.
struct RegisteredDisk {
  std::string path;
  uint64_t size = 0;
};
std::optional<RegisteredDisk> ResolveQemuVolume(const QemuVolumeOptions& o, const std::string& path);

}  // namespace snapvol
