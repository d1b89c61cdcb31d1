#include "cli/data_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "catalog/catalog_copy.h"
#include "core/file_util.h"
#include "core/hash.h"
#include "core/process_holder.h"
#include "store/counting_store.h"
#include "store/local_store.h"

namespace snapvol {
namespace {

using json = nlohmann::json;

constexpr char kStoreJson[] = "/store.json";
constexpr char kCatalogDb[] = "/catalog.db";
// Opening fails fast on an unreachable endpoint: nothing is in flight yet, and a person or
// a service manager is waiting for the answer. Requests later get the full retry window.
constexpr int64_t kOpenProbeWindowMs = 5000;
constexpr size_t kS3PoolThreads = 8;

Result<S3Config> BuildS3Config(const S3StoreOptions& o) {
  S3Config c;
  RETURN_IF_ERROR(ParseS3Url(o.url, &c));
  if (o.region.empty()) return InvalidArgument("--s3-region must not be empty");
  c.region = o.region;
  c.allow_insecure_http = o.allow_insecure_http;
  ASSIGN_OR_RETURN(c.endpoint, NormaliseS3Endpoint(o.endpoint.empty() ? AwsS3Endpoint(o.region) : o.endpoint,
                                                   o.allow_insecure_http));
  std::string style = o.url_style.empty() ? (o.endpoint.empty() ? "virtual" : "path") : o.url_style;
  if (style != "path" && style != "virtual")
    return InvalidArgument("S3 URL style must be 'path' or 'virtual', not '" + style + "'");
  c.url_style = style == "path" ? S3UrlStyle::kPath : S3UrlStyle::kVirtualHosted;
  if (!o.ca_file.empty() && !PathExists(o.ca_file))
    return InvalidArgument("CA file " + o.ca_file + " does not exist");
  c.ca_file = o.ca_file;
  return c;
}

json S3ConfigJson(const S3Config& c, const std::string& profile, const S3Credentials* saved) {
  json j = {{"type", "s3"},
            {"url", "s3://" + c.bucket + (c.prefix.empty() ? "" : "/" + c.prefix)},
            {"endpoint", c.endpoint},
            {"region", c.region},
            {"url_style", c.url_style == S3UrlStyle::kPath ? "path" : "virtual"},
            {"allow_insecure_http", c.allow_insecure_http},
            {"ca_file", c.ca_file},
            {"profile", profile},
            {"retry_window_s", c.retry_window_ms / 1000},
            {"parallel_uploads", c.max_parallel_uploads}};
  if (saved) {
    j["access_key_id"] = saved->access_key_id;
    j["secret_access_key"] = saved->secret_access_key;
    if (!saved->session_token.empty()) j["session_token"] = saved->session_token;
  }
  return j;
}

// Opens the S3 store and checks, once, that it answers, takes the keys, has the bucket and
// keeps a clock close to ours: each problem is its own error here rather than a puzzling one
// from the middle of a job.
Result<std::unique_ptr<S3Store>> OpenCheckedS3(const S3Config& c) {
  ASSIGN_OR_RETURN(auto store, S3Store::Open(c));
  ASSIGN_OR_RETURN(S3ProbeResult probe, store->Probe(kOpenProbeWindowMs));
  if (std::abs(probe.skew_ms) > kMaxS3ClockSkewMs)
    return MakeError(ErrorCode::kConflict,
                     "this machine's clock differs from the S3 server's by " +
                         std::to_string(probe.skew_ms / 1000) +
                         " s; garbage collection relies on them agreeing within minutes: fix NTP");
  return store;
}

Status ConfigIsOurs(Repository* repo) {
  ASSIGN_OR_RETURN(auto raw, repo->store()->Get(kConfigKey));
  json j = json::parse(raw.begin(), raw.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.value("store_id", "") == repo->store_id()) return OkStatus();
  return Conflict("another host created a snapshot store at " + repo->store()->Describe() +
                  " at the same moment; run init again to join it");
}

std::string OctalMode(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

// Sets `path`'s mode to `want` (it has `old` now) with `apply`, and counts it. An entry removed
// meanwhile (ENOENT) is no longer ours to tighten.
Status Tighten(const std::string& path, mode_t old, mode_t want, PrivacyReport* report,
               const std::function<int(mode_t)>& apply) {
  if ((old & 07777) == want) return OkStatus();
  if (apply(want) != 0) {
    int err = errno;
    if (err == ENOENT) return OkStatus();
    return Conflict("cannot make " + path + " private to its owner (mode " + OctalMode(old) +
                    ", chmod: " + std::strerror(err) + "); other users may read it: fix its owner "
                    "or mode, then start again");
  }
  if (report->tightened++ == 0) report->example = path + " was " + OctalMode(old);
  return OkStatus();
}

// Changes the mode of the inode open as `fd`, an O_PATH descriptor (fchmod refuses those):
// through /proc/self/fd/N, which resolves to that inode whatever has become of its name.
int ChmodOpenPath(int fd, mode_t mode) {
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  return ::fchmodat(AT_FDCWD, link.c_str(), mode, 0);
}

// The walk of one data dir: whose it is, and what it changed.
struct PrivacyWalk {
  uid_t owner;
  PrivacyReport* report;
};

Status TightenChildren(int dir_fd, const std::string& path, const PrivacyWalk& walk);

// Makes the entry `name` of the directory open as `dir_fd` private. Only directories and
// regular files are changed; symbolic links, sockets, fifos and devices are left alone (they
// are not opened either). The entry is opened (O_PATH, without following a link) and its mode
// changed through that descriptor, after checking it is still what fstatat saw: an entry
// swapped for a symbolic link in between is never followed, even by root.
Status TightenEntry(int dir_fd, const std::string& name, const std::string& path, const PrivacyWalk& walk) {
  struct stat seen {}, st {};
  UniqueFd fd;
  for (int attempt = 0;; ++attempt) {
    if (::fstatat(dir_fd, name.c_str(), &seen, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) return OkStatus();  // removed meanwhile (a temporary file)
      return std::unexpected(PosixError("stat " + path, errno));
    }
    if (!S_ISDIR(seen.st_mode) && !S_ISREG(seen.st_mode)) return OkStatus();
    int raw = ::openat(dir_fd, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (raw < 0) {
      if (errno == ENOENT) return OkStatus();
      return std::unexpected(PosixError("open " + path, errno));
    }
    fd = UniqueFd(raw);
    if (::fstat(fd.get(), &st) != 0) return std::unexpected(PosixError("stat " + path, errno));
    if (st.st_dev == seen.st_dev && st.st_ino == seen.st_ino &&
        (st.st_mode & S_IFMT) == (seen.st_mode & S_IFMT)) {
      break;
    }
    // Replaced between the two calls (only the owner can: the directory is 0700 by now).
    if (attempt == 2)
      return Conflict(path + " kept changing while snapvol made the data dir private; start again");
  }
  // Root can change any mode: an entry that is not the data dir owner's (planted, or made by
  // another user while the directory was open) is refused rather than adopted.
  if (st.st_uid != walk.owner)
    return Conflict(path + " belongs to uid " + std::to_string(st.st_uid) + ", not to the data dir's owner (uid " +
                    std::to_string(walk.owner) + "); snapvol does not change or use another user's files in "
                    "its data dir: remove it or chown it to uid " + std::to_string(walk.owner) +
                    ", then start again");
  if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
    // Another name for the same file may be outside the data dir (e.g. a system file): its
    // mode is not ours to change. Under the 0700 data dir this name reaches nobody else.
    if (walk.report->linked++ == 0) walk.report->linked_example = path;
    return OkStatus();
  }
  if (!S_ISDIR(st.st_mode)) {
    return Tighten(path, st.st_mode, st.st_mode & 0700, walk.report,
                   [&fd](mode_t m) { return ChmodOpenPath(fd.get(), m); });
  }
  // A directory is tightened before its entries are read, so from then on no other user can
  // add or swap an entry in it.
  RETURN_IF_ERROR(Tighten(path, st.st_mode, 0700, walk.report, [&fd](mode_t m) { return ChmodOpenPath(fd.get(), m); }));
  int list = ::openat(fd.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (list < 0) return std::unexpected(PosixError("open " + path, errno));
  UniqueFd owned(list);
  return TightenChildren(owned.get(), path, walk);
}

// Tightens every entry of the directory open (readable) as `dir_fd`.
Status TightenChildren(int dir_fd, const std::string& path, const PrivacyWalk& walk) {
  int list_fd = ::dup(dir_fd);
  if (list_fd < 0) return std::unexpected(PosixError("dup", errno));
  DIR* listing = ::fdopendir(list_fd);
  if (!listing) {
    ::close(list_fd);
    return std::unexpected(PosixError("read directory " + path, errno));
  }
  std::unique_ptr<DIR, int (*)(DIR*)> closer(listing, ::closedir);
  while (true) {
    errno = 0;
    struct dirent* e = ::readdir(listing);
    if (!e) {
      if (errno != 0) return std::unexpected(PosixError("read directory " + path, errno));
      return OkStatus();
    }
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    RETURN_IF_ERROR(TightenEntry(dir_fd, name, path + "/" + name, walk));
  }
}

// Unauthorized unless this process may own `dir` (its owner, or root).
Status CheckOwner(const std::string& dir, const struct stat& st) {
  uid_t me = ::geteuid();
  if (me == 0 || st.st_uid == me) return OkStatus();
  return MakeError(ErrorCode::kUnauthorized,
                   dir + " belongs to uid " + std::to_string(st.st_uid) + " and is private to it; run snapvol as "
                         "that user (this process runs as uid " + std::to_string(me) + ")");
}

}  // namespace

std::string PrivacyReport::Message(const std::string& dir) const {
  std::string m;
  if (tightened)
    m = "tightened " + std::to_string(tightened) + (tightened == 1 ? " path" : " paths") + " under " + dir +
        " to owner-only (e.g. " + example + ")";
  if (linked) {
    if (!m.empty()) m += "; ";
    m += "left " + std::to_string(linked) + (linked == 1 ? " file" : " files") +
         " with other hard links as they were (e.g. " + linked_example + ")";
  }
  return m;
}

Result<PrivacyReport> DataDir::MakePrivate(const std::string& dir) {
  RETURN_IF_ERROR(MakeDirs(dir, 0700));
  // The owner is checked on the directory opened, not on a name that may change meanwhile.
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    struct stat named {};  // only to say whose it is
    if (err == EACCES && ::stat(dir.c_str(), &named) == 0) RETURN_IF_ERROR(CheckOwner(dir, named));
    return std::unexpected(PosixError("open " + dir, err));
  }
  UniqueFd owned(fd);
  struct stat st {};
  if (::fstat(owned.get(), &st) != 0) return std::unexpected(PosixError("stat " + dir, errno));
  RETURN_IF_ERROR(CheckOwner(dir, st));
  // Once dir is 0700 nothing under it is reachable by other users (every path through it
  // needs search permission on it), whatever the entries' own modes: a store with millions
  // of objects is not walked at every start.
  PrivacyReport report;
  if ((st.st_mode & 077) == 0) return report;
  // Modes are changed through /proc/self/fd (see ChmodOpenPath).
  if (::access("/proc/self/fd", X_OK) != 0)
    return Conflict("cannot make " + dir + " private: /proc is not mounted (snapvol changes modes through "
                    "/proc/self/fd, never through a name that could be swapped for a link)");
  RETURN_IF_ERROR(Tighten(dir, st.st_mode, 0700, &report, [&owned](mode_t m) { return ::fchmod(owned.get(), m); }));
  RETURN_IF_ERROR(TightenChildren(owned.get(), dir, PrivacyWalk{st.st_uid, &report}));
  return report;
}

std::string DataDir::RunnerId() const { return runners_->RunnerId(::getpid()); }

bool DataDir::RunnerAlive(const std::string& runner) const { return runners_->Alive(runner); }

bool DataDir::IsInitialised(const std::string& dir) {
  return PathExists(dir + "/store/config") || PathExists(dir + kStoreJson);
}

Result<std::optional<S3Config>> DataDir::ReadS3Config(const std::string& dir) {
  const std::string path = dir + kStoreJson;
  if (!PathExists(path)) return std::optional<S3Config>();
  ASSIGN_OR_RETURN(auto raw, ReadWholeFile(path));
  json j = json::parse(raw.begin(), raw.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || j.value("type", "") != "s3")
    return Corruption(path + " is not a store config this snapvol understands");
  S3StoreOptions o;
  S3Credentials saved;
  try {
    o.url = j.at("url").get<std::string>();
    o.endpoint = j.at("endpoint").get<std::string>();
    o.region = j.value("region", "us-east-1");
    o.url_style = j.value("url_style", "path");
    o.allow_insecure_http = j.value("allow_insecure_http", false);
    o.ca_file = j.value("ca_file", "");
    o.profile = j.value("profile", "");
    saved.access_key_id = j.value("access_key_id", "");
    saved.secret_access_key = j.value("secret_access_key", "");
    saved.session_token = j.value("session_token", "");
  } catch (const json::exception& e) {
    return Corruption(path + " is missing a field: " + e.what());
  }
  saved.source = path;
  auto built = BuildS3Config(o);
  if (!built) return std::unexpected(built.error().WithContext(path));
  S3Config c = std::move(*built);
  c.retry_window_ms = j.value("retry_window_s", int64_t{60}) * 1000;
  c.max_parallel_uploads = j.value("parallel_uploads", 32);
  ASSIGN_OR_RETURN(c.credentials, ResolveS3Credentials(saved, o.profile));
  return std::optional<S3Config>(std::move(c));
}

Result<InitResult> DataDir::Init(const std::string& dir, const InitOptions& options) {
  if (IsInitialised(dir)) return MakeError(ErrorCode::kAlreadyExists, dir + " is already initialised");
  InitResult result;
  RepositoryOptions ro;
  ro.block_size = options.block_size;
  ro.cache_dir = dir + "/cache";
  ro.zstd_level = options.compression_level;
  ro.format = options.store_format;
  if (options.pack_size_mib) {
    if (options.store_format != 2) return InvalidArgument("--pack-size applies to --store-format 2 only");
    ro.pack_size = options.pack_size_mib << 20;
  } else if (options.s3) {
    ro.pack_size = kDefaultS3PackSize;
  }
  RETURN_IF_ERROR(Repository::ValidateOptions(ro));  // before a key file is written
  // A PostgreSQL catalog is reached (and given its schema) before anything is written
  // locally: a wrong password or an unreachable server leaves no half-made data dir.
  Result<std::unique_ptr<Catalog>> pg_catalog = std::unique_ptr<Catalog>();
  if (!options.catalog_url.empty()) {
    if (!Catalog::IsPostgresUrl(options.catalog_url))
      return InvalidArgument("--catalog takes a postgresql:// (or postgres://) URL, not '" +
                             RedactCatalogUrl(options.catalog_url) + "'");
    pg_catalog = OpenCatalog(options.catalog_url);
    if (!pg_catalog) return std::unexpected(pg_catalog.error());
  }
  // The S3 settings are checked, and the bucket reached, before anything is written locally.
  std::optional<S3Config> s3;
  if (options.s3) {
    ASSIGN_OR_RETURN(s3, BuildS3Config(*options.s3));
    ASSIGN_OR_RETURN(s3->credentials, ResolveS3Credentials({}, options.s3->profile));
  }
  std::unique_ptr<ObjectStore> store;
  if (s3) {
    ASSIGN_OR_RETURN(store, OpenCheckedS3(*s3));
    RETURN_IF_ERROR(MakeDirs(dir, 0700));
  } else {
    RETURN_IF_ERROR(MakeDirs(dir, 0700));
    ASSIGN_OR_RETURN(store, LocalStore::Open(dir + "/store"));
  }
  // The directory may have existed (made by hand, or by a package) with looser modes.
  if (auto made = MakePrivate(dir); !made) return std::unexpected(made.error());
  if (auto host = LoadOrCreateHostId(dir); !host) return std::unexpected(host.error());
  // Before the store's config (local: store/config), which makes the data dir look
  // initialised: a crash in between must not leave one that opens a fresh SQLite catalog.
  // Until then the file alone means nothing, and a new init replaces it. 0600: the URL may
  // hold a password, and only this file keeps it.
  if (!options.catalog_url.empty()) RETURN_IF_ERROR(WriteCatalogUrl(dir, options.catalog_url));
  result.store = store->Describe();
  ASSIGN_OR_RETURN(bool exists, store->Exists(kConfigKey));
  if (exists) {
    // Another host made this store: share it. Its settings are the store's, not ours.
    if (options.encrypt)
      return InvalidArgument(result.store + " already holds a snapshot store; --encrypt applies only when creating one "
                             "(to join an encrypted store, copy its store.key into " + dir + " first)");
    ASSIGN_OR_RETURN(ro.master_key, ReadKeyFile(dir + "/store.key"));
    ASSIGN_OR_RETURN(auto repo, Repository::Open(std::move(store), ro));
    if (options.block_size_given && repo->block_size() != options.block_size)
      return InvalidArgument(result.store + " already holds a store with block size " +
                             std::to_string(repo->block_size()) + "; --block-size cannot change it");
    result.joined = true;
    result.block_size = repo->block_size();
    result.encrypted = repo->encrypted();
  } else {
    if (options.encrypt) {
      Key256 key;
      RETURN_IF_ERROR(RandomBytes(key));
      result.key = key;
      result.key_path = dir + "/store.key";
      std::string hex = ToHex(key) + "\n";
      RETURN_IF_ERROR(WriteFileAtomic(result.key_path, AsBytes(hex), 0600));
      ro.master_key = key;
    }
    auto repo = Repository::Create(std::move(store), ro);
    if (repo && s3) {
      // A shared bucket has no create-if-absent here: two hosts creating the same store at
      // once both write the config and the last one wins. Reading it back tells the loser.
      Status ours = ConfigIsOurs(repo->get());
      if (!ours) repo = std::unexpected(ours.error());
    }
    if (!repo) {
      if (!result.key_path.empty()) ::unlink(result.key_path.c_str());
      return std::unexpected(repo.error());
    }
    result.block_size = options.block_size;
    result.encrypted = options.encrypt;
  }
  auto catalog = *pg_catalog ? std::move(pg_catalog) : OpenCatalog(dir + kCatalogDb);
  if (!catalog) {
    if (!result.key_path.empty()) ::unlink(result.key_path.c_str());
    return std::unexpected(catalog.error());
  }
  if (s3) {
    // Last: until store.json exists the data dir does not open, so a failed init leaves
    // nothing that looks initialised. Mode 0600: it may hold keys.
    S3Credentials* saved = options.s3->save_keys ? &s3->credentials : nullptr;
    std::string text = S3ConfigJson(*s3, options.s3->profile, saved).dump(2) + "\n";
    RETURN_IF_ERROR(WriteFileAtomic(dir + kStoreJson, AsBytes(text), 0600));
  }
  return result;
}

Result<std::unique_ptr<DataDir>> DataDir::Open(const std::string& dir, bool reset_damaged_catalog,
                                               int64_t host_timeout_ms) {
  if (host_timeout_ms < 1) return InvalidArgument("the host timeout must be at least 1 ms");
  struct stat root {};
  const bool exists = ::stat(dir.c_str(), &root) == 0;
  if (exists) RETURN_IF_ERROR(CheckOwner(dir, root));
  ASSIGN_OR_RETURN(std::optional<S3Config> s3, ReadS3Config(dir));
  // Checked before the walk below: a directory that is not a data dir is left as it is.
  if (!s3 && !PathExists(dir + "/store/config"))
    return NotFound(dir + " is not an initialised snapvol data dir (run `snapvol init` first)");
  if (exists) {
    ASSIGN_OR_RETURN(PrivacyReport report, MakePrivate(dir));  // walks only a loose dir
    if (std::string m = report.Message(dir); !m.empty()) std::fprintf(stderr, "snapvol: %s\n", m.c_str());
  }
  auto d = std::unique_ptr<DataDir>(new DataDir());
  d->dir_ = dir;
  ASSIGN_OR_RETURN(d->lock_, LockShared(dir));
  ASSIGN_OR_RETURN(auto key, ReadKeyFile(dir + "/store.key"));
  RepositoryOptions ro;
  ro.master_key = key;
  ro.cache_dir = dir + "/cache";  // format 2's index cache (a format-1 store makes none)
  std::unique_ptr<ObjectStore> store;
  if (s3) {
    ASSIGN_OR_RETURN(store, OpenCheckedS3(*s3));
  } else {
    ASSIGN_OR_RETURN(store, LocalStore::Open(dir + "/store"));
  }
  // Failed store operations show in the metrics (snapvol_store_errors_total).
  ASSIGN_OR_RETURN(d->repo_, Repository::Open(NewCountingStore(std::move(store)), ro));
  ASSIGN_OR_RETURN(std::string db, CatalogLocation(dir));
  d->catalog_is_postgres_ = Catalog::IsPostgresUrl(db);
  auto catalog = OpenCatalog(db);
  if (!catalog && reset_damaged_catalog && !d->catalog_is_postgres_ &&
      catalog.error().code() == ErrorCode::kCorruption) {
    std::string aside = db + ".damaged-" + std::to_string(Clock::Real()->NowMillis());
    if (::rename(db.c_str(), aside.c_str()) != 0)
      return std::unexpected(PosixError("move damaged catalog aside", errno));
    for (const char* suffix : {"-wal", "-shm"}) ::unlink((db + suffix).c_str());
    d->damaged_moved_to_ = aside;
    catalog = Catalog::Open(db);
  }
  if (!catalog) return std::unexpected(catalog.error());
  d->catalog_ = std::move(*catalog);
  ASSIGN_OR_RETURN(d->host_id_, LoadOrCreateHostId(dir));
  // What this process creates is this host's; rows made before hosts owned anything (a
  // one-host catalog, or a PostgreSQL one made from it by migrate-to) become this host's now.
  d->catalog_->SetLocalHost(d->host_id_);
  if (auto claimed = d->catalog_->ClaimOwnerless(d->host_id_); !claimed) return std::unexpected(claimed.error());
  d->host_timeout_ms_ = host_timeout_ms;
  d->runners_ = std::make_unique<RunnerJudge>(d->catalog_.get(), Clock::Real(),
                                              RunnerJudge::Self{d->host_id_, ThisBootId(), {}}, host_timeout_ms);
  // Format 1 on S3 writes each chunk with a request of its own from the engine's threads,
  // which then wait on the network, not the CPU: the engine parallelises only as wide as its
  // pool, so such a data dir gets more threads than cores. Format 2's packs are uploaded by
  // the store's own threads, so its engine threads only hash and compress: one per core, and
  // the batches they hold (twice the pool, 8 MiB each) stay few.
  size_t threads = s3 && d->repo_->format() == 1 ? std::max<size_t>(ThreadPool::DefaultThreads(), kS3PoolThreads) : 0;
  d->pool_ = std::make_unique<ThreadPool>(threads, /*max_queue=*/256);
  RETURN_IF_ERROR(d->RecoverInterrupted());
  return d;
}

Status DataDir::RecoverInterrupted() {
  ASSIGN_OR_RETURN(auto pending, catalog_->ListSnapshots({.state = SnapshotState::kPending}));
  // Snapshots written through the EBS direct APIs journal every acknowledged block: they are
  // handed over (runner '') for snapvold's DirectSnapshots::Adopt, which resumes or ends them.
  ASSIGN_OR_RETURN(auto journals, catalog_->ListDirectJournals());
  std::set<std::string> journaled;
  for (const auto& j : journals) journaled.insert(j.snapshot_id);
  for (const auto& s : pending) {
    if (RunnerAlive(s.runner)) continue;
    if (s.runner.empty() && journaled.contains(s.snapshot_id)) continue;  // handed over already
    // The manifest root is published before the catalog says completed: if it is there, the
    // snapshot is whole.
    auto meta = repo_->GetManifest(s.snapshot_id);
    if (meta) {
      RETURN_IF_ERROR(catalog_->MarkCompleted(s.snapshot_id, meta->completed_time_ms,
                                              meta->stored_bytes, meta->changed_blocks,
                                              meta->block_count));
    } else if (meta.error().code() == ErrorCode::kNotFound && journaled.contains(s.snapshot_id)) {
      // Its lease stays: adoption renews it. Conflict: another process took it meanwhile.
      auto st = catalog_->HandOverSnapshot(s.snapshot_id, s.runner, "");
      if (!st && st.error().code() != ErrorCode::kConflict) return st;
      continue;
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
