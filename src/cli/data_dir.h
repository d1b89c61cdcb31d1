// DataDir: everything `snapvol` opens in a data directory — the catalog (catalog.db), the
// local snapshot store (store/), the store key (store.key, when encrypted) — and the recovery
// of snapshots left pending by a process that died.
// Thread-safety: one DataDir per process; its members are thread-safe as documented there.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "catalog/catalog.h"
#include "core/aead.h"
#include "core/thread_pool.h"
#include "store/repository.h"

namespace snapvol {

struct InitOptions {
  bool encrypt = false;
  uint32_t block_size = kDefaultBlockSize;
  int compression_level = 1;
};

struct InitResult {
  std::optional<Key256> key;  // printed once by the caller
  std::string key_path;
};

class DataDir {
 public:
  // Creates the directory (if needed), the store and the catalog. AlreadyExists when the
  // data dir already holds a store.
  static Result<InitResult> Init(const std::string& dir, const InitOptions& options);
  // Opens an initialised data dir and settles snapshots left pending by dead processes.
  // With reset_damaged_catalog, a catalog that cannot be opened because it is damaged is
  // moved aside (catalog.db.damaged-<time>) and a fresh one created: for `catalog rebuild`.
  static Result<std::unique_ptr<DataDir>> Open(const std::string& dir,
                                               bool reset_damaged_catalog = false);
  // Set when Open replaced a damaged catalog: where the old file went.
  const std::string& damaged_catalog_moved_to() const { return damaged_moved_to_; }

  Catalog* catalog() { return catalog_.get(); }
  Repository* repo() { return repo_.get(); }
  ThreadPool* pool() { return pool_.get(); }
  // The key that seals API secrets in the catalog (DIR/secrets.key, created on first use).
  Result<Key256> SecretsKey() const { return LoadOrCreateKeyFile(dir_ + "/secrets.key"); }
  const std::string& path() const { return dir_; }

  // "pid:N@BOOT" for this process.
  static std::string RunnerId();
  // True when runner names a process that may still be running.
  static bool RunnerAlive(const std::string& runner);

 private:
  Status RecoverInterrupted();

  std::string dir_;
  std::string damaged_moved_to_;
  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<Repository> repo_;
  std::unique_ptr<ThreadPool> pool_;
};

}  // namespace snapvol
