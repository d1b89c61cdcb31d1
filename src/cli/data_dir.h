// DataDir: everything `snapvol` opens in a data directory — the catalog (catalog.db, or the
// PostgreSQL database DIR/catalog.json names), the
// snapshot store (the local one in store/, or an S3 bucket named by store.json), the store
// key (store.key, when encrypted) — and the recovery of snapshots left pending by a process
// that died.
// Thread-safety: one DataDir per process; its members are thread-safe as documented there.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "catalog/catalog.h"
#include "cli/host_identity.h"
#include "core/aead.h"
#include "core/file_util.h"
#include "core/thread_pool.h"
#include "store/repository.h"
#include "store/s3_store.h"

namespace snapvol {

// Where an S3 store is and how to reach it; recorded in DIR/store.json by Init.
struct S3StoreOptions {
  std::string url;       // s3://BUCKET[/PREFIX]
  std::string endpoint;  // empty: AWS's endpoint for the region
  std::string region = "us-east-1";
  std::string url_style;  // "path" or "virtual"; empty: path with an endpoint, else virtual
  std::string profile;    // shared-credentials profile to use when the env has no keys
  std::string ca_file;
  bool allow_insecure_http = false;
  // Record the keys found now (env or profile) in store.json (mode 0600) so that later runs,
  // e.g. snapvold started by init, need none in their environment.
  bool save_keys = false;
};

struct InitOptions {
  bool encrypt = false;
  uint32_t block_size = kDefaultBlockSize;
  bool block_size_given = false;  // joining an existing S3 store checks it only when given
  int compression_level = 1;
  uint32_t store_format = 0;  // 0: SNAPVOL_STORE_FORMAT, else 1
  uint64_t pack_size_mib = 0;  // 0: the default (16); only with store_format 2
  std::optional<S3StoreOptions> s3;  // empty: the local store in DIR/store
  // A postgresql:// URL (recorded in DIR/catalog.json, 0600); empty: DIR/catalog.db (SQLite).
  std::string catalog_url;
};

// What DataDir::MakePrivate changed.
struct PrivacyReport {
  size_t tightened = 0;  // paths whose mode lost group/other bits
  std::string example;   // one of them with its old mode, e.g. "DIR/catalog.db was 0644"
  // Regular files left as they were because they have other hard links (which may be outside
  // the data dir, where their mode is not ours to change).
  size_t linked = 0;
  std::string linked_example;
  // "tightened 12 paths under DIR to owner-only (e.g. …)" (and the linked files left alone),
  // or empty when there is nothing to say.
  std::string Message(const std::string& dir) const;
};

struct InitResult {
  std::optional<Key256> key;  // printed once by the caller
  std::string key_path;
  std::string store;      // the store's description
  bool joined = false;    // the S3 location already held a store, now shared with it
  uint32_t block_size = 0;
  bool encrypted = false;
};

// The clock skew beyond which an S3 data dir refuses to open: GC compares object ages from
// the server's clock with this machine's, and its grace period (15 min by default) only
// covers skew well below itself.
inline constexpr int64_t kMaxS3ClockSkewMs = 5 * 60 * 1000;

class DataDir {
 public:
  // Creates the directory (if needed), the store and the catalog. AlreadyExists when the
  // data dir already holds a store. With options.s3, checks the bucket first (one clear error
  // for an unreachable endpoint, wrong keys, a missing bucket) and joins a store already at
  // that location instead of creating one (several hosts share one bucket).
  static Result<InitResult> Init(const std::string& dir, const InitOptions& options);
  // Makes dir (created 0700 if missing) and everything in it private to its owner. Does
  // nothing more when dir is already 0700 (mode & 077 == 0): nothing under it is reachable by
  // other users then, so a large store is not walked at every start. Otherwise makes dir and
  // everything in it private:
  // directories 0700, regular files keep only their owner bits (0600). Symbolic links,
  // sockets, fifos and device nodes are left alone and never followed or opened for I/O, so
  // volumes registered from elsewhere keep their modes; so are regular files with other hard
  // links (counted in the report). Each entry is opened without following links and changed
  // through that descriptor, so an entry swapped for a link mid-walk is not followed, even by
  // root. Walks the whole tree: one stat and one open per entry. Fails, naming the path,
  // when an entry belongs to a user other than dir's owner, a mode cannot be changed, or the
  // tree cannot be read; Unauthorized when dir belongs to another user (the process must run
  // as its owner). Entries removed during the walk are skipped.
  static Result<PrivacyReport> MakePrivate(const std::string& dir);
  // Where dir's catalog is: the PostgreSQL URL DIR/catalog.json records (password and all),
  // or DIR/catalog.db when there is no catalog.json.
  static Result<std::string> CatalogLocation(const std::string& dir);
  // Records url as dir's catalog (DIR/catalog.json, 0600, written atomically).
  static Status WriteCatalogUrl(const std::string& dir, const std::string& url);
  // Opens the catalog at location (CatalogLocation's answer) with errors that say what to do:
  // an unreachable server (retryable kIoError naming host:port), refused credentials
  // (kUnauthorized), a missing database (kNotFound), a schema newer than this build
  // (kUnsupported). Never a password in a message.
  static Result<std::unique_ptr<Catalog>> OpenCatalog(const std::string& location);
  // The same wording for an error from any PostgreSQL catalog connection.
  static Error ExplainCatalogError(const Error& e);
  // Takes dir's lock (DIR/lock, flock) exclusively, for a command that must run alone
  // (`catalog migrate-to`). Every DataDir::Open (snapvold's for its whole life, each snapvol
  // command's for its run) holds it shared, so this fails with kConflict while any of them
  // runs, and they fail while it is held. The lock goes with the returned descriptor.
  static Result<UniqueFd> LockExclusive(const std::string& dir);
  // True when dir holds a store (local: store/config; S3: store.json): Open, not Init.
  static bool IsInitialised(const std::string& dir);
  // The S3 settings recorded in DIR/store.json, with credentials resolved (env, then the
  // recorded keys, then the shared-credentials profile); nullopt for a local-store data dir.
  static Result<std::optional<S3Config>> ReadS3Config(const std::string& dir);
  // Opens an initialised data dir (and gives it a host id, DIR/host-id, if it has none), makes
  // this host the catalog's local host (Catalog::SetLocalHost) and gives it the volumes and
  // instances that have no host yet (Catalog::ClaimOwnerless), and settles snapshots left pending by dead processes (RunnerAlive false: another host's are
  // left to that host while its heartbeat is fresh):
  // completed when their manifest root is in the store; handed over (runner '') to snapvold's
  // DirectSnapshots::Adopt when they are EBS direct snapshots with a journal; `error` otherwise.
  // Refuses (Unauthorized) a data dir owned by another user. Calls MakePrivate: if the
  // directory itself is open to group or other, the whole tree is made private and stderr
  // gets one line saying so; a private directory is not walked, so opening stays cheap for
  // large stores.
  // With reset_damaged_catalog, a SQLite catalog that cannot be opened because it is damaged
  // is moved aside (catalog.db.damaged-<time>) and a fresh one created: for `catalog rebuild`
  // (a PostgreSQL catalog is never reset). Holds dir's lock shared while the DataDir lives
  // (kConflict while LockExclusive holds it).
  // host_timeout_ms: how long without a heartbeat another host is unreachable, for RunnerAlive
  // (snapvold's --host-timeout-seconds; the CLI uses the default).
  static Result<std::unique_ptr<DataDir>> Open(const std::string& dir,
                                               bool reset_damaged_catalog = false,
                                               int64_t host_timeout_ms = kDefaultHostTimeoutMs);
  // Set when Open replaced a damaged catalog: where the old file went.
  const std::string& damaged_catalog_moved_to() const { return damaged_moved_to_; }

