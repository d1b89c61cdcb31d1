// Test-only: a file system of a given type (xfs, ext4) made on a sparse file and mounted on a
// loop device in a fresh directory under /tmp, for tests of reflink clones and extent maps.
// Needs root. Unmounted and removed by the destructor, also when the test failed.
// Thread-safety: one thread.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace snapvol::testing_util {

class LoopFs {
 public:
  // type: "xfs" or "ext4"; size: as truncate takes it ("512M").
  explicit LoopFs(const std::string& type, const std::string& size = "512M") {
    char tmpl[] = "/tmp/snapvol-loopfs-XXXXXX";
    if (!::mkdtemp(tmpl)) return;
    base_ = tmpl;
    image_ = base_ + "/fs.img";
    dir_ = base_ + "/mnt";
    const std::string mkfs = type == "xfs" ? "mkfs.xfs -q -f " : "mkfs.ext4 -q -F ";
    const std::string cmd = "mkdir " + dir_ + " && truncate -s " + size + " " + image_ + " && " + mkfs + image_ +
                            " && mount -o loop " + image_ + " " + dir_;
    mounted_ = std::system(cmd.c_str()) == 0;
  }
  ~LoopFs() {
    if (base_.empty()) return;
    if (mounted_) (void)std::system(("umount " + dir_).c_str());
    (void)std::system(("rm -rf " + base_).c_str());
  }
  LoopFs(const LoopFs&) = delete;
  LoopFs& operator=(const LoopFs&) = delete;
  bool ok() const { return mounted_; }
  const std::string& dir() const { return dir_; }

 private:
  std::string base_, image_, dir_;
  bool mounted_ = false;
};

}  // namespace snapvol::testing_util
