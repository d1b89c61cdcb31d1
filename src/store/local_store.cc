#include "store/local_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <functional>
#include <vector>

#include "core/hash.h"

namespace snapvol {
namespace {

std::string ParentOf(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

int64_t MtimeMillis(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000;
}

bool IsTemporaryName(const char* name) { return std::string_view(name).find(".tmp-") != std::string_view::npos; }

// Walks dir recursively; calls fn(relative key, stat) for every regular file.
Status Walk(const std::string& root, const std::string& rel,
            const std::function<void(const std::string&, const struct stat&, bool tmp)>& fn) {
  std::string dir = rel.empty() ? root : root + "/" + rel;
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    if (errno == ENOENT) return OkStatus();
    return std::unexpected(PosixError("list " + dir, errno));
  }
  std::unique_ptr<DIR, int (*)(DIR*)> guard(d, ::closedir);
  while (struct dirent* e = ::readdir(d)) {
    std::string_view name(e->d_name);
    if (name == "." || name == "..") continue;
    struct stat st {};
    if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;  // removed while listing
      return std::unexpected(PosixError("stat " + dir + "/" + e->d_name, errno));
    }
    std::string child = rel.empty() ? std::string(name) : rel + "/" + std::string(name);
    if (S_ISDIR(st.st_mode)) {
      RETURN_IF_ERROR(Walk(root, child, fn));
    } else if (S_ISREG(st.st_mode)) {
      fn(child, st, IsTemporaryName(e->d_name));
    }
  }
  return OkStatus();
}

class LocalBatch : public WriteBatch {
 public:
  explicit LocalBatch(LocalStore* store) : store_(store) {}
  ~LocalBatch() override {
    for (auto& p : pending_) ::unlink(p.tmp.c_str());
  }

  // One write of the whole object through the same temporary file as an ObjectWriter's.
  Status Add(const std::string& key, std::span<const uint8_t> data) override {
    ASSIGN_OR_RETURN(auto writer, NewObject(key, data.size()));
    RETURN_IF_ERROR(writer->WriteAt(0, data));
    return writer->Seal(data.size());
  }

  Result<std::unique_ptr<ObjectWriter>> NewObject(const std::string& key, uint64_t size_hint) override;

  // A sealed ObjectWriter's file: published at Commit like an added object.
  void AddWritten(std::string tmp, std::string path, uint64_t size) {
    std::lock_guard lock(mu_);
    pending_.push_back({std::move(tmp), std::move(path)});
    pending_bytes_ += size;
  }

  Status Commit() override {
    std::vector<Pending> items;
    {
      std::lock_guard lock(mu_);
      items.swap(pending_);
      pending_bytes_ = 0;
    }
    if (items.empty()) return OkStatus();
    Status st = store_->SyncFilesystem();  // data of every temporary file is durable
    size_t renamed = 0;
    for (; st && renamed < items.size(); ++renamed) {
      if (::rename(items[renamed].tmp.c_str(), items[renamed].path.c_str()) != 0) {
        st = std::unexpected(PosixError("rename " + items[renamed].path, errno));
        break;
      }
    }
    for (size_t j = renamed; j < items.size(); ++j) ::unlink(items[j].tmp.c_str());
    RETURN_IF_ERROR(st);
    return store_->SyncFilesystem();  // the renames are durable
  }

  uint64_t PendingBytes() const override {
    std::lock_guard lock(mu_);
    return pending_bytes_;
  }

