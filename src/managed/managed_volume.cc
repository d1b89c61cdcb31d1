// ManagedVolume (managed_volume.h): the volume file, CBT, point-in-time cuts with copy-aside,
// and the registry of open volumes. Lazy restore is in lazy_load.cc.
#include "managed/managed_volume.h"

#include <endian.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <cerrno>
#include <cstring>

#include "catalog/catalog.h"
#include "core/file_util.h"
#include "managed/volume_files.h"

namespace snapvol {
namespace {

constexpr char kCbtMagic[4] = {'S', 'V', 'C', 'B'};
constexpr uint32_t kCbtVersion = 1;

// CBT file: magic, u32 version, u8 clean, u8 trusted, u16 base length, base, u64 blocks, bitmap
// (one bit per block, little-endian bit order).
std::vector<uint8_t> EncodeCbt(bool clean, bool trusted, const std::string& base, const std::vector<uint8_t>& bits) {
  std::vector<uint8_t> out(kCbtMagic, kCbtMagic + 4);
  auto put = [&](const void* p, size_t n) { out.insert(out.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n); };
  uint32_t v = htole32(kCbtVersion);
  put(&v, 4);
  out.push_back(clean ? 1 : 0);
  out.push_back(trusted ? 1 : 0);
  uint16_t bl = htole16(static_cast<uint16_t>(base.size()));
  put(&bl, 2);
  put(base.data(), base.size());
  uint64_t n = htole64(bits.size());
  put(&n, 8);
  std::vector<uint8_t> packed((bits.size() + 7) / 8, 0);
  for (size_t i = 0; i < bits.size(); ++i)
    if (bits[i]) packed[i / 8] |= static_cast<uint8_t>(1u << (i % 8));
  put(packed.data(), packed.size());
  return out;
}

}  // namespace

// The volume as of one cut, for one snapshot job.
class ManagedVolume::Freeze : public BlockSource {
 public:
  using ReadFn = std::function<Status(uint64_t, std::span<uint8_t>)>;
  // read: the live volume (loading lazily restored blocks as needed). all_data: report no
  // holes (the volume is still loading: its file's holes say nothing about the snapshot).
  Freeze(std::shared_ptr<nbd::FileExport> live, ReadFn read, bool all_data, uint64_t size, uint32_t block_size,
         std::string cow_path, std::atomic<uint64_t>* bytes_read)
      : live_(std::move(live)),
        read_(std::move(read)),
        all_data_(all_data),
        size_(size),
        bs_(block_size),
        cow_path_(std::move(cow_path)),
        bytes_read_(bytes_read),
        done_((size + block_size - 1) / block_size, 0) {}
  ~Freeze() override {
    if (cow_fd_ >= 0) ::close(cow_fd_);
    if (!cow_path_.empty()) ::unlink(cow_path_.c_str());
  }

  // A writer is about to change block b: keep its content as of the cut unless the snapshot
  // has read it already.
  // A failure here (the disk full, say) fails the snapshot, never the client's write.
  Status Preserve(uint64_t b) {
    std::lock_guard lock(mu_);
    if (failed_ || done_[b] || slots_.count(b)) return OkStatus();
    auto kept = PreserveLocked(b);
    if (!kept) failed_ = kept.error();
    return OkStatus();
  }

