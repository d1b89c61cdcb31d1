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

// ---- lazy restore ----

namespace {
constexpr char kLoadMagic[4] = {'S', 'V', 'L', 'D'};
constexpr uint32_t kLoadVersion = 1;
constexpr uint64_t kPersistEveryBytes = 64ull << 20;

std::vector<uint8_t> LoadHeader(const std::string& snapshot_id, uint64_t blocks) {
  std::vector<uint8_t> h(kLoadMagic, kLoadMagic + 4);
  auto put = [&](const void* p, size_t n) { h.insert(h.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n); };
  uint32_t v = htole32(kLoadVersion);
  put(&v, 4);
  uint16_t n = htole16(static_cast<uint16_t>(snapshot_id.size()));
  put(&n, 2);
  put(snapshot_id.data(), snapshot_id.size());
  uint64_t b = htole64(blocks);
  put(&b, 8);
  return h;
}
}  // namespace

// Restore() writes the snapshot here: blocks a client has loaded already are left alone.
class ManagedVolume::FillTarget : public BlockTarget {
 public:
  explicit FillTarget(ManagedVolume* v) : v_(v) {}
  uint64_t size() const override { return v_->size_; }
  std::string Describe() const override { return v_->path_; }
  // An extent of whole blocks (the restore writes runs of them): each run of blocks not
  // loaded yet is written with one write.
  Status WriteAt(uint64_t offset, std::span<const uint8_t> data) override {
    const uint64_t bs = v_->block_size_, first = offset / bs, end = offset + data.size();
    std::lock_guard lock(v_->load_mu_);
    // A block a client has written (or one loaded already) is never written over.
    auto loaded = [&](uint64_t k) { return v_->load_[k] != 0; };
    for (uint64_t b = first; b * bs < end;) {
      if (loaded(b)) {
        ++b;
        continue;
      }
      uint64_t run = b;
      while (run * bs < end && !loaded(run)) ++run;
      const uint64_t from = b * bs, to = std::min(run * bs, end);
      RETURN_IF_ERROR(v_->file_->Write(from, data.subspan(from - offset, to - from), false));
      for (uint64_t k = b; k < run; ++k) v_->load_[k] = 2;
      v_->loaded_blocks_ += run - b;
      v_->unmarked_bytes_ += to - from;
      b = run;
    }
    if (v_->unmarked_bytes_ >= kPersistEveryBytes) return v_->PersistLoadedLocked();
    return OkStatus();
  }
  Status Zero(uint64_t offset, uint64_t length) override {
    // A hole of the snapshot: the sparse file reads as zeroes there already.
    std::lock_guard lock(v_->load_mu_);
    for (uint64_t b = offset / v_->block_size_; b * v_->block_size_ < offset + length && b < v_->load_.size(); ++b)
      if (v_->load_[b] == 0) {
        v_->load_[b] = 2;
        ++v_->loaded_blocks_;
      }
    return OkStatus();
  }
  Status Commit() override {
    std::lock_guard lock(v_->load_mu_);
    RETURN_IF_ERROR(v_->PersistLoadedLocked());
    if (std::find(v_->load_.begin(), v_->load_.end(), 0) != v_->load_.end())
      return MakeError(ErrorCode::kInternal, "blocks left unloaded");
    // A write that replaces whole blocks may still be on its way: it marks them itself, and
    // the map goes only when nothing is in flight.
    if (std::find(v_->load_.begin(), v_->load_.end(), 3) != v_->load_.end()) return OkStatus();
    return v_->FinishLoadLocked();
  }

 private:
  ManagedVolume* v_;
};

Status ManagedVolume::CreateFromSnapshot(const std::string& path, uint64_t size, uint32_t block_size,
                                         const std::string& snapshot_id) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return MakeError(ErrorCode::kIoError, "cannot create " + path + ": " + std::strerror(errno));
  bool ok = ::ftruncate(fd, static_cast<off_t>(size)) == 0 && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) {
    ::unlink(path.c_str());
    return MakeError(ErrorCode::kNoSpace, "cannot size " + path);
  }
  const uint64_t blocks = (size + block_size - 1) / block_size;
  std::vector<uint8_t> map = LoadHeader(snapshot_id, blocks);
  map.resize(map.size() + blocks, 0);
  auto st = WriteFileAtomic(LoadMapPath(path), map, 0600);
  if (!st) ::unlink(path.c_str());
  return st;
}

