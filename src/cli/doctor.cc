// `snapvol doctor` (see doctor.h): the data dir's checks; the catalog's runs are in
// doctor_runs.cc.
#include "cli/doctor.h"

#include <dirent.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "catalog/catalog_copy.h"
#include "catalog/catalog_inspect.h"
#include "cli/data_dir.h"
#include "core/aead.h"
#include "core/file_util.h"
#include "core/human_bytes.h"
#include "core/ids.h"
#include "store/gc.h"
#include "store/local_store.h"
#include "store/repository.h"
#include "store/s3_store.h"

namespace snapvol {
namespace {

using json = nlohmann::json;

// Files that hold secrets or everything the catalog knows: owner-only (0600) whatever the
// directory's mode, so that a copy or a loosened directory does not expose them.
constexpr const char* kSecretFiles[] = {"store.key",   "secrets.key",    "admin-credentials", "store.json",
                                        "catalog.db",  "catalog.db-wal", "catalog.db-shm",    "audit.log",
                                        "catalog.json"};

DoctorFinding Ok(std::string check, std::string what) { return {std::move(check), DoctorStatus::kOk, std::move(what), ""}; }
DoctorFinding Warn(std::string check, std::string what, std::string fix) {
  return {std::move(check), DoctorStatus::kWarn, std::move(what), std::move(fix)};
}
DoctorFinding Fail(std::string check, std::string what, std::string fix) {
  return {std::move(check), DoctorStatus::kFail, std::move(what), std::move(fix)};
}

std::string Mode(mode_t m) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m & 07777));
  return buf;
}

std::string UserName(uid_t uid) {
  struct passwd pw {}, *found = nullptr;
  char buf[1024];
  if (::getpwuid_r(uid, &pw, buf, sizeof buf, &found) == 0 && found) return found->pw_name;
  return "uid " + std::to_string(uid);
}


// Who owns the data dir, its mode, the secrets' modes, entries of other users, and temporaries
// left at its top level by interrupted writes. Only the top level is read: under a 0700
// directory nothing deeper is reachable by other users, and a store may hold millions of files.
void CheckPermissions(const std::string& dir, const struct stat& st, std::vector<DoctorFinding>* out) {
  const size_t before = out->size();
  const uid_t me = ::geteuid();
  const std::string owner = UserName(st.st_uid);
  if (st.st_uid != me && me != 0)
    out->push_back(Fail("permissions", dir + " belongs to " + owner + ", not to the user running doctor (" + UserName(me) + ")",
                        "run snapvol doctor as " + owner + " (runuser -u " + owner + " -- snapvol doctor ...) or as root"));
  if (st.st_mode & 077)
    out->push_back(Fail("permissions", dir + " is " + Mode(st.st_mode) + ": other users can reach what is in it",
                        "chmod 700 " + dir + " (snapvold and snapvol also make the whole tree owner-only when they "
                                            "next open a data dir that is not 0700)"));
  for (const char* name : kSecretFiles) {
    const std::string path = dir + "/" + name;
    struct stat fs {};
    if (::lstat(path.c_str(), &fs) != 0 || !S_ISREG(fs.st_mode)) continue;
    if (fs.st_mode & 077)
      out->push_back(Fail("permissions", path + " is " + Mode(fs.st_mode) + " (readable beyond its owner)",
                          "chmod 600 " + path));
  }
  DIR* listing = ::opendir(dir.c_str());
  if (!listing) {
    out->push_back(Fail("permissions", "cannot list " + dir + ": " + std::strerror(errno),
                        "run snapvol doctor as the data dir's owner (" + owner + ") or as root"));
    return;
  }
  std::unique_ptr<DIR, int (*)(DIR*)> closer(listing, ::closedir);
  std::vector<std::string> temporaries;
  while (struct dirent* e = ::readdir(listing)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    const std::string path = dir + "/" + name;
    struct stat es {};
    if (::lstat(path.c_str(), &es) != 0) continue;
    if (es.st_uid != st.st_uid)
      out->push_back(Fail("permissions", path + " belongs to " + UserName(es.st_uid) + ", not to the data dir's owner (" +
                                             owner + "); snapvol refuses to open the data dir",
                          "chown " + owner + " " + path + " (or remove it)"));
    if (name.find(".tmp-") != std::string::npos) temporaries.push_back(path);
  }
  if (!temporaries.empty())
    out->push_back(Warn("leftovers", std::to_string(temporaries.size()) + " temporary file(s) left by interrupted writes, e.g. " +
                                         temporaries.front(),
                        "remove them while no snapvol or snapvold writes to the data dir: rm " + dir + "/*.tmp-*"));
  if (out->size() == before)
    out->push_back(Ok("permissions", dir + " is " + Mode(st.st_mode) + ", owned by " + owner + "; secrets are owner-only"));
}

