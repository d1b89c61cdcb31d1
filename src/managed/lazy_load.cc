// ManagedVolume's lazy restore (see managed_volume.h): the PATH.load map, loading the blocks a
// client touches (all of one request's blocks with one batch of reads), the background copy
// (Hydrate) and the order of data and marks that keeps a client's writes safe from both.
#include <endian.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/file_util.h"
#include "managed/managed_volume.h"
#include "managed/volume_files.h"

namespace snapvol {

namespace {
constexpr char kLoadMagic[4] = {'S', 'V', 'L', 'D'};
constexpr uint32_t kLoadVersion = 1;
constexpr uint64_t kPersistEveryBytes = 64ull << 20;
// The most a client request's blocks are fetched with at once (one Repository::ReadChunks).
constexpr uint64_t kFetchBytes = 32ull << 20;

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

Status ManagedVolume::FetchBlocksLocked(std::span<const uint64_t> blocks) {
  // Slot k of buf holds blocks[k], so neighbouring blocks lie side by side and a run of them
  // is written with one write.
  std::vector<uint8_t> buf(blocks.size() * block_size_);
  std::vector<uint64_t> wanted;
  std::vector<std::span<uint8_t>> outs;
  std::vector<size_t> slot_of;
  auto length_of = [&](uint64_t b) { return static_cast<size_t>(std::min<uint64_t>(block_size_, size_ - b * block_size_)); };
  for (size_t k = 0; k < blocks.size(); ++k)
    if (blocks[k] < reader_->block_count()) {  // past the snapshot's end: zeroes
      wanted.push_back(blocks[k]);
      outs.emplace_back(buf.data() + k * block_size_, length_of(blocks[k]));
      slot_of.push_back(k);
    }
  auto data = reader_->ReadBlocks(wanted, outs);
  if (!data) return std::unexpected(data.error().WithContext("loading " + path_ + " from " + load_snapshot_));
  std::vector<bool> has_data(blocks.size(), false);
  for (size_t i = 0; i < slot_of.size(); ++i) has_data[slot_of[i]] = (*data)[i];
  // Holes are not written: a block not loaded yet reads as zeroes in the sparse file.
  for (size_t k = 0; k < blocks.size();) {
    if (!has_data[k]) {
      ++k;
      continue;
    }
    size_t run = k + 1;
    while (run < blocks.size() && has_data[run] && blocks[run] == blocks[run - 1] + 1) ++run;
    const uint64_t from = blocks[k] * block_size_, to = blocks[run - 1] * block_size_ + length_of(blocks[run - 1]);
    RETURN_IF_ERROR(file_->Write(from, {buf.data() + k * block_size_, static_cast<size_t>(to - from)}, false));
    k = run;
  }
  for (uint64_t b : blocks) {
    load_[b] = 2;
    ++loaded_blocks_;
    unmarked_bytes_ += length_of(b);
  }
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
  std::vector<uint64_t> fetch;  // blocks to load from the snapshot, in order
  for (uint64_t b = first; b <= last; ++b) {
    const uint64_t start = b * block_size_, end = std::min<uint64_t>(start + block_size_, size_);
    if (load_[b] == 0 && overwritten != nullptr && offset <= start && offset + length >= end) {
      // The write replaces the whole block: no need to fetch it. It is marked once the write
      // is durable (WriteDone); until then the background copy leaves it alone.
      load_[b] = 3;
      overwritten->push_back(b);
      continue;
    }
    if (load_[b] == 0) fetch.push_back(b);
  }
  // A request's blocks are fetched together, in batches of at most kFetchBytes (a trim may
  // span the whole volume).
  const size_t per_fetch = std::max<size_t>(1, kFetchBytes / block_size_);
  for (size_t from = 0; from < fetch.size(); from += per_fetch) {
    std::span<const uint64_t> part(fetch.data() + from, std::min(per_fetch, fetch.size() - from));
    if (auto st = FetchBlocksLocked(part); !st) {
      undo();
      return st;
    }
  }
  bool unmarked = false;
  for (uint64_t b = first; b <= last; ++b)
    if (load_[b] == 2) unmarked = true;
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

}  // namespace snapvol
