// Names, creation and removal of a volume's files (see volume_files.h).
#include "managed/volume_files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/file_util.h"

namespace snapvol {

std::string VolumeImagePath(const std::string& volume_dir, const std::string& volume_id) {
  return volume_dir + "/" + volume_id + ".img";
}

Status CreateVolumeImage(const std::string& image_path, uint64_t size) {
  int fd = ::open(image_path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    int err = errno;
    if (err == EEXIST) return std::unexpected(Error(ErrorCode::kAlreadyExists, image_path + " already exists"));
    return std::unexpected(Error(ErrorCode::kIoError, "cannot create " + image_path + ": " + std::strerror(err)));
  }
  int err = 0;
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0 || ::fsync(fd) != 0) err = errno;
  ::close(fd);
  if (err != 0) {
    ::unlink(image_path.c_str());
    if (err == EFBIG || err == ENOSPC || err == EINVAL)
      return std::unexpected(Error(ErrorCode::kNoSpace, "the file system cannot hold a volume of " +
                                                            std::to_string(size) + " bytes (" + std::strerror(err) + ")"));
    return std::unexpected(Error(ErrorCode::kIoError, "cannot size " + image_path + ": " + std::strerror(err)));
  }
  return OkStatus();
}

void RemoveVolumeFiles(const std::string& image_path) {
  ::unlink(image_path.c_str());
  ::unlink(CbtPath(image_path).c_str());
  ::unlink(LoadMapPath(image_path).c_str());
  std::filesystem::path p(image_path);
  std::error_code ec;
  const std::string prefix = std::filesystem::path(CowPathPrefix(image_path)).filename().string();
  for (const auto& entry : std::filesystem::directory_iterator(p.parent_path(), ec))
    if (entry.path().filename().string().rfind(prefix, 0) == 0) std::filesystem::remove_all(entry.path(), ec);
}

}  // namespace snapvol