// A PostgreSQL catalog (DIR/catalog.json): connects, reads the schema version and the rows
// per table without changing anything, then opens it when its schema is this build's.
std::unique_ptr<Catalog> CheckPostgresCatalog(const std::string& dir, const std::string& url,
                                              std::vector<DoctorFinding>* out) {
  auto info = InspectPostgresCatalog(url);
  if (!info) {
    // The same wording as opening the data dir would give (unreachable, credentials, no database).
    auto opened = DataDir::OpenCatalog(url);
    const Error& e = opened ? info.error() : opened.error();
    std::string fix = e.code() == ErrorCode::kUnauthorized ? "fix the user or password in " + dir + "/catalog.json"
                      : e.code() == ErrorCode::kNotFound   ? "create the database, or fix its name in " + dir + "/catalog.json"
                                                           : "start the PostgreSQL server or fix its address in " + dir +
                                                               "/catalog.json; then run doctor again";
    out->push_back(Fail("catalog", e.message(), fix));
    return nullptr;
  }
  const std::string v = std::to_string(info->schema_version), latest = std::to_string(info->latest_version);
  if (info->schema_version > info->latest_version) {
    out->push_back(Fail("catalog", info->where + ": schema version " + v + " was written by a newer snapvol (this one knows up to " +
                                       latest + ")",
                        "use the snapvol of the release that runs snapvold on this catalog (or upgrade this one)"));
    return nullptr;
  }
  if (info->schema_version < info->latest_version) {
    out->push_back(Warn("catalog", info->where + ": schema version " + v + " is older than this snapvol's (" + latest +
                                       "); the runs and the usage journal are not checked",
                        "start snapvold from this release (it migrates the catalog when it starts)"));
    return nullptr;
  }
  auto catalog = DataDir::OpenCatalog(url);
  if (!catalog) {
    out->push_back(Fail("catalog", catalog.error().message(), "check the PostgreSQL server's log"));
    return nullptr;
  }
  std::string rows;
  int64_t total = 0;
  for (const auto& t : info->tables) {
    total += t.rows;
    if (t.rows == 0) continue;
    rows += (rows.empty() ? "" : ", ") + t.table + " " + std::to_string(t.rows);
  }
  out->push_back(Ok("catalog", "PostgreSQL " + info->where + " answers, schema version " + v + " (current), " +
                                   std::to_string(total) + " rows (" + (rows.empty() ? "none" : rows) + ")"));
  return std::move(*catalog);
}

