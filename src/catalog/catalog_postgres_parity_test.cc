// Schema parity: the PostgreSQL schema (catalog_postgres_schema.cc) has the tables, columns
// (in order, with their NOT NULL-ness and type family), primary keys, foreign keys with their
// ON DELETE actions and indexes of a SQLite catalog that Catalog::Open made with every
// migration applied. Run with `ctest -L pg`.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/catalog_postgres.h"
#include "catalog/catalog_postgres_test_util.h"

namespace snapvol::catalog_internal {
namespace {

using testing_pg::PostgresTest;
using Table = std::vector<std::vector<std::string>>;

// The tables only the PostgreSQL backend has (its stand-ins for SQLite's PRAGMAs).
const std::set<std::string> kPostgresOnly = {"snapvol_schema", "snapvol_data_version"};

std::string Family(std::string sqlite_type) {
  if (sqlite_type == "INTEGER") return "bigint";
  if (sqlite_type == "TEXT") return "text";
  if (sqlite_type == "BLOB") return "bytea";
  return "unknown SQLite type " + sqlite_type;
}

std::string OnDelete(const std::string& pg_action) {
  if (pg_action == "a") return "NO ACTION";
  if (pg_action == "c") return "CASCADE";
  if (pg_action == "r") return "RESTRICT";
  if (pg_action == "n") return "SET NULL";
  if (pg_action == "d") return "SET DEFAULT";
  return "?" + pg_action;
}

class SchemaParityTest : public PostgresTest {
 protected:
  void SetUp() override {
    PostgresTest::SetUp();
    if (HasFatalFailure()) return;
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "snapvol_pg_parity.XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    const std::string path = dir_ + "/catalog.db";
    {
      auto cat = Catalog::Open(path);
      ASSERT_TRUE(cat.has_value()) << cat.error().ToString();
    }
    ASSERT_EQ(sqlite3_open_v2(path.c_str(), &lite_, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    PG_ASSERT_OK(MigratePostgres(*db_));
  }
  void TearDown() override {
    if (lite_ != nullptr) sqlite3_close(lite_);
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  Table Lite(const std::string& sql, const std::string& param = "") {
    Table rows;
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(lite_, sql.c_str(), -1, &st, nullptr), SQLITE_OK)
        << sqlite3_errmsg(lite_);
    if (!param.empty()) sqlite3_bind_text(st, 1, param.c_str(), -1, SQLITE_TRANSIENT);
    while (sqlite3_step(st) == SQLITE_ROW) {
      std::vector<std::string> row;
      for (int c = 0; c < sqlite3_column_count(st); ++c) {
        const unsigned char* t = sqlite3_column_text(st, c);
        row.emplace_back(t != nullptr ? reinterpret_cast<const char*>(t) : "");
      }
      rows.push_back(std::move(row));
    }
    sqlite3_finalize(st);
    return rows;
  }

  std::vector<std::string> LiteTables() {
    std::vector<std::string> tables;
    for (const auto& r : Lite("SELECT name FROM sqlite_schema WHERE type = 'table'"
                              " AND name NOT LIKE 'sqlite_%' ORDER BY name")) {
      tables.push_back(r[0]);
    }
    return tables;
  }

  std::string dir_;
  sqlite3* lite_ = nullptr;
};

TEST_F(SchemaParityTest, VersionsMatch) {
  EXPECT_EQ(kPostgresSchemaVersion, Catalog::LatestSchemaVersion());
}

TEST_F(SchemaParityTest, SameTablesAndColumns) {
  // table → "name family NULL|NOT NULL" in column order.
  std::map<std::string, std::vector<std::string>> lite, pg;
  for (const std::string& table : LiteTables()) {
    for (const auto& c :
         Lite("SELECT name, type, \"notnull\", pk FROM pragma_table_info(?) ORDER BY cid", table)) {
      // A primary key column cannot hold NULL on either side (SQLite's INTEGER PRIMARY KEY is
      // the rowid; the others are declared NOT NULL).
      const bool not_null = c[2] == "1" || c[3] != "0";
      lite[table].push_back(c[0] + " " + Family(c[1]) + (not_null ? " NOT NULL" : " NULL"));
    }
  }
  for (const auto& c :
       Rows(*db_,
            "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
            " WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position",
            4)) {
    if (kPostgresOnly.contains(c[0])) continue;
    pg[c[0]].push_back(c[1] + " " + c[2] + (c[3] == "NO" ? " NOT NULL" : " NULL"));
  }
  ASSERT_GE(lite.size(), 30u);
  EXPECT_EQ(pg, lite);
}

TEST_F(SchemaParityTest, TextColumnsCompareAsBytes) {
  EXPECT_EQ(Rows(*db_,
                 "SELECT table_name || '.' || column_name FROM information_schema.columns"
                 " WHERE table_schema = current_schema() AND data_type = 'text'"
                 " AND coalesce(collation_name, '') <> 'C'",
                 1),
            Table{});
  PG_ASSERT_OK(
      db_->Exec("INSERT INTO tags VALUES ('r', 'a', ''), ('r', 'B', ''), ('r', '_', ''),"
                " ('r', 'é', '')",
                "add tags"));
  EXPECT_EQ(Text(*db_, "SELECT string_agg(key, ',' ORDER BY key) FROM tags"), "B,_,a,é");
}

TEST_F(SchemaParityTest, SameNumberOfChecksPerTable) {
  // The CHECK texts differ (GLOB vs ~), their number per table does not.
  std::map<std::string, int> lite, pg;
  for (const auto& t : Lite("SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND name NOT "
                            "LIKE 'sqlite_%'")) {
    int n = 0;
    for (size_t at = t[1].find("CHECK ("); at != std::string::npos;
         at = t[1].find("CHECK (", at + 1))
      ++n;
    if (n > 0) lite[t[0]] = n;
  }
  for (const auto& r :
       Rows(*db_,
            "SELECT t.relname, count(*) FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid"
            " WHERE c.contype = 'c' AND c.connamespace = current_schema()::regnamespace"
            " GROUP BY t.relname",
            2)) {
    if (!kPostgresOnly.contains(r[0])) pg[r[0]] = std::stoi(r[1]);
  }
  EXPECT_GE(lite.size(), 20u);
  EXPECT_EQ(pg, lite);
}

TEST_F(SchemaParityTest, SamePrimaryKeys) {
  std::map<std::string, std::string> lite, pg;
  for (const std::string& table : LiteTables()) {
    std::string cols;
    for (const auto& c :
         Lite("SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk", table)) {
      cols += (cols.empty() ? "" : ",") + c[0];
    }
    lite[table] = cols;
  }
  for (const auto& r :
       Rows(*db_,
            "SELECT t.relname, string_agg(a.attname, ',' ORDER BY k.o)"
            " FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid"
            " CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(n, o)"
            " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n"
            " WHERE c.contype = 'p' AND c.connamespace = current_schema()::regnamespace"
            " GROUP BY t.relname",
            2)) {
    if (!kPostgresOnly.contains(r[0])) pg[r[0]] = r[1];
  }
  EXPECT_EQ(pg, lite);
}

TEST_F(SchemaParityTest, SameForeignKeysAndOnDeleteActions) {
  std::set<std::string> lite, pg;
  for (const std::string& table : LiteTables()) {
    for (const auto& f :
         Lite("SELECT \"from\", \"table\", \"to\", on_delete FROM pragma_foreign_key_list(?)",
              table)) {
      lite.insert(table + "." + f[0] + " -> " + f[1] + "." + f[2] + " ON DELETE " + f[3]);
    }
  }
  for (const auto& f :
       Rows(*db_,
            "SELECT t.relname, a.attname, rt.relname, ra.attname, c.confdeltype::text"
            " FROM pg_constraint c"
            " JOIN pg_class t ON t.oid = c.conrelid JOIN pg_class rt ON rt.oid = c.confrelid"
            " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]"
            " JOIN pg_attribute ra ON ra.attrelid = c.confrelid AND ra.attnum = c.confkey[1]"
            " WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace"
            " AND cardinality(c.conkey) = 1",
            5)) {
    pg.insert(f[0] + "." + f[1] + " -> " + f[2] + "." + f[3] + " ON DELETE " + OnDelete(f[4]));
  }
  EXPECT_GE(lite.size(), 10u);
  EXPECT_EQ(pg, lite);
  EXPECT_EQ(Int(*db_,
                "SELECT count(*) FROM pg_constraint WHERE contype = 'f'"
                " AND connamespace = current_schema()::regnamespace AND cardinality(conkey) <> 1"),
            0);
}

TEST_F(SchemaParityTest, SameIndexes) {
  // name → "table(columns) unique|plain [partial]", for the indexes the schema creates by name
  // (not those behind a primary key or UNIQUE constraint).
  std::map<std::string, std::string> lite, pg;
  for (const auto& i : Lite("SELECT name, tbl_name, sql FROM sqlite_schema WHERE type = 'index' "
                            "AND sql IS NOT NULL")) {
    std::string cols;
    for (const auto& c : Lite("SELECT name FROM pragma_index_info(?) ORDER BY seqno", i[0])) {
      cols += (cols.empty() ? "" : ",") + c[0];
    }
    const bool unique = i[2].starts_with("CREATE UNIQUE");
    const bool partial = i[2].find(" WHERE ") != std::string::npos;
    lite[i[0]] =
        i[1] + "(" + cols + ")" + (unique ? " unique" : " plain") + (partial ? " partial" : "");
  }
  for (const auto& i :
       Rows(*db_,
            "SELECT ic.relname, t.relname,"
            " (SELECT string_agg(a.attname, ',' ORDER BY k.o)"
            "    FROM unnest(x.indkey) WITH ORDINALITY AS k(n, o)"
            "    JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.n),"
            " x.indisunique::int, (x.indpred IS NOT NULL)::int"
            " FROM pg_index x JOIN pg_class ic ON ic.oid = x.indexrelid"
            " JOIN pg_class t ON t.oid = x.indrelid"
            " WHERE t.relnamespace = current_schema()::regnamespace"
            " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)",
            5)) {
    pg[i[0]] = i[1] + "(" + i[2] + ")" + (i[3] == "1" ? " unique" : " plain") +
               (i[4] == "1" ? " partial" : "");
  }
  EXPECT_GE(lite.size(), 15u);
  EXPECT_EQ(pg, lite);
}

}  // namespace
}  // namespace snapvol::catalog_internal