 private:
  struct Pending {
    std::string tmp, path;
  };
  LocalStore* store_;
  mutable std::mutex mu_;
  std::vector<Pending> pending_;  // guarded by mu_
  uint64_t pending_bytes_ = 0;    // guarded by mu_
};

// Writes go straight to the object's temporary file (pwrite), from the thread that made the
// bytes: no copy of the whole object is held, and the kernel copies from a warm cache.
class LocalObjectWriter : public ObjectWriter {
 public:
  LocalObjectWriter(LocalBatch* batch, std::string key, std::string tmp, std::string path, UniqueFd fd)
      : batch_(batch), key_(std::move(key)), tmp_(std::move(tmp)), path_(std::move(path)), fd_(std::move(fd)) {}
  ~LocalObjectWriter() override {
    if (!sealed_) ::unlink(tmp_.c_str());
  }
  Status WriteAt(uint64_t offset, std::span<const uint8_t> data) override {
    auto st = PwriteFull(fd_.get(), data, offset);
    if (!st) return std::unexpected(st.error().WithContext("store " + key_));
    return OkStatus();
  }
  Status Seal(uint64_t size) override {
    struct stat st {};
    if (::fstat(fd_.get(), &st) != 0) return std::unexpected(PosixError("stat " + tmp_, errno));
    if (static_cast<uint64_t>(st.st_size) != size)
      return InvalidArgument("store " + key_ + ": sealed at " + std::to_string(size) + " bytes, but " +
                             std::to_string(st.st_size) + " were written");
    // Start writeback now, without waiting, so the flush at Commit finds little left to do.
    ::sync_file_range(fd_.get(), 0, 0, SYNC_FILE_RANGE_WRITE);
    fd_ = UniqueFd();
    sealed_ = true;
    batch_->AddWritten(tmp_, path_, size);
    return OkStatus();
  }

 private:
  LocalBatch* batch_;
  std::string key_, tmp_, path_;
  UniqueFd fd_;
  bool sealed_ = false;
};

Result<std::unique_ptr<ObjectWriter>> LocalBatch::NewObject(const std::string& key, uint64_t /*size_hint*/) {
  if (!IsValidObjectKey(key)) return InvalidArgument("invalid object key '" + key + "'");
  std::string path = store_->root() + "/" + key;
  RETURN_IF_ERROR(store_->EnsureParentDir(path));
  ASSIGN_OR_RETURN(std::string tmp, store_->TempPathFor(path));
  ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600));
  return std::unique_ptr<ObjectWriter>(new LocalObjectWriter(this, key, std::move(tmp), std::move(path), std::move(fd)));
}

}  // namespace

Result<std::unique_ptr<LocalStore>> LocalStore::Open(const std::string& root) {
  RETURN_IF_ERROR(MakeDirs(root));
  ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(root, O_RDONLY | O_DIRECTORY));
  return std::unique_ptr<LocalStore>(new LocalStore(root, std::move(fd)));
}

Result<std::string> LocalStore::PathFor(const std::string& key) const {
  if (!IsValidObjectKey(key)) return InvalidArgument("invalid object key '" + key + "'");
  return root_ + "/" + key;
}

Status LocalStore::EnsureParentDir(const std::string& path) {
  std::string dir = ParentOf(path);
  {
    std::lock_guard lock(dirs_mu_);
    if (known_dirs_.count(dir)) return OkStatus();
  }
  bool existed = PathExists(dir);
  RETURN_IF_ERROR(MakeDirs(dir));
  if (!existed) {
    // Make the new directory entries durable up to the store root.
    for (std::string d = dir; d.size() > root_.size(); d = ParentOf(d)) RETURN_IF_ERROR(FsyncDir(ParentOf(d)));
  }
  std::lock_guard lock(dirs_mu_);
  known_dirs_.insert(dir);
  return OkStatus();
}

Result<std::string> LocalStore::TempPathFor(const std::string& path) {
  std::array<uint8_t, 8> rnd{};
  RETURN_IF_ERROR(RandomBytes(rnd));
  return path + ".tmp-" + ToHex(rnd);
}

Status LocalStore::SyncFilesystem() {
  if (::syncfs(root_fd_.get()) != 0) return std::unexpected(PosixError("syncfs " + root_, errno));
  return OkStatus();
}

Status LocalStore::Put(const std::string& key, std::span<const uint8_t> data) {
  ASSIGN_OR_RETURN(std::string path, PathFor(key));
  RETURN_IF_ERROR(EnsureParentDir(path));
  ASSIGN_OR_RETURN(std::string tmp, TempPathFor(path));
  {
    ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600));
    Status st = WriteFull(fd.get(), data);
    if (st) st = FsyncFd(fd.get(), tmp);
    if (!st) {
      ::unlink(tmp.c_str());
      return std::unexpected(st.error().WithContext("store " + key));
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return std::unexpected(PosixError("rename " + path, err));
  }
  return FsyncDir(ParentOf(path));
}