// Inspects the catalog read-only, then opens it when its schema is this build's.
std::unique_ptr<Catalog> CheckCatalog(const std::string& dir, std::vector<DoctorFinding>* out) {
  auto location = DataDir::CatalogLocation(dir);
  if (!location) {
    out->push_back(Fail("catalog", location.error().message(), "restore " + dir + "/catalog.json from a backup"));
    return nullptr;
  }
  if (Catalog::IsPostgresUrl(*location)) return CheckPostgresCatalog(dir, *location, out);
  const std::string path = dir + "/catalog.db";
  auto info = InspectCatalogFile(path);
  if (!info) {
    std::string fix = "snapvol --data-dir " + dir + " catalog rebuild (recreates the snapshot catalog from the store; "
                      "volumes registered by path must be registered again)";
    if (info.error().code() == ErrorCode::kIoError) fix = "check the file's owner and mode and the disk; then run doctor again";
    out->push_back(Fail("catalog", info.error().message(), fix));
    return nullptr;
  }
  const std::string v = std::to_string(info->schema_version), latest = std::to_string(info->latest_version);
  if (info->schema_version > info->latest_version) {
    out->push_back(Fail("catalog", "schema version " + v + " was written by a newer snapvol (this one knows up to " + latest + ")",
                        "use the snapvol of the release that runs snapvold on this data dir (or upgrade this one)"));
    return nullptr;
  }
  if (info->schema_version < info->latest_version) {
    out->push_back(Warn("catalog", "schema version " + v + " is older than this snapvol's (" + latest +
                                       "); the runs and the usage journal are not checked",
                        "restart snapvold from this release (it migrates the catalog when it starts), or run the "
                        "doctor of the release snapvold runs"));
    return nullptr;
  }
  auto catalog = Catalog::Open(path);
  if (!catalog) {
    out->push_back(Fail("catalog", catalog.error().message(), "snapvol --data-dir " + dir + " catalog rebuild"));
    return nullptr;
  }
  out->push_back(Ok("catalog", path + " opens, schema version " + v + " (current), no damage found by quick_check"));
  return std::move(*catalog);
}

// Writes, reads, lists and deletes a probe object under doctor/ (a key nothing else uses), then
// opens the snapshot store on top. Returns the repository for the lease check, or null.
std::unique_ptr<Repository> CheckStore(const std::string& dir, std::vector<DoctorFinding>* out,
                                       std::optional<std::string>* local_root) {
  auto cfg = DataDir::ReadS3Config(dir);
  if (!cfg) {
    out->push_back(Fail("store", cfg.error().message(), "fix " + dir + "/store.json (or the S3 keys it names)"));
    return nullptr;
  }
  std::unique_ptr<ObjectStore> store;
  if (*cfg) {
    auto s3 = S3Store::Open(**cfg);
    if (!s3) {
      out->push_back(Fail("store", s3.error().message(), "fix " + dir + "/store.json"));
      return nullptr;
    }
    auto probe = (*s3)->Probe(5000);
    if (!probe) {
      out->push_back(Fail("store", (*cfg)->Describe() + ": " + probe.error().message(),
                          "snapvol --data-dir " + dir + " store check (says whether the endpoint, the keys or the "
                                                         "bucket is wrong)"));
      return nullptr;
    }
    out->push_back(ClockSkewFinding(probe->skew_ms, (*cfg)->endpoint));
    store = std::move(*s3);
  } else {
    const std::string root = dir + "/store";
    struct stat st {};
    const bool found = ::stat(root.c_str(), &st) == 0;
    if (!found || !S_ISDIR(st.st_mode)) {
      const std::string why = !found ? std::string(": ") + std::strerror(errno) : " is not a directory";
      out->push_back(Fail("store", root + why,
                          "put the store directory back (restore it from backup), or move the data dir's "
                          "snapshot store there"));
      return nullptr;
    }
    *local_root = root;
    // LocalStore::Open creates a missing directory: checked above, so it only opens here.
    auto local = LocalStore::Open(root);
    if (!local) {
      out->push_back(Fail("store", local.error().message(), "check " + root + "'s owner and mode"));
      return nullptr;
    }
    store = std::move(*local);
  }
  const std::string where = store->Describe();
  const std::string key = "doctor/" + NewSnapshotId();
  const std::string text = "snapvol doctor probe " + key;
  const std::vector<uint8_t> payload(text.begin(), text.end());
  std::string failed;
  if (Status put = store->Put(key, payload); !put) {
    failed = "writing a probe object failed: " + put.error().message();
  } else {
    auto back = store->Get(key);
    auto listed = store->List("doctor/");
    if (!back) failed = "reading the probe object back failed: " + back.error().message();
    else if (*back != payload) failed = "the probe object read back different bytes";
    else if (!listed) failed = "listing failed: " + listed.error().message();
    else if (std::none_of(listed->begin(), listed->end(), [&](const ObjectInfo& o) { return o.key == key; }))
      failed = "the probe object is not listed";
    Status del = store->Delete(key);
    if (!del && failed.empty()) failed = "deleting the probe object " + key + " failed: " + del.error().message();
    // A local store keeps the probe's directory: remove it too, so doctor leaves nothing behind.
    if (del && *local_root) ::rmdir((**local_root + "/doctor").c_str());
  }
  if (!failed.empty()) {
    out->push_back(Fail("store", where + ": " + failed,
                        "snapvol --data-dir " + dir + " store check (step by step); for a local store check the "
                                                       "owner, mode and free space of its directory"));
    return nullptr;
  }
  auto key_file = ReadKeyFile(dir + "/store.key");
  if (!key_file) {
    out->push_back(Fail("store", key_file.error().message(), "restore " + dir + "/store.key from your backup"));
    return nullptr;
  }
  RepositoryOptions ro;
  ro.master_key = *key_file;
  auto repo = Repository::Open(std::move(store), ro);
  if (!repo) {
    out->push_back(Fail("store", where + ": " + repo.error().message(),
                        "snapvol --data-dir " + dir + " store check; restore the store's config object or store.key"));
    return nullptr;
  }
  out->push_back(Ok("store", where + " answers: a probe object was written, read, listed and deleted; format " +
                                 std::to_string(kStoreFormatVersion) + ", block size " + HumanBytes((*repo)->block_size()) +
                                 ((*repo)->encrypted() ? ", encrypted" : "")));
  return std::move(*repo);
}

