// The PostgreSQL backend's pieces that need no server (catalog_postgres.h): `?` numbering,
// the SQLSTATE mapping, password redaction. Built into catalog_postgres_test (label pg).
#include <gtest/gtest.h>

#include <string>

#include "catalog/catalog_postgres.h"

namespace snapvol::catalog_internal {
namespace {

TEST(PostgresDialect, NumbersParametersOutsideLiteralsIdentifiersAndComments) {
  int n = -1;
  EXPECT_EQ(NumberParameters("SELECT a FROM t WHERE b = ? AND c IN (?, ?)", &n),
            "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)");
  EXPECT_EQ(n, 3);
  EXPECT_EQ(NumberParameters("SELECT '?', 'it''s ?', \"col?\", ? -- what?\n, ? /* ? */ , ?", &n),
            "SELECT '?', 'it''s ?', \"col?\", $1 -- what?\n, $2 /* ? */ , $3");
  EXPECT_EQ(n, 3);
  EXPECT_EQ(NumberParameters("SELECT 1", &n), "SELECT 1");
  EXPECT_EQ(n, 0);
  // An unterminated literal keeps the rest as it is.
  EXPECT_EQ(NumberParameters("SELECT ?, 'open ?", &n), "SELECT $1, 'open ?");
  EXPECT_EQ(n, 1);
}

TEST(PostgresDialect, ClassifiesSqlStates) {
  auto is = [](ErrorInfo i, ErrorCode code, bool retryable, Violation v) {
    return i.code == code && i.retryable == retryable && i.violation == v;
  };
  EXPECT_TRUE(is(ClassifySqlState("23505", "accounts_pkey", false), ErrorCode::kAlreadyExists,
                 false, Violation::kPrimaryKey));
  EXPECT_TRUE(is(ClassifySqlState("23505", "accounts_alias_key", false), ErrorCode::kAlreadyExists,
                 false, Violation::kUnique));
  EXPECT_TRUE(is(ClassifySqlState("23503", "volumes_account_id_fkey", false),
                 ErrorCode::kInvalidArgument, false, Violation::kForeignKey));
  EXPECT_TRUE(is(ClassifySqlState("23514", "quotas_kind_check", false), ErrorCode::kInvalidArgument,
                 false, Violation::kOther));
  EXPECT_TRUE(is(ClassifySqlState("23502", "", false), ErrorCode::kInvalidArgument, false,
                 Violation::kOther));
  for (const char* s : {"40001", "40P01", "55P03", "08006", "08001", "57P01", "57014"}) {
    EXPECT_TRUE(is(ClassifySqlState(s, "", false), ErrorCode::kIoError, true, Violation::kNone))
        << s;
  }
  EXPECT_TRUE(
      is(ClassifySqlState("53100", "", false), ErrorCode::kNoSpace, false, Violation::kNone));
  EXPECT_TRUE(
      is(ClassifySqlState("XX001", "", false), ErrorCode::kCorruption, false, Violation::kNone));
  EXPECT_TRUE(
      is(ClassifySqlState("XX002", "", false), ErrorCode::kCorruption, false, Violation::kNone));
  EXPECT_TRUE(
      is(ClassifySqlState("42601", "", false), ErrorCode::kInternal, false, Violation::kNone));
  EXPECT_TRUE(
      is(ClassifySqlState("42P01", "", false), ErrorCode::kInternal, false, Violation::kNone));
  EXPECT_TRUE(
      is(ClassifySqlState("22003", "", false), ErrorCode::kIoError, false, Violation::kNone));
  EXPECT_TRUE(
      is(ClassifySqlState("25P02", "", false), ErrorCode::kIoError, false, Violation::kNone));
  // A lost connection is retryable whatever the server said last.
  EXPECT_TRUE(is(ClassifySqlState("", "", true), ErrorCode::kIoError, true, Violation::kNone));
  EXPECT_TRUE(is(ClassifySqlState("42601", "", true), ErrorCode::kIoError, true, Violation::kNone));
}

TEST(PostgresDialect, RedactsPasswords) {
  EXPECT_EQ(RedactPassword("postgresql://snap:s3cret@db.example:5432/cat?sslmode=require"),
            "postgresql://snap@db.example:5432/cat?sslmode=require");
  EXPECT_EQ(RedactPassword("postgresql://snap@db/cat?password=s3cret&sslmode=require"),
            "postgresql://snap@db/cat?password=***&sslmode=require");
  EXPECT_EQ(RedactPassword("host=db user=snap password='s3 cret' dbname=cat"),
            "host=db user=snap password=*** dbname=cat");
  EXPECT_EQ(RedactPassword("postgresql://db/cat"), "postgresql://db/cat");
}

TEST(PostgresDialect, TellsStatementsThatMayWrite) {
  EXPECT_TRUE(MayWrite("INSERT INTO t VALUES (1)"));
  EXPECT_TRUE(MayWrite("  update t SET a = 1"));
  EXPECT_TRUE(MayWrite("\n\tDELETE FROM t WHERE a = ?"));
  EXPECT_TRUE(MayWrite("MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN DELETE"));
  EXPECT_TRUE(MayWrite("WITH gone AS (DELETE FROM t RETURNING a) SELECT count(*) FROM gone"));
  EXPECT_TRUE(MayWrite("(INSERT INTO t VALUES (1))"));
  EXPECT_FALSE(MayWrite("SELECT a FROM t"));
  EXPECT_FALSE(MayWrite("WITH x AS (SELECT 1) SELECT * FROM x"));
  // Names that hold a verb are not one.
  EXPECT_FALSE(MayWrite("WITH x AS (SELECT update_ms, deleted FROM inserts) SELECT * FROM x"));
  EXPECT_FALSE(MayWrite("BEGIN"));
  EXPECT_FALSE(MayWrite(""));
}

}  // namespace
}  // namespace snapvol::catalog_internal