Status ManagedVolume::OpenLoadMap(Repository* repo) {
  if (repo == nullptr) return MakeError(ErrorCode::kUnsupported, path_ + " is being restored but no store was given");
  ASSIGN_OR_RETURN(auto raw, ReadWholeFile(LoadMapPath(path_)));
  const uint64_t blocks = bits_.size();
  size_t pos = 0;
  auto take = [&](void* out, size_t n) {
    if (raw.size() - pos < n) return false;
    std::memcpy(out, raw.data() + pos, n);
    pos += n;
    return true;
  };
  char magic[4];
  uint32_t version;
  uint16_t id_len;
  std::string snapshot_id;
  uint64_t count;
  if (!take(magic, 4) || std::memcmp(magic, kLoadMagic, 4) != 0 || !take(&version, 4) ||
      le32toh(version) != kLoadVersion || !take(&id_len, 2))
    return Corruption(path_ + ".load is damaged");
  snapshot_id.resize(le16toh(id_len));
  if (!take(snapshot_id.data(), snapshot_id.size()) || !take(&count, 8) || le64toh(count) != blocks ||
      raw.size() - pos != blocks)
    return Corruption(path_ + ".load is damaged");
  // Only 0 (not loaded) and 1 (loaded) are ever written. Taken as one of the in-memory states
  // any other byte would skip its block (read as zeroes, then marked loaded) or wait forever.
  if (std::any_of(raw.begin() + static_cast<std::ptrdiff_t>(pos), raw.end(), [](uint8_t s) { return s > 1; }))
    return Corruption(path_ + ".load is damaged: a block state other than 0 or 1");
  ASSIGN_OR_RETURN(reader_, SnapshotBlockReader::Open(repo, snapshot_id));
  repo_ = repo;
  if (reader_->block_size() != block_size_ || reader_->volume_size() > size_)
    return Corruption(path_ + " does not match snapshot " + snapshot_id);
  load_header_ = pos;
  load_.assign(raw.begin() + static_cast<std::ptrdiff_t>(pos), raw.end());
  loaded_blocks_ = static_cast<uint64_t>(std::count(load_.begin(), load_.end(), 1));
  load_fd_ = ::open(LoadMapPath(path_).c_str(), O_RDWR | O_CLOEXEC);
  if (load_fd_ < 0) return MakeError(ErrorCode::kIoError, "cannot open " + LoadMapPath(path_));
  load_snapshot_ = snapshot_id;
  loading_ = true;
  return OkStatus();
}

Status ManagedVolume::MarkLoadedLocked(uint64_t block) {
  const uint8_t one = 1;
  if (::pwrite(load_fd_, &one, 1, static_cast<off_t>(load_header_ + block)) != 1)
    return MakeError(ErrorCode::kIoError, "cannot update " + LoadMapPath(path_));
  load_[block] = 1;
  return OkStatus();
}

Status ManagedVolume::PersistLoadedLocked() {
  if (unmarked_bytes_ == 0 && std::find(load_.begin(), load_.end(), 2) == load_.end()) return OkStatus();
  RETURN_IF_ERROR(file_->Flush());  // the data is durable before any mark says so
  for (uint64_t b = 0; b < load_.size(); ++b)
    if (load_[b] == 2) RETURN_IF_ERROR(MarkLoadedLocked(b));
  if (::fdatasync(load_fd_) != 0) return MakeError(ErrorCode::kIoError, "cannot flush " + LoadMapPath(path_));
  unmarked_bytes_ = 0;
  return OkStatus();
}