Result<std::vector<uint8_t>> LocalStore::Get(const std::string& key) {
  ASSIGN_OR_RETURN(std::string path, PathFor(key));
  auto data = ReadWholeFile(path);
  if (!data && data.error().code() == ErrorCode::kNotFound)
    return NotFound("object " + key + " not found in " + Describe());
  return data;
}

Result<std::vector<uint8_t>> LocalStore::GetRange(const std::string& key, uint64_t offset, uint64_t length) {
  ASSIGN_OR_RETURN(std::string path, PathFor(key));
  auto fd = OpenFile(path, O_RDONLY);
  if (!fd) {
    if (fd.error().code() == ErrorCode::kNotFound) return NotFound("object " + key + " not found in " + Describe());
    return std::unexpected(fd.error());
  }
  std::vector<uint8_t> out(length);
  size_t used = 0;
  while (used < length) {
    ssize_t n = ::pread(fd->get(), out.data() + used, length - used, static_cast<off_t>(offset + used));
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(PosixError("read " + path, errno));
    }
    if (n == 0)
      return Corruption("object " + key + " ends before the " + std::to_string(length) + " bytes asked for at offset " +
                        std::to_string(offset));
    used += static_cast<size_t>(n);
  }
  return out;
}

Result<bool> LocalStore::Exists(const std::string& key) {
  ASSIGN_OR_RETURN(std::string path, PathFor(key));
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) return true;
  if (errno == ENOENT) return false;
  return std::unexpected(PosixError("stat " + path, errno));
}

Result<uint64_t> LocalStore::Size(const std::string& key) {
  ASSIGN_OR_RETURN(std::string path, PathFor(key));
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) return static_cast<uint64_t>(st.st_size);
  if (errno == ENOENT) return NotFound("object " + key + " not found in " + Describe());
  return std::unexpected(PosixError("stat " + path, errno));
}

Status LocalStore::Delete(const std::string& key) {
  ASSIGN_OR_RETURN(std::string path, PathFor(key));
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    return std::unexpected(PosixError("delete " + path, errno));
  return OkStatus();
}

Result<std::vector<ObjectInfo>> LocalStore::List(const std::string& prefix) {
  // Walk from the deepest directory that the prefix names completely.
  std::string start_dir;
  auto slash = prefix.rfind('/');
  if (slash != std::string::npos) start_dir = prefix.substr(0, slash);
  std::vector<ObjectInfo> out;
  RETURN_IF_ERROR(Walk(root_, start_dir, [&](const std::string& key, const struct stat& st, bool tmp) {
    if (tmp || key.compare(0, prefix.size(), prefix) != 0) return;
    out.push_back({key, static_cast<uint64_t>(st.st_size), MtimeMillis(st)});
  }));
  return out;
}

Status LocalStore::Touch(const std::string& key) {
  ASSIGN_OR_RETURN(std::string path, PathFor(key));
  if (::utimensat(AT_FDCWD, path.c_str(), nullptr, 0) != 0) {
    if (errno == ENOENT) return NotFound("object " + key + " not found");
    return std::unexpected(PosixError("touch " + path, errno));
  }
  return OkStatus();
}

std::unique_ptr<WriteBatch> LocalStore::NewBatch() { return std::make_unique<LocalBatch>(this); }

Result<uint64_t> LocalStore::RemoveStaleTemporaries(int64_t older_than_ms) {
  std::vector<std::string> stale;
  RETURN_IF_ERROR(Walk(root_, "", [&](const std::string& key, const struct stat& st, bool tmp) {
    if (tmp && MtimeMillis(st) < older_than_ms) stale.push_back(key);
  }));
  uint64_t removed = 0;
  for (const auto& k : stale)
    if (::unlink((root_ + "/" + k).c_str()) == 0) ++removed;
  return removed;
}

}  // namespace snapvol