  Status PreserveLocked(uint64_t b) {
    if (cow_fd_ < 0) {
      cow_fd_ = ::open(cow_path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (cow_fd_ < 0) return MakeError(ErrorCode::kIoError, "cannot create " + cow_path_ + ": " + std::strerror(errno));
    }
    const uint64_t off = b * bs_;
    const size_t len = static_cast<size_t>(std::min<uint64_t>(bs_, size_ - off));
    std::vector<uint8_t> block(len);
    RETURN_IF_ERROR(read_(off, block));
    const uint64_t slot = uint64_t{slots_.size()} * bs_;
    if (::pwrite(cow_fd_, block.data(), len, static_cast<off_t>(slot)) != static_cast<ssize_t>(len))
      return MakeError(ErrorCode::kNoSpace, "cannot keep a block for the running snapshot in " + cow_path_);
    slots_[b] = slot;
    return OkStatus();
  }

  uint64_t size() const override { return size_; }
  bool point_in_time() const override { return true; }
  std::string Describe() const override { return cow_path_ + " (frozen view)"; }

  Status ReadAt(uint64_t offset, std::span<uint8_t> out) override {
    {
      std::lock_guard lock(mu_);
      if (failed_) return std::unexpected(failed_->WithContext("a block could not be kept for the snapshot"));
    }
    uint64_t pos = offset;
    const uint64_t end = std::min<uint64_t>(offset + out.size(), size_);
    if (end < offset + out.size())
      std::fill(out.begin() + static_cast<std::ptrdiff_t>(end - offset), out.end(), 0);
    while (pos < end) {
      const uint64_t b = pos / bs_;
      const uint64_t block_end = std::min<uint64_t>((b + 1) * bs_, size_);
      const uint64_t to = std::min(block_end, end);
      std::span<uint8_t> part = out.subspan(pos - offset, to - pos);
      std::lock_guard lock(mu_);
      if (auto it = slots_.find(b); it != slots_.end()) {
        ssize_t n = ::pread(cow_fd_, part.data(), part.size(), static_cast<off_t>(it->second + (pos - b * bs_)));
        if (n != static_cast<ssize_t>(part.size()))
          return MakeError(ErrorCode::kIoError, "cannot read a kept block from " + cow_path_);
      } else {
        RETURN_IF_ERROR(read_(pos, part));
        *bytes_read_ += part.size();
        // Read whole: writers need not keep it any more.
        if (pos == b * bs_ && to == block_end) done_[b] = 1;
      }
      pos = to;
    }
    return OkStatus();
  }

  Result<uint64_t> NextData(uint64_t offset) override {
    if (all_data_) return offset;
    std::lock_guard lock(mu_);
    ASSIGN_OR_RETURN(uint64_t live, live_->NextData(offset));
    // A kept block held data at the cut, whatever the live file has there now.
    auto kept = slots_.lower_bound(offset / bs_);
    uint64_t cow = kept == slots_.end() ? size_ : std::max(offset, kept->first * bs_);
    return std::min(live, cow);
  }

  Result<uint64_t> NextHole(uint64_t offset) override {
    if (all_data_) return size_;
    std::lock_guard lock(mu_);
    for (uint64_t pos = offset; pos < size_;) {
      ASSIGN_OR_RETURN(uint64_t hole, live_->NextHole(pos));
      if (hole >= size_) return size_;
      // A live hole, unless its block was kept (it held data at the cut).
      const uint64_t b = hole / bs_;
      if (!slots_.count(b)) return hole;
      pos = (b + 1) * bs_;
    }
    return size_;
  }

 private:
  std::shared_ptr<nbd::FileExport> live_;
  ReadFn read_;
  const bool all_data_;
  const uint64_t size_;
  const uint32_t bs_;
  const std::string cow_path_;
  std::atomic<uint64_t>* bytes_read_;
  std::mutex mu_;
  int cow_fd_ = -1;                     // guarded by mu_
  std::optional<Error> failed_;         // guarded by mu_
  std::vector<uint8_t> done_;           // guarded by mu_
  std::map<uint64_t, uint64_t> slots_;  // block → offset in the cow file; guarded by mu_
};

Result<std::shared_ptr<ManagedVolume>> ManagedVolume::Open(const std::string& path, uint32_t block_size,
                                                           Repository* repo) {
  ASSIGN_OR_RETURN(auto file, nbd::FileExport::Open(path));
  std::shared_ptr<ManagedVolume> v(new ManagedVolume(std::move(file), block_size, path));
  // Copy-aside files of snapshots that were running when the process stopped.
  std::error_code ec;
  const std::filesystem::path p(path);
  const std::string cow_prefix = std::filesystem::path(CowPathPrefix(path)).filename().string();
  for (const auto& entry : std::filesystem::directory_iterator(p.parent_path(), ec))
    if (entry.path().filename().string().rfind(cow_prefix, 0) == 0) std::filesystem::remove(entry.path(), ec);
  if (PathExists(LoadMapPath(path))) RETURN_IF_ERROR(v->OpenLoadMap(repo));
  RETURN_IF_ERROR(v->LoadCbt());
  // From now on the bitmap on disk is not to be trusted until a clean Close.
  RETURN_IF_ERROR(v->SaveCbt(false));
  return v;
}

ManagedVolume::ManagedVolume(std::shared_ptr<nbd::FileExport> file, uint32_t block_size, std::string path)
    : file_(std::move(file)),
      size_(file_->size()),
      block_size_(block_size),
      path_(std::move(path)),
      bits_((size_ + block_size - 1) / block_size, 0) {}

ManagedVolume::~ManagedVolume() = default;

Status ManagedVolume::LoadCbt() {
  auto raw = ReadWholeFile(CbtPath(path_));
  if (!raw) return OkStatus();  // none yet: untrusted, the next snapshot reads everything
  const auto& d = *raw;
  size_t pos = 0;
  auto take = [&](void* out, size_t n) {
    if (d.size() - pos < n) return false;
    std::memcpy(out, d.data() + pos, n);
    pos += n;
    return true;
  };
  char magic[4];
  uint32_t version;
  uint8_t clean, trusted;
  uint16_t base_len;
  uint64_t blocks;
  std::string base;
  if (!take(magic, 4) || std::memcmp(magic, kCbtMagic, 4) != 0 || !take(&version, 4) ||
      le32toh(version) != kCbtVersion || !take(&clean, 1) || !take(&trusted, 1) || !take(&base_len, 2))
    return OkStatus();  // unreadable: untrusted
  base.resize(le16toh(base_len));
  if (!take(base.data(), base.size()) || !take(&blocks, 8) || le64toh(blocks) != bits_.size()) return OkStatus();
  std::vector<uint8_t> packed((bits_.size() + 7) / 8);
  if (!take(packed.data(), packed.size())) return OkStatus();
  if (!clean || !trusted) return OkStatus();  // a crash (or an untrusted map) before
  for (size_t i = 0; i < bits_.size(); ++i) bits_[i] = (packed[i / 8] >> (i % 8)) & 1;
  base_ = std::move(base);
  trusted_ = true;
  return OkStatus();
}

Status ManagedVolume::SaveCbt(bool clean) {
  std::vector<uint8_t> data;
  {
    std::lock_guard lock(mu_);
    data = EncodeCbt(clean, trusted_, base_, bits_);
  }
  return WriteFileAtomic(CbtPath(path_), data, 0600);
}

bool ManagedVolume::cbt_trusted() const {
  std::lock_guard lock(mu_);
  return trusted_;
}

std::optional<ManagedVolume::Tracking> ManagedVolume::ChangedBlocks() const {
  std::lock_guard lock(mu_);
  // A base still pending is not completed in the catalog either: the plan falls back then.
  if (!trusted_ || base_.empty()) return std::nullopt;
  return Tracking{base_, bits_};
}

Result<uint64_t> ManagedVolume::NextData(uint64_t offset) {
  if (loading_) return std::min(offset, size_);
  return file_->NextData(offset);
}

Result<uint64_t> ManagedVolume::NextHole(uint64_t offset) {
  if (loading_) return size_;
  return file_->NextHole(offset);
}

Status ManagedVolume::Read(uint64_t offset, std::span<uint8_t> out) {
  if (loading_) RETURN_IF_ERROR(EnsureLoaded(offset, out.size(), false));
  return file_->Read(offset, out);
}

Status ManagedVolume::BeforeWrite(uint64_t offset, uint64_t length) {
  if (length == 0) return OkStatus();
  std::vector<std::shared_ptr<Freeze>> freezes;
  const uint64_t first = offset / block_size_, last = (offset + length - 1) / block_size_;
  {
    std::lock_guard lock(mu_);
    for (uint64_t b = first; b <= last && b < bits_.size(); ++b) bits_[b] = 1;
    for (const auto& [id, f] : freezes_) freezes.push_back(f);
  }
  for (const auto& f : freezes)
    for (uint64_t b = first; b <= last; ++b) RETURN_IF_ERROR(f->Preserve(b));
  return OkStatus();
}

Status ManagedVolume::Write(uint64_t offset, std::span<const uint8_t> data, bool fua) {
  std::shared_lock writes(barrier_);
  // Copy-aside first: it reads the content as of a pending cut (loading it if need be)
  // before this write's blocks are claimed.
  RETURN_IF_ERROR(BeforeWrite(offset, data.size()));
  std::vector<uint64_t> overwritten;
  if (loading_) RETURN_IF_ERROR(EnsureLoaded(offset, data.size(), true, &overwritten));
  Status st = file_->Write(offset, data, fua);
  auto done = WriteDone(overwritten, bool(st));
  if (!st) return st;
  return done;
}

Status ManagedVolume::Flush() { return file_->Flush(); }

Status ManagedVolume::Trim(uint64_t offset, uint64_t length) {
  std::shared_lock writes(barrier_);
  RETURN_IF_ERROR(BeforeWrite(offset, length));
  if (loading_) RETURN_IF_ERROR(EnsureLoaded(offset, length, true));
  return file_->Trim(offset, length);
}

Status ManagedVolume::WriteZeroes(uint64_t offset, uint64_t length, bool may_punch) {
  std::shared_lock writes(barrier_);
  RETURN_IF_ERROR(BeforeWrite(offset, length));
  if (loading_) RETURN_IF_ERROR(EnsureLoaded(offset, length, true));
  return file_->WriteZeroes(offset, length, may_punch);
}

Result<std::vector<nbd::Extent>> ManagedVolume::BlockStatus(uint64_t offset, uint64_t length) {
  // While loading, the file's holes say nothing about the snapshot's data: all data.
  if (loading_) return std::vector<nbd::Extent>{{length, 0}};
  return file_->BlockStatus(offset, length);
}

Result<PreparedSource> ManagedVolume::Cut(const std::string& snapshot_id, const std::string& parent_id) {
  std::lock_guard lock(mu_);
  if (closed_) return MakeError(ErrorCode::kConflict, "the volume is closing");
  PreparedSource out;
  if (trusted_ && !parent_id.empty() && base_ == parent_id) {
    auto bits = std::make_shared<std::vector<uint8_t>>(bits_);
    out.maybe_changed = [bits](uint64_t b) { return b >= bits->size() || (*bits)[b] != 0; };
  }
  cuts_[snapshot_id] = CutRecord{bits_, base_, trusted_};
  std::fill(bits_.begin(), bits_.end(), 0);
  base_ = snapshot_id;
  trusted_ = true;  // every write from now on is counted
  std::weak_ptr<ManagedVolume> weak = weak_from_this();
  auto read = [weak](uint64_t off, std::span<uint8_t> dest) -> Status {
    auto v = weak.lock();
    if (!v) return MakeError(ErrorCode::kConflict, "the volume was closed");
    return v->Read(off, dest);
  };
  auto freeze = std::make_shared<Freeze>(file_, read, loading_.load(), size_, block_size_,
                                         CowPath(path_, snapshot_id), &snapshot_bytes_read_);
  freezes_[snapshot_id] = freeze;
  out.source = freeze;
  out.on_done = [weak, snapshot_id](bool completed) {
    if (auto v = weak.lock()) v->EndFreeze(snapshot_id, completed);
  };
  return out;
}

void ManagedVolume::EndFreeze(const std::string& snapshot_id, bool completed) {
  std::lock_guard lock(mu_);
  freezes_.erase(snapshot_id);
  auto it = cuts_.find(snapshot_id);
  if (it == cuts_.end()) return;
  if (!completed) {
    if (base_ == snapshot_id) {
      // The bitmap goes back to what it was relative to, with the cut's blocks added back.
      base_ = it->second.prior_base;
      trusted_ = it->second.prior_trusted;
      for (size_t i = 0; i < bits_.size(); ++i) bits_[i] |= it->second.bits[i];
    } else {
      trusted_ = false;  // a later cut counted from this one: compare everything next time
    }
  }
  cuts_.erase(it);
}

Status ManagedVolume::Close() {
  {
    std::unique_lock writes(barrier_);
    std::lock_guard lock(mu_);
    if (closed_) return OkStatus();
    closed_ = true;
    if (!cuts_.empty()) trusted_ = false;  // snapshots still pending: do not vouch for the map
  }
  RETURN_IF_ERROR(file_->Flush());
  {
    std::lock_guard lock(load_mu_);
    if (load_fd_ >= 0) {
      RETURN_IF_ERROR(PersistLoadedLocked());
      ::close(load_fd_);
      load_fd_ = -1;
    }
  }
  return SaveCbt(true);
}

// ---- VolumeRegistry ----

Result<std::shared_ptr<ManagedVolume>> VolumeRegistry::Get(const std::string& volume_id, const std::string& path) {
  std::lock_guard lock(mu_);
  if (auto it = open_.find(volume_id); it != open_.end()) return it->second;
  if (stopping_) return MakeError(ErrorCode::kConflict, "the service is stopping");
  ASSIGN_OR_RETURN(auto v, ManagedVolume::Open(path, block_size_, repo_));
  open_[volume_id] = v;
  if (v->loading() && pool_ != nullptr) {
    copiers_.emplace_back([this, v, volume_id] {
      int reported = -1;
      auto st = v->Hydrate(pool_, &stopping_, [&](int percent) {
        if (percent / 5 != reported / 5 && hooks_.load_progress) hooks_.load_progress(volume_id, percent);
        reported = percent;
      });
      if (!st && !stopping_ && hooks_.load_failed) hooks_.load_failed(volume_id, st.error().message());
    });
  }
  return v;
}

std::optional<int> VolumeRegistry::LoadPercent(const std::string& volume_id) {
  std::lock_guard lock(mu_);
  auto it = open_.find(volume_id);
  if (it == open_.end() || !it->second->loading()) return std::nullopt;
  return it->second->load_percent();
}

void VolumeRegistry::CloseAll() {
  std::map<std::string, std::shared_ptr<ManagedVolume>> all;
  std::vector<std::thread> copiers;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    all.swap(open_);
    copiers.swap(copiers_);
  }
  for (auto& t : copiers) t.join();  // they stop at the next batch and keep what they loaded
  for (auto& [id, v] : all) (void)v->Close();
}

void VolumeRegistry::Forget(const std::string& volume_id) {
  std::lock_guard lock(mu_);
  open_.erase(volume_id);
}

Result<std::shared_ptr<void>> ManagedSourceProvider::HoldWrites(const std::vector<VolumeRecord>& volumes) {
  std::vector<std::shared_ptr<ManagedVolume>> managed;
  for (const auto& v : volumes) {
    if (!v.managed) continue;
    ASSIGN_OR_RETURN(auto mv, registry_->Get(v.volume_id, v.path));
    managed.push_back(std::move(mv));
  }
  return std::shared_ptr<void>(std::make_shared<CutGroup>(std::move(managed)));
}

Result<std::optional<PreparedSource>> ManagedSourceProvider::Prepare(const VolumeRecord& volume,
                                                                     const std::string& snapshot_id,
                                                                     const std::string& parent_id) {
  if (!volume.managed) return std::optional<PreparedSource>();
  ASSIGN_OR_RETURN(auto mv, registry_->Get(volume.volume_id, volume.path));
  ASSIGN_OR_RETURN(PreparedSource p, mv->Cut(snapshot_id, parent_id));
  return std::optional<PreparedSource>(std::move(p));
}

CutGroup::CutGroup(std::vector<std::shared_ptr<ManagedVolume>> volumes) : volumes_(std::move(volumes)) {
  std::sort(volumes_.begin(), volumes_.end());
  volumes_.erase(std::unique(volumes_.begin(), volumes_.end()), volumes_.end());
  for (auto& v : volumes_) v->LockWrites();
}

CutGroup::~CutGroup() {
  for (auto it = volumes_.rbegin(); it != volumes_.rend(); ++it) (*it)->UnlockWrites();
}

}  // namespace snapvol