// Free space of each file system the data dir and the local store live on, once per device.
void CheckFreeSpace(const std::string& dir, const std::optional<std::string>& local_root,
                    std::vector<DoctorFinding>* out) {
  std::vector<dev_t> seen;
  std::vector<std::string> paths = {dir};
  if (local_root) paths.push_back(*local_root);
  for (const auto& p : paths) {
    struct stat st {};
    struct statvfs vfs {};
    if (::stat(p.c_str(), &st) != 0 || ::statvfs(p.c_str(), &vfs) != 0) {
      out->push_back(Warn("free space", "cannot read the free space of " + p + ": " + std::strerror(errno),
                          "check that " + p + " is mounted"));
      continue;
    }
    if (std::find(seen.begin(), seen.end(), st.st_dev) != seen.end()) continue;
    seen.push_back(st.st_dev);
    out->push_back(FreeSpaceFinding(p, static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize,
                                    static_cast<uint64_t>(vfs.f_blocks) * vfs.f_frsize));
  }
}

// Snapshots left pending by a process that is gone, and writer leases GC treats as stale.
void CheckLeftovers(Catalog* catalog, Repository* repo, const std::string& dir, int64_t now_ms,
                    std::vector<DoctorFinding>* out) {
  if (catalog) {
    // Read-only: a data dir without a host id yet (made before host ids) has no runner naming
    // it, so an empty id judges only the old form and other hosts' runners.
    std::string host_id;
    if (PathExists(dir + kHostIdFile)) {
      auto id = LoadOrCreateHostId(dir);
      if (!id) out->push_back(Fail("host id", id.error().message(), "fix or remove " + dir + kHostIdFile));
      else host_id = *id;
    }
    RunnerJudge runners(catalog, Clock::Real(), {host_id, ThisBootId(), {}});
    auto pending = catalog->ListSnapshots({.state = SnapshotState::kPending});
    if (!pending) {
      out->push_back(Fail("pending snapshots", pending.error().message(), "snapvol --data-dir " + dir + " catalog rebuild"));
    } else {
      std::vector<std::string> orphaned;
      for (const auto& s : *pending)
        if (!runners.Alive(s.runner))
          orphaned.push_back(s.snapshot_id + " (" + (s.runner.empty() ? "an EBS direct snapshot snapvold resumes" : s.runner) + ")");
      if (!orphaned.empty())
        out->push_back(Warn("pending snapshots", std::to_string(orphaned.size()) + " snapshot(s) pending with no live process "
                                                 "taking them, e.g. " + orphaned.front(),
                            "they are settled (completed or error) the next time snapvold starts or snapvol opens the "
                            "data dir (e.g. snapvol --data-dir " + dir + " snapshot list)"));
    }
  }
  if (!repo) return;
  auto leases = repo->ListLeases();
  if (!leases) {
    out->push_back(Warn("leases", "cannot list the store's writer leases: " + leases.error().message(),
                        "snapvol --data-dir " + dir + " store check"));
    return;
  }
  const int64_t expiry = GcOptions{}.lease_expiry_ms;
  std::vector<std::string> stale;
  for (const auto& l : *leases)
    if (l.heartbeat_ms < now_ms - expiry)
      stale.push_back(l.snapshot_id + " (holder " + l.holder + ", last heartbeat " + FormatIso8601(l.heartbeat_ms) + ")");
  if (!stale.empty())
    out->push_back(Warn("leases", std::to_string(stale.size()) + " writer lease(s) of snapshots no longer being written, e.g. " +
                                      stale.front(),
                        "the next GC removes them (snapvold's daily run, or snapvol --data-dir " + dir + " gc)"));
  else
    out->push_back(Ok("leases", std::to_string(leases->size()) + " writer lease(s), none stale"));
}

}  // namespace