Status ManagedVolume::EnsureLoaded(uint64_t offset, uint64_t length, bool durable,
                                   std::vector<uint64_t>* overwritten) {
  if (length == 0) return OkStatus();
  std::unique_lock lock(load_mu_);
  if (!reader_) return OkStatus();  // finished meanwhile
  const uint64_t first = offset / block_size_, last = std::min<uint64_t>((offset + length - 1) / block_size_, load_.size() - 1);
  // Another write is replacing one of these blocks whole: wait until it is done (or undone).
  load_cv_.wait(lock, [&] {
    for (uint64_t b = first; b <= last; ++b)
      if (load_[b] == 3) return false;
    return true;
  });
  if (!reader_) return OkStatus();
  size_t claimed_before = overwritten ? overwritten->size() : 0;
  auto undo = [&] {
    if (!overwritten) return;
    for (size_t i = claimed_before; i < overwritten->size(); ++i) load_[(*overwritten)[i]] = 0;
    overwritten->resize(claimed_before);
    load_cv_.notify_all();
  };
  bool unmarked = false;
  std::vector<uint8_t> buf;
  for (uint64_t b = first; b <= last; ++b) {
    const uint64_t start = b * block_size_, end = std::min<uint64_t>(start + block_size_, size_);
    if (load_[b] == 0 && overwritten != nullptr && offset <= start && offset + length >= end) {
      // The write replaces the whole block: no need to fetch it. It is marked once the write
      // is durable (WriteDone); until then the background copy leaves it alone.
      load_[b] = 3;
      overwritten->push_back(b);
      continue;
    }
    if (load_[b] == 0) {
      const uint64_t off = b * block_size_;
      buf.resize(static_cast<size_t>(std::min<uint64_t>(block_size_, size_ - off)));
      bool in_snapshot = b < reader_->block_count();
      if (in_snapshot) {
        auto data = reader_->Read(b, buf);
        if (!data) {
          undo();
          return std::unexpected(data.error().WithContext("loading " + path_ + " from " + load_snapshot_));
        }
        if (*data) {
          auto written = file_->Write(off, buf, false);
          if (!written) {
            undo();
            return written;
          }
        }
      }
      load_[b] = 2;
      ++loaded_blocks_;
      unmarked_bytes_ += buf.size();
    }
    if (load_[b] == 2) unmarked = true;
  }
  // A client write must not land on a block whose load is not yet durable and marked: after
  // a crash the block would be loaded again, over the write.
  if (durable && unmarked) {
    auto persisted = PersistLoadedLocked();
    if (!persisted) {
      undo();
      return persisted;
    }
  }
  return OkStatus();
}

Status ManagedVolume::FinishLoadLocked() {
  ::close(load_fd_);
  load_fd_ = -1;
  if (::unlink(LoadMapPath(path_).c_str()) != 0 && errno != ENOENT)
    return MakeError(ErrorCode::kIoError, "cannot remove " + LoadMapPath(path_));
  reader_.reset();
  loading_ = false;
  return OkStatus();
}

Status ManagedVolume::WriteDone(const std::vector<uint64_t>& overwritten, bool written) {
  if (overwritten.empty()) return OkStatus();
  std::lock_guard lock(load_mu_);
  auto undo = [&] {
    for (uint64_t b : overwritten)
      if (load_[b] == 3) load_[b] = 0;  // load it from the snapshot after all
    load_cv_.notify_all();
  };
  if (!written) {
    undo();
    return OkStatus();
  }
  // The data durable, then the marks durable: only then may the write be acknowledged.
  Status st = file_->Flush();
  for (size_t i = 0; st && i < overwritten.size(); ++i) st = MarkLoadedLocked(overwritten[i]);
  if (st && ::fdatasync(load_fd_) != 0) st = MakeError(ErrorCode::kIoError, "cannot flush " + LoadMapPath(path_));
  if (!st) {
    undo();
    return st;
  }
  loaded_blocks_ += overwritten.size();
  load_cv_.notify_all();
  // The background copy may have finished everything else meanwhile.
  if (reader_ && load_fd_ >= 0 && std::all_of(load_.begin(), load_.end(), [](uint8_t x) { return x == 1; }))
    return FinishLoadLocked();
  return OkStatus();
}

int ManagedVolume::load_percent() const {
  if (!loading_) return 100;
  std::lock_guard lock(load_mu_);
  return load_.empty() ? 100 : static_cast<int>(loaded_blocks_ * 100 / load_.size());
}

Status ManagedVolume::Hydrate(ThreadPool* pool, const std::atomic<bool>* cancel,
                              const std::function<void(int)>& progress) {
  if (!loading_) return OkStatus();
  Repository* repo = nullptr;
  std::string snapshot_id;
  {
    std::lock_guard lock(load_mu_);
    repo = repo_;
    snapshot_id = load_snapshot_;
  }
  SnapshotEngine engine(repo, pool);
  FillTarget target(this);
  auto done = engine.Restore(snapshot_id, &target,
                             [&](const JobProgress&) {
                               if (progress) progress(load_percent());
                             },
                             cancel);
  if (!done) {
    std::lock_guard lock(load_mu_);
    (void)PersistLoadedLocked();  // keep what was loaded
    return std::unexpected(done.error());
  }
  if (progress) progress(100);
  return OkStatus();
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
