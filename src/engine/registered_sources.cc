#include "engine/registered_sources.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "core/file_util.h"
#include "engine/qemu_cut_driver.h"
#include "volume/cut_sources.h"
#include "volume/extent_map.h"

namespace snapvol {

namespace {

std::string DirOf(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

bool Exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

PreparedSource ReadWhileRunning(const std::string& why) {
  PreparedSource p;  // no source: the job reads the volume's file itself
  p.consistency = std::string(kConsistencyReadWhileRunning) + (why.empty() ? "" : "; " + why);
  return p;
}

}  // namespace

std::string CloneDir(const std::string& image_path) { return DirOf(image_path) + "/.snapvol-clones"; }

std::string ClonePath(const std::string& image_path, const std::string& volume_id, const std::string& snapshot_id) {
  return CloneDir(image_path) + "/" + volume_id + "." + snapshot_id;
}

std::vector<std::string> ListClones(const std::string& image_path, const std::string& volume_id) {
  std::vector<std::string> out;
  DIR* d = ::opendir(CloneDir(image_path).c_str());
  if (!d) return out;
  const std::string prefix = volume_id + ".";
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.starts_with(prefix) && name.size() > prefix.size()) out.push_back(name.substr(prefix.size()));
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

Status RemoveVolumeClones(const std::string& image_path, const std::string& volume_id) {
  for (const auto& id : ListClones(image_path, volume_id)) {
    std::string p = ClonePath(image_path, volume_id, id);
    if (::unlink(p.c_str()) != 0 && errno != ENOENT) return std::unexpected(PosixError("remove clone " + p, errno));
  }
  return OkStatus();
}

Result<std::optional<BaseCloneSpace>> BaseCloneOf(const std::string& image_path, const std::string& volume_id) {
  auto ids = ListClones(image_path, volume_id);
  if (ids.empty()) return std::optional<BaseCloneSpace>();
  BaseCloneSpace s;
  s.snapshot_id = ids.back();  // with snapshots still running there may be more: the sizes add up
  s.path = ClonePath(image_path, volume_id, s.snapshot_id);
  for (const auto& id : ids) {
    std::string p = ClonePath(image_path, volume_id, id);
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) continue;
    s.size = std::max<uint64_t>(s.size, static_cast<uint64_t>(st.st_size));
    ASSIGN_OR_RETURN(auto extents, ReadExtentMap(p));
    s.exclusive_bytes += ExclusiveBytes(extents);
  }
  return std::optional<BaseCloneSpace>(s);
}

Result<std::optional<PreparedSource>> ReflinkCutDriver::Cut(const VolumeRecord& volume, const std::string& snapshot_id,
                                                            const std::string& parent_id) {
  const std::string& image = volume.path;
  struct stat st {};
  if (::stat(image.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::optional<PreparedSource>();
  const std::string dir = CloneDir(image);
  if (auto made = MakeDirs(dir, 0700); !made)
    return std::optional(ReadWhileRunning("no clone directory: " + made.error().message()));
  ::chmod(dir.c_str(), 0700);
  const std::string clone = ClonePath(image, volume.volume_id, snapshot_id);
  if (auto cloned = CloneFile(image, clone); !cloned) {
    ::rmdir(dir.c_str());  // nothing to keep next to an image that cannot be cloned (fails if in use)
    return std::optional(ReadWhileRunning(cloned.error().message()));
  }
  auto src = FileSource::Open(clone);
  if (!src) {
    ::unlink(clone.c_str());
    return std::unexpected(src.error().WithContext("the clone of " + image));
  }
  {
    std::lock_guard lock(mu_);
    running_.insert(clone);
  }
  PreparedSource p;
  const uint64_t size = (*src)->size();
  p.source = std::make_shared<ClonedSource>(std::move(*src), image);
  p.consistency = kConsistencyReflink;
  VolumeRecord v = volume;
  p.on_done = [this, v, snapshot_id](bool completed) { Done(v, snapshot_id, completed); };
  if (parent_id.empty()) {
    p.changed_blocks = "full snapshot (no parent)";
    return std::optional(std::move(p));
  }
  const std::string base = ClonePath(image, volume.volume_id, parent_id);
  if (!Exists(base)) {
    std::string other;
    for (const auto& id : ListClones(image, volume.volume_id))
      if (id != snapshot_id && id != parent_id) other = id;
    p.changed_blocks = other.empty()
                           ? "full read: no base clone of the parent " + parent_id
                           : "full read: the base clone is of " + other + ", not of the parent " + parent_id;
    return std::optional(std::move(p));
  }
  auto base_map = ReadExtentMap(base);
  auto new_map = ReadExtentMap(clone);
  struct stat bst {};
  if (!base_map || !new_map || ::stat(base.c_str(), &bst) != 0) {
    p.changed_blocks = "full read: the extent maps could not be read (" +
                       (!base_map ? base_map.error().message() : !new_map ? new_map.error().message() : base) + ")";
    return std::optional(std::move(p));
  }
  auto bits = std::make_shared<std::vector<uint8_t>>(
      ChangedBlocks(*base_map, static_cast<uint64_t>(bst.st_size), *new_map, size, block_size_));
  uint64_t changed = static_cast<uint64_t>(std::count(bits->begin(), bits->end(), 1));
  p.maybe_changed = [bits](uint64_t b) { return b >= bits->size() || (*bits)[b] != 0; };
  p.changed_blocks = "extent maps against the base clone of " + parent_id + ": " + std::to_string(changed) + " of " +
                     std::to_string(bits->size()) + " blocks changed";
  return std::optional(std::move(p));
}

void ReflinkCutDriver::Done(const VolumeRecord& volume, const std::string& snapshot_id, bool completed) {
  std::lock_guard lock(mu_);
  const std::string mine = ClonePath(volume.path, volume.volume_id, snapshot_id);
  running_.erase(mine);
  if (!completed) {
    ::unlink(mine.c_str());  // the old base stays the base
    return;
  }
  // This snapshot's clone is the base now: the older ones go, except those still being read.
  for (const auto& id : ListClones(volume.path, volume.volume_id)) {
    std::string p = ClonePath(volume.path, volume.volume_id, id);
    if (id != snapshot_id && !running_.contains(p)) ::unlink(p.c_str());
  }
}

Result<std::optional<PreparedSource>> DeviceCutDriver::Cut(const VolumeRecord& volume, const std::string&,
                                                           const std::string&) {
  struct stat st {};
  if (::stat(volume.path.c_str(), &st) != 0 || !S_ISBLK(st.st_mode)) return std::optional<PreparedSource>();
  ASSIGN_OR_RETURN(DeviceSource d, OpenDeviceSource(volume.path));
  PreparedSource p;
  p.consistency = d.exclusive ? std::string(kConsistencyExclusiveDevice)
                              : std::string(kConsistencyReadWhileRunning) + "; " + d.note;
  p.changed_blocks = "full read: no changed-block source for block devices";
  p.source = std::shared_ptr<BlockSource>(std::move(d.source));
  return std::optional(std::move(p));
}

RegisteredSourceProvider::RegisteredSourceProvider(uint32_t block_size, std::string scratch_dir) {
  drivers_.push_back(std::make_unique<QemuCutDriver>(block_size, std::move(scratch_dir)));
  drivers_.push_back(std::make_unique<ReflinkCutDriver>(block_size));
  drivers_.push_back(std::make_unique<DeviceCutDriver>());
}

Result<std::shared_ptr<void>> RegisteredSourceProvider::HoldWrites(const std::vector<VolumeRecord>&) {
  return std::shared_ptr<void>();
}

Result<std::optional<PreparedSource>> RegisteredSourceProvider::Prepare(const VolumeRecord& volume,
                                                                        const std::string& snapshot_id,
                                                                        const std::string& parent_id) {
  if (volume.managed) return std::optional<PreparedSource>();
  for (auto& d : drivers_) {
    ASSIGN_OR_RETURN(auto p, d->Cut(volume, snapshot_id, parent_id));
    if (p) return p;
  }
  return std::optional(ReadWhileRunning("no cut mechanism for this kind of volume"));
}

Result<std::vector<std::optional<PreparedSource>>> CutDriver::CutAll(const std::vector<CutRequest>& cuts) {
  std::vector<std::optional<PreparedSource>> out;
  for (const auto& c : cuts) {
    auto p = Cut(c.volume, c.snapshot_id, c.parent_id);
    if (!p) {
      ReleaseCuts(out);
      return std::unexpected(p.error());
    }
    out.push_back(std::move(*p));
  }
  return out;
}

Result<std::vector<std::optional<PreparedSource>>> RegisteredSourceProvider::PrepareAll(
    const std::vector<CutRequest>& cuts) {
  std::vector<std::optional<PreparedSource>> out(cuts.size());
  std::vector<size_t> left;  // registered volumes no driver took yet
  for (size_t i = 0; i < cuts.size(); ++i)
    if (!cuts[i].volume.managed) left.push_back(i);
  for (auto& d : drivers_) {
    if (left.empty()) break;
    std::vector<CutRequest> ask;
    for (size_t i : left) ask.push_back(cuts[i]);
    auto got = d->CutAll(ask);
    if (!got) {
      ReleaseCuts(out);
      return std::unexpected(got.error());
    }
    std::vector<size_t> still;
    for (size_t k = 0; k < left.size(); ++k) {
      if ((*got)[k]) out[left[k]] = std::move((*got)[k]);
      else still.push_back(left[k]);
    }
    left = std::move(still);
  }
  for (size_t i : left) out[i] = ReadWhileRunning("no cut mechanism for this kind of volume");
  return out;
}

Result<std::shared_ptr<void>> SplitSourceProvider::HoldWrites(const std::vector<VolumeRecord>& volumes) {
  std::vector<VolumeRecord> managed, registered;
  for (const auto& v : volumes) (v.managed ? managed : registered).push_back(v);
  ASSIGN_OR_RETURN(auto a, managed_->HoldWrites(managed));
  ASSIGN_OR_RETURN(auto b, registered_->HoldWrites(registered));
  return std::shared_ptr<void>(std::make_shared<std::pair<std::shared_ptr<void>, std::shared_ptr<void>>>(a, b));
}

namespace {

// The labels of a managed volume's cut (its provider leaves them to this one).
void LabelManagedCut(std::optional<PreparedSource>& p, const std::string& parent_id) {
  if (p && p->consistency.empty() && p->source && p->source->point_in_time()) p->consistency = kConsistencyManaged;
  if (p && p->changed_blocks.empty() && p->maybe_changed)
    p->changed_blocks = "changed-block tracking of the managed volume since " + parent_id;
}

}  // namespace

Result<std::optional<PreparedSource>> SplitSourceProvider::Prepare(const VolumeRecord& volume,
                                                                   const std::string& snapshot_id,
                                                                   const std::string& parent_id) {
  if (!volume.managed) return registered_->Prepare(volume, snapshot_id, parent_id);
  ASSIGN_OR_RETURN(auto p, managed_->Prepare(volume, snapshot_id, parent_id));
  LabelManagedCut(p, parent_id);
  return p;
}

Result<std::vector<std::optional<PreparedSource>>> SplitSourceProvider::PrepareAll(const std::vector<CutRequest>& cuts) {
  std::vector<VolumeRecord> managed;
  std::vector<CutRequest> registered;
  for (const auto& c : cuts) {
    if (c.volume.managed) managed.push_back(c.volume);
    else registered.push_back(c);
  }
  ASSIGN_OR_RETURN(auto held, managed_->HoldWrites(managed));
  ASSIGN_OR_RETURN(auto reg, registered_->PrepareAll(registered));
  std::vector<std::optional<PreparedSource>> out;
  size_t r = 0;
  for (const auto& c : cuts) {
    if (!c.volume.managed) {
      out.push_back(std::move(reg[r++]));
      continue;
    }
    auto p = managed_->Prepare(c.volume, c.snapshot_id, c.parent_id);
    if (!p) {
      ReleaseCuts(out);
      std::vector<std::optional<PreparedSource>> rest(std::make_move_iterator(reg.begin() + static_cast<ptrdiff_t>(r)),
                                                      std::make_move_iterator(reg.end()));
      ReleaseCuts(rest);
      return std::unexpected(p.error());
    }
    LabelManagedCut(*p, c.parent_id);
    out.push_back(std::move(*p));
  }
  return out;
}

}  // namespace snapvol