const char* DoctorStatusName(DoctorStatus s) {
  switch (s) {
    case DoctorStatus::kOk: return "ok";
    case DoctorStatus::kWarn: return "warn";
    case DoctorStatus::kFail: return "fail";
  }
  return "fail";
}

DoctorFinding ClockSkewFinding(int64_t skew_ms, const std::string& endpoint) {
  const int64_t magnitude = skew_ms < 0 ? -skew_ms : skew_ms;
  std::string what = "this machine's clock is " + std::to_string(magnitude / 1000) + " s " + (skew_ms > 0 ? "behind" : "ahead of") +
                     " " + endpoint + "'s (its Date header)";
  if (skew_ms == 0) what = "this machine's clock agrees with " + endpoint + "'s (its Date header)";
  const std::string fix = "synchronise this machine's clock (e.g. enable NTP: timedatectl set-ntp true)";
  if (magnitude > kDoctorSkewFailMs)
    return Fail("clock skew", what + ": over 5 minutes, S3 refuses SigV4 signatures and snapvol will not open the store", fix);
  if (magnitude > kDoctorSkewWarnMs) return Warn("clock skew", what + ": over 1 minute", fix);
  return Ok("clock skew", what);
}

DoctorFinding FreeSpaceFinding(const std::string& path, uint64_t available, uint64_t total) {
  const double fraction = total ? static_cast<double>(available) / static_cast<double>(total) : 0;
  char pct[16];
  std::snprintf(pct, sizeof pct, "%.1f%%", fraction * 100);
  const std::string what = path + ": " + std::to_string(available) + " bytes (" + HumanBytes(available) + ") free of " +
                           std::to_string(total) + " (" + HumanBytes(total) + "), " + pct;
  const std::string fix = "free space on the file system of " + path +
                          " (delete snapshots no longer needed, then run GC), or grow it";
  if (fraction < kDoctorFreeFailFraction) return Fail("free space", what + ": under 2%", fix);
  if (fraction < kDoctorFreeWarnFraction) return Warn("free space", what + ": under 10%", fix);
  return Ok("free space", what);
}

