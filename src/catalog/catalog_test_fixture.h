// Test support for the catalog's own tests: a CatalogTest fixture whose catalog file is in
// a temporary directory of its own (opened with a fake clock), record makers, and RawQuery,
// which reads the database file through a connection of its own as another process would.
#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/catalog_postgres.h"
#include "catalog/catalog_test_db.h"
#include "core/clock.h"
#include "core/ids.h"

namespace snapvol::catalog_testing {


inline constexpr int64_t kT0 = 1'700'000'000'000;

// Runs sql on the database file through a separate connection (as another process would)
// and returns the first column of the first row, or "" if there is none.
inline std::string RawQuery(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  std::string out;
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW && sqlite3_column_text(st, 0) != nullptr)
    out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  EXPECT_TRUE(rc == SQLITE_ROW || rc == SQLITE_DONE) << sqlite3_errmsg(db);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

// Runs sql (several statements) on the file through a connection of its own, as an older
// snapvol would; a failure fails the test.
inline void RawExec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  EXPECT_EQ(rc, SQLITE_OK) << (err ? err : "");
  sqlite3_free(err);
  sqlite3_close(db);
}

// The schema version stored in the catalog at path (SQLite's user_version, or PostgreSQL's
// snapvol_schema), read through a connection of its own; "" and a test failure on error.
inline std::string StoredSchemaVersion(const std::string& path) {
  if (!Catalog::IsPostgresUrl(path)) return RawQuery(path, "PRAGMA user_version");
  auto db = catalog_internal::OpenPostgres(path);
  if (!db) {
    ADD_FAILURE() << db.error().ToString();
    return "";
  }
  auto version = catalog_internal::PostgresSchemaVersion(**db);
  if (!version) {
    ADD_FAILURE() << version.error().ToString();
    return "";
  }
  return std::to_string(*version);
}

inline VolumeRecord MakeVolume(const std::string& account_id = kDefaultAccountId) {
  VolumeRecord v;
  v.volume_id = NewVolumeId();
  v.account_id = account_id;
  v.name = "data";
  v.tags = {{"Name", "data"}};  // a volume's name is its Name tag
  v.path = "/dev/vdb";
  v.size_bytes = 8ULL << 30;
  v.block_size = 512 * 1024;
  v.created_ms = kT0;
  return v;
}

inline SnapshotRecord MakeSnapshot(const std::string& volume_id, int64_t start_ms,
                            SnapshotState state = SnapshotState::kPending,
                            const std::string& account_id = kDefaultAccountId) {
  SnapshotRecord s;
  s.snapshot_id = NewSnapshotId();
  s.volume_id = volume_id;
  s.account_id = account_id;
  s.state = state;
  s.progress = state == SnapshotState::kCompleted ? "100%" : "0%";
  s.start_time_ms = start_ms;
  s.completed_time_ms = state == SnapshotState::kCompleted ? start_ms + 1000 : 0;
  s.volume_size_bytes = 8ULL << 30;
  s.block_size = 512 * 1024;
  s.runner = state == SnapshotState::kPending ? "pid:1234@boot" : "";
  return s;
}

inline std::vector<std::string> Ids(const std::vector<SnapshotRecord>& snaps) {
  std::vector<std::string> ids;
  for (const auto& s : snaps) ids.push_back(s.snapshot_id);
  return ids;
}

class CatalogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "catalog_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    db_ = std::make_unique<TestCatalogDb>(dir_);
    path_ = db_->location();
    ASSERT_FALSE(path_.empty());
  }
  void TearDown() override {
    db_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Opens the catalog at path_; nullptr (and a test failure) if that fails.
  std::unique_ptr<Catalog> Open() {
    auto c = Catalog::Open(path_, &clock_);
    if (!c) {
      ADD_FAILURE() << c.error().ToString();
      return nullptr;
    }
    return std::move(*c);
  }

  void WriteGarbage(uint64_t offset, size_t length) {
    std::fstream f(path_, std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(f.is_open());
    f.seekp(static_cast<std::streamoff>(offset));
    std::string junk(length, '\0');
    for (size_t i = 0; i < length; ++i) junk[i] = static_cast<char>((i * 131 + 7) % 251);
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }

  std::unique_ptr<TestCatalogDb> db_;
  std::string dir_;
  std::string path_;  // the catalog: dir_/catalog.db, or a PostgreSQL URL (catalog_test_db.h)
  FakeClock clock_{kT0};
};

// A CatalogTest whose catalog is open in cat_ for the whole test (closed before the database
// goes away).
class OpenCatalogTest : public CatalogTest {
 protected:
  void SetUp() override {
    CatalogTest::SetUp();
    if (HasFatalFailure()) return;
    cat_ = Open();
    ASSERT_NE(cat_, nullptr);
  }
  void TearDown() override {
    cat_.reset();
    CatalogTest::TearDown();
  }
  std::unique_ptr<Catalog> cat_;
};

// --- opening, migrations, damage ---

}  // namespace snapvol::catalog_testing
