// Test support for the PostgreSQL backend's tests: the live server's URL (written by the
// pg_cluster_start fixture, tests/pg/pg_cluster.sh) and a fixture that starts every test from
// an empty public schema. The tests fail, never skip, without a server.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "catalog/catalog_db.h"
#include "catalog/catalog_postgres.h"

#define PG_ASSERT_OK(expr)                                      \
  do {                                                          \
    const auto& _pg_r = (expr);                                 \
    ASSERT_TRUE(_pg_r.has_value()) << _pg_r.error().ToString(); \
  } while (0)

namespace snapvol::catalog_internal::testing_pg {

inline std::string ServerUrl() {
  const char* file = std::getenv("SNAPVOL_PG_URL_FILE");
  if (file == nullptr) return "";
  std::ifstream in(file);
  std::string url;
  std::getline(in, url);
  return url;
}

class PostgresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = ServerUrl();
    ASSERT_FALSE(url_.empty())
        << "no PostgreSQL server: run with `ctest -L pg` (SNAPVOL_PG_URL_FILE names its URL)";
    db_ = Open();
    ASSERT_NE(db_, nullptr);
    PG_ASSERT_OK(db_->Exec("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public",
                           "reset the test schema"));
  }

  std::unique_ptr<Connection> Open(const std::string& url = "") {
    auto c = OpenPostgres(url.empty() ? url_ : url);
    EXPECT_TRUE(c.has_value()) << c.error().ToString();
    return c.has_value() ? std::move(*c) : nullptr;
  }

  // Every row of sql (no parameters), its first `columns` columns as text (NULL: "").
  static std::vector<std::vector<std::string>> Rows(Connection& db, const std::string& sql,
                                                    int columns) {
    std::vector<std::vector<std::string>> rows;
    auto st = db.Prepare(sql, "test query");
    EXPECT_TRUE(st.has_value()) << st.error().ToString();
    if (!st) return rows;
    for (;;) {
      auto row = (*st)->Step();
      EXPECT_TRUE(row.has_value()) << sql << ": " << row.error().ToString();
      if (!row || !*row) break;
      std::vector<std::string> cols;
      for (int c = 0; c < columns; ++c) cols.push_back((*st)->Text(c));
      rows.push_back(std::move(cols));
    }
    return rows;
  }
  // Column 0 of the first row of sql, as an integer.
  static int64_t Int(Connection& db, const std::string& sql) {
    auto st = db.Prepare(sql, "test query");
    EXPECT_TRUE(st.has_value()) << st.error().ToString();
    if (!st) return -999;
    auto row = (*st)->Step();
    EXPECT_TRUE(row.has_value() && *row)
        << sql << ": " << (row ? std::string("no row") : row.error().ToString());
    if (!row || !*row) return -999;
    return (*st)->Int(0);
  }
  static std::string Text(Connection& db, const std::string& sql) {
    auto st = db.Prepare(sql, "test query");
    EXPECT_TRUE(st.has_value()) << st.error().ToString();
    if (!st) return "<error>";
    auto row = (*st)->Step();
    EXPECT_TRUE(row.has_value() && *row)
        << sql << ": " << (row ? std::string("no row") : row.error().ToString());
    if (!row || !*row) return "<error>";
    return (*st)->Text(0);
  }

  std::string url_;
  std::unique_ptr<Connection> db_;
};

}  // namespace snapvol::catalog_internal::testing_pg