  Catalog* catalog() { return catalog_.get(); }
  // True when the catalog is PostgreSQL (DIR/catalog.json), false for DIR/catalog.db.
  bool catalog_is_postgres() const { return catalog_is_postgres_; }
  Repository* repo() { return repo_.get(); }
  ThreadPool* pool() { return pool_.get(); }
  // The key that seals API secrets in the catalog (DIR/secrets.key, created on first use).
  Result<Key256> SecretsKey() const { return LoadOrCreateKeyFile(dir_ + "/secrets.key"); }
  const std::string& path() const { return dir_; }

  // This host's id (DIR/host-id; cli/host_identity.h).
  const std::string& host_id() const { return host_id_; }
  // "pid:N@BOOT@HOST" for this process.
  std::string RunnerId() const;
  // True when runner names a process that may still be running: one of this host by its pid
  // and boot id, another host's while that host's heartbeat is fresh (RunnerJudge::Alive).
  bool RunnerAlive(const std::string& runner) const;
  // The host timeout Open was given.
  int64_t host_timeout_ms() const { return host_timeout_ms_; }

 private:
  // DIR/lock, shared (kConflict while LockExclusive holds it).
  static Result<UniqueFd> LockShared(const std::string& dir);
  Status RecoverInterrupted();

  std::string dir_;
  std::string host_id_;
  int64_t host_timeout_ms_ = kDefaultHostTimeoutMs;
  std::unique_ptr<RunnerJudge> runners_;
  std::string damaged_moved_to_;
  bool catalog_is_postgres_ = false;
  UniqueFd lock_;  // DIR/lock, held shared
  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<Repository> repo_;
  std::unique_ptr<ThreadPool> pool_;
};

}  // namespace snapvol
