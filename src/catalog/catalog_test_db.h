// Test support: where a catalog test keeps its database. By default a SQLite file in the
// test's own directory; when SNAPVOL_TEST_PG_URL_FILE names the URL file the pg fixture writes
// (tests/pg/pg_cluster.sh, `ctest -L pg`), a fresh PostgreSQL database per test, created from
// that URL's connection and dropped at the end. So every catalog test runs on both backends
// unchanged; the few about SQLite itself are named `Sqlite…` and the PostgreSQL registration
// leaves them out (snapvol_catalog_test in src/catalog/CMakeLists.txt).
//
// Why a database, not a schema, per test: a database costs ~40 ms to create and drop here and
// isolates everything a test can see (advisory write lock, data version, schema version).
//
// Thread-safety: one TestCatalogDb per test, used by the test's thread.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include "catalog/catalog_db.h"
#include "catalog/catalog_postgres.h"
#include "core/ids.h"

namespace snapvol::catalog_testing {

// True when this run's catalogs are on PostgreSQL.
inline bool OnPostgres() { return std::getenv("SNAPVOL_TEST_PG_URL_FILE") != nullptr; }

class TestCatalogDb {
 public:
  // A database for one test: the SQLite file dir/catalog.db, or a new PostgreSQL database.
  // A failure fails the test and leaves location() empty.
  explicit TestCatalogDb(const std::string& dir) {
    if (!OnPostgres()) {
      location_ = dir + "/catalog.db";
      return;
    }
    std::ifstream in(std::getenv("SNAPVOL_TEST_PG_URL_FILE"));
    std::string url;
    std::getline(in, url);
    if (url.empty()) {
      ADD_FAILURE() << "no PostgreSQL URL in $SNAPVOL_TEST_PG_URL_FILE (run with ctest -L pg)";
      return;
    }
    auto admin = catalog_internal::OpenPostgres(url);
    if (!admin) {
      ADD_FAILURE() << admin.error().ToString();
      return;
    }
    admin_ = std::move(*admin);
    // A volume id's 17 hex digits: unique enough between the tests of one cluster.
    name_ = "t_" + NewVolumeId().substr(4);
    if (auto st = admin_->Exec("CREATE DATABASE " + name_, "create test database"); !st) {
      ADD_FAILURE() << st.error().ToString();
      name_.clear();
      return;
    }
    // postgresql://user:pw@host:port/db[?params]: the same server, the new database.
    const size_t query = url.find('?');
    const size_t slash = url.rfind('/', query == std::string::npos ? url.size() : query);
    location_ =
        url.substr(0, slash + 1) + name_ + (query == std::string::npos ? "" : url.substr(query));
  }
  ~TestCatalogDb() {
    if (admin_ == nullptr || name_.empty()) return;
    // FORCE: a catalog a failed test leaked must not keep the database alive.
    if (auto st = admin_->Exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)",
                               "drop test database");
        !st)
      ADD_FAILURE() << st.error().ToString();
  }
  TestCatalogDb(const TestCatalogDb&) = delete;
  TestCatalogDb& operator=(const TestCatalogDb&) = delete;

  // What Catalog::Open takes: a file path or a postgresql:// URL.
  const std::string& location() const { return location_; }

 private:
  std::unique_ptr<catalog_internal::Connection> admin_;
  std::string name_;
  std::string location_;
};

}  // namespace snapvol::catalog_testing