DoctorFinding UsageBacklogFinding(uint64_t pending) {
  const std::string what = std::to_string(pending) + " snapshot change(s) not yet counted by usage accounting";
  if (pending > kDoctorUsageBacklogWarn)
    return Warn("usage journal", what + " (over " + std::to_string(kDoctorUsageBacklogWarn) + ")",
                "GC counts them first: check that GC runs and succeeds (snapvol job list --job gc), or run "
                "snapvol account usage, which applies them");
  return Ok("usage journal", what);
}

std::vector<DoctorFinding> RunDoctor(const DoctorOptions& o) {
  std::vector<DoctorFinding> out;
  if (!o.data_dir.empty()) {
    const std::string& dir = o.data_dir;
    struct stat st {};
    const bool found = ::stat(dir.c_str(), &st) == 0;
    if (!found || !S_ISDIR(st.st_mode)) {
      const std::string why = !found ? (errno == ENOENT ? std::string(" does not exist") : std::string(": ") + std::strerror(errno))
                                     : " is not a directory";
      out.push_back(Fail("data dir", dir + why,
                         "pass the data dir snapvold uses (--data-dir DIR), or create one: snapvol --data-dir DIR init"));
    } else if (!DataDir::IsInitialised(dir)) {
      out.push_back(Fail("data dir", dir + " is not an initialised snapvol data dir (no store/config or store.json)",
                         "snapvol --data-dir " + dir + " init (or pass the data dir snapvold uses)"));
    } else {
      CheckPermissions(dir, st, &out);
      std::unique_ptr<Catalog> catalog = CheckCatalog(dir, &out);
      std::optional<std::string> local_root;
      std::unique_ptr<Repository> repo = CheckStore(dir, &out, &local_root);
      CheckFreeSpace(dir, local_root, &out);
      if (catalog) {
        auto pending = catalog->PendingUsageEntries();
        if (pending) out.push_back(UsageBacklogFinding(*pending));
        else out.push_back(Fail("usage journal", pending.error().message(), "snapvol --data-dir " + dir + " catalog rebuild"));
        for (auto& f : LifecycleRunFindings(catalog.get())) out.push_back(std::move(f));
        for (auto& f : MaintenanceFindings(catalog.get(), o.now_ms)) out.push_back(std::move(f));
        for (auto& f : ClusterLeaseFindings(catalog.get(), o.now_ms)) out.push_back(std::move(f));
        for (auto& f : VolumeFindings(catalog.get(), o.now_ms)) out.push_back(std::move(f));
      }
      CheckLeftovers(catalog.get(), repo.get(), dir, o.now_ms, &out);
    }
  }
  if (!o.endpoint.empty()) out.push_back(DaemonFinding(o.endpoint));
  return out;
}

int DoctorExitCode(const std::vector<DoctorFinding>& findings) {
  for (const auto& f : findings)
    if (f.status == DoctorStatus::kFail) return 1;
  return 0;
}

void PrintDoctorReport(const std::vector<DoctorFinding>& findings, bool as_json, std::ostream& out) {
  if (as_json) {
    json a = json::array();
    for (const auto& f : findings)
      a.push_back({{"Check", f.check}, {"Status", DoctorStatusName(f.status)}, {"What", f.what}, {"HowToFix", f.how_to_fix}});
    out << json{{"Findings", a}, {"Ok", DoctorExitCode(findings) == 0}}.dump(2) << "\n";
    return;
  }
  size_t fails = 0, warns = 0;
  for (const auto& f : findings) {
    const char* tag = f.status == DoctorStatus::kOk ? "OK  " : f.status == DoctorStatus::kWarn ? "WARN" : "FAIL";
    out << tag << " " << f.check << ": " << f.what << "\n";
    if (f.status != DoctorStatus::kOk) out << "       fix: " << f.how_to_fix << "\n";
    fails += f.status == DoctorStatus::kFail;
    warns += f.status == DoctorStatus::kWarn;
  }
  out << findings.size() << " checks: " << fails << " failed, " << warns << " warnings\n";
}

}  // namespace snapvol
