#include "cli/data_dir.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "core/file_util.h"
#include "core/hash.h"
#include "store/local_store.h"

namespace snapvol {
namespace {

std::string BootId() {
  auto raw = ReadWholeFile("/proc/sys/kernel/random/boot_id");
  if (!raw) return "unknown";
  std::string s(raw->begin(), raw->end());
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

std::string DataDir::RunnerId() { return "pid:" + std::to_string(::getpid()) + "@" + BootId(); }

bool DataDir::RunnerAlive(const std::string& runner) {
  if (runner.rfind("pid:", 0) != 0) return false;
  auto at = runner.find('@');
  if (at == std::string::npos || runner.substr(at + 1) != BootId()) return false;
  pid_t pid = static_cast<pid_t>(std::stol(runner.substr(4, at - 4)));
  if (::kill(pid, 0) != 0 && errno == ESRCH) return false;
  // A zombie is dead too.
  auto st = ReadWholeFile("/proc/" + std::to_string(pid) + "/stat");
  if (st) {
    std::string s(st->begin(), st->end());
    auto paren = s.rfind(')');
    if (paren != std::string::npos && paren + 2 < s.size() && s[paren + 2] == 'Z') return false;
  }
  return true;
}

Result<InitResult> DataDir::Init(const std::string& dir, const InitOptions& options) {
  RETURN_IF_ERROR(MakeDirs(dir, 0700));
  if (PathExists(dir + "/store/config"))
    return MakeError(ErrorCode::kAlreadyExists, dir + " is already initialised");
  InitResult result;
  RepositoryOptions ro;
  ro.block_size = options.block_size;
  ro.zstd_level = options.compression_level;
  RETURN_IF_ERROR(Repository::ValidateOptions(ro));  // before a key file is written
  if (options.encrypt) {
    Key256 key;
    RETURN_IF_ERROR(RandomBytes(key));
    result.key = key;
    result.key_path = dir + "/store.key";
    std::string hex = ToHex(key) + "\n";
    RETURN_IF_ERROR(WriteFileAtomic(result.key_path, AsBytes(hex), 0600));
    ro.master_key = key;
  }
  auto created = [&]() -> Status {
    ASSIGN_OR_RETURN(auto store, LocalStore::Open(dir + "/store"));
    ASSIGN_OR_RETURN(auto repo, Repository::Create(std::move(store), ro));
    ASSIGN_OR_RETURN(auto catalog, Catalog::Open(dir + "/catalog.db"));
    return OkStatus();
  }();
  if (!created) {
    if (!result.key_path.empty()) ::unlink(result.key_path.c_str());
    return std::unexpected(created.error());
  }
  return result;
}

Result<std::unique_ptr<DataDir>> DataDir::Open(const std::string& dir, bool reset_damaged_catalog) {
  if (!PathExists(dir + "/store/config"))
    return NotFound(dir + " is not an initialised snapvol data dir (run `snapvol init` first)");
  auto d = std::unique_ptr<DataDir>(new DataDir());
  d->dir_ = dir;
  ASSIGN_OR_RETURN(auto key, ReadKeyFile(dir + "/store.key"));
  RepositoryOptions ro;
  ro.master_key = key;
  ASSIGN_OR_RETURN(auto store, LocalStore::Open(dir + "/store"));
  ASSIGN_OR_RETURN(d->repo_, Repository::Open(std::move(store), ro));
  std::string db = dir + "/catalog.db";
  auto catalog = Catalog::Open(db);
  if (!catalog && reset_damaged_catalog && catalog.error().code() == ErrorCode::kCorruption) {
    std::string aside = db + ".damaged-" + std::to_string(Clock::Real()->NowMillis());
    if (::rename(db.c_str(), aside.c_str()) != 0)
      return std::unexpected(PosixError("move damaged catalog aside", errno));
    for (const char* suffix : {"-wal", "-shm"}) ::unlink((db + suffix).c_str());
    d->damaged_moved_to_ = aside;
    catalog = Catalog::Open(db);
  }
  if (!catalog) return std::unexpected(catalog.error());
  d->catalog_ = std::move(*catalog);
  d->pool_ = std::make_unique<ThreadPool>(0, /*max_queue=*/256);
  RETURN_IF_ERROR(d->RecoverInterrupted());
  return d;
}

Status DataDir::RecoverInterrupted() {
  ASSIGN_OR_RETURN(auto pending, catalog_->ListSnapshots({.state = SnapshotState::kPending}));
  for (const auto& s : pending) {
    if (RunnerAlive(s.runner)) continue;
    // The manifest root is published before the catalog says completed: if it is there, the
    // snapshot is whole.
    auto meta = repo_->GetManifest(s.snapshot_id);
    if (meta) {
      RETURN_IF_ERROR(catalog_->MarkCompleted(s.snapshot_id, meta->completed_time_ms,
                                              meta->stored_bytes, meta->changed_blocks,
                                              meta->block_count));
    } else if (meta.error().code() == ErrorCode::kNotFound) {
      RETURN_IF_ERROR(catalog_->MarkError(
          s.snapshot_id, "interrupted: the process taking it (" + s.runner + ") stopped"));
    } else {
      return std::unexpected(meta.error());
    }
    // Its writer is dead: the lease no longer protects anything, and GC may reclaim what the
    // interrupted run left.
    RETURN_IF_ERROR(repo_->RemoveLease(s.snapshot_id));
  }
  return OkStatus();
}

}  // namespace snapvol
