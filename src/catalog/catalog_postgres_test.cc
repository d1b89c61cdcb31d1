// The PostgreSQL backend (catalog_postgres.h) against a live server: binding and reading
// values, errors by SQLSTATE, cached statements, transactions across connections, the data
// version, the schema's migration and a connection killed under it. Run with `ctest -L pg`.
#include "catalog/catalog_postgres.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <string>
#include <thread>

#include "catalog/catalog_postgres_test_util.h"

namespace snapvol::catalog_internal {
namespace {

using testing_pg::PostgresTest;

TEST_F(PostgresTest, DescribesTheUrlWithoutThePassword) {
  const std::string password = url_.substr(url_.find(':', 13) + 1, 32);
  ASSERT_EQ(password.size(), 32u);
  EXPECT_NE(url_.find(password), std::string::npos);
  EXPECT_EQ(db_->Describe().find(password), std::string::npos) << db_->Describe();
  EXPECT_NE(db_->Describe().find("127.0.0.1"), std::string::npos);
  EXPECT_EQ(db_->backend(), Backend::kPostgres);
}

TEST_F(PostgresTest, BindsAndReadsInt64Extremes) {
  PG_ASSERT_OK(db_->Exec("CREATE TABLE t (k BIGINT PRIMARY KEY, v BIGINT)", "create"));
  const int64_t values[] = {std::numeric_limits<int64_t>::min(), -1, 0, 1,
                            std::numeric_limits<int64_t>::max()};
  auto insert = db_->Prepare("INSERT INTO t (k, v) VALUES (?, ?)", "insert");
  PG_ASSERT_OK(insert);
  for (int64_t v : values) {
    (*insert)->Reset();
    (*insert)->BindInt(1, v);
    (*insert)->BindInt(2, v);
    auto done = (*insert)->Step();
    PG_ASSERT_OK(done);
    EXPECT_FALSE(*done);
  }
  auto read = db_->Prepare("SELECT v, k + 0 FROM t WHERE k = ?", "read");
  PG_ASSERT_OK(read);
  for (int64_t v : values) {
    (*read)->Reset();
    (*read)->BindInt(1, v);
    auto row = (*read)->Step();
    PG_ASSERT_OK(row);
    ASSERT_TRUE(*row);
    EXPECT_EQ((*read)->Int(0), v);
    EXPECT_EQ((*read)->Int(1), v);
    EXPECT_EQ((*read)->Text(0), std::to_string(v));
    auto end = (*read)->Step();
    PG_ASSERT_OK(end);
    EXPECT_FALSE(*end);
  }
  // Integers are bound as bigint, so arithmetic past 2^31 works where an untyped parameter
  // would be taken for an int4.
  EXPECT_EQ(Int(*db_, "SELECT max(v) FROM t"), std::numeric_limits<int64_t>::max());
  auto sum = db_->Prepare("SELECT ? + 1", "sum");
  PG_ASSERT_OK(sum);
  (*sum)->BindInt(1, int64_t{1} << 40);
  auto row = (*sum)->Step();
  PG_ASSERT_OK(row);
  EXPECT_EQ((*sum)->Int(0), (int64_t{1} << 40) + 1);
}

TEST_F(PostgresTest, TextWithQuotesUtf8AndQuestionMarksInsideLiterals) {
  PG_ASSERT_OK(db_->Exec("CREATE TABLE t (\"key?\" TEXT PRIMARY KEY, v TEXT)", "create"));
  const std::string texts[] = {
      "it's \"quoted\" \\ back", "ünïcödé ☃ 日本語 🙂", "?", "$1", "", "-- /*"};
  auto insert =
      db_->Prepare("INSERT INTO t (\"key?\", v) VALUES (? || '?', ?) -- a comment?", "insert");
  PG_ASSERT_OK(insert);
  for (const std::string& s : texts) {
    (*insert)->Reset();
    (*insert)->BindText(1, s);
    (*insert)->BindText(2, s);
    PG_ASSERT_OK((*insert)->Step());
  }
  auto read = db_->Prepare("SELECT v, \"key?\", 'lit''?' FROM t WHERE \"key?\" = ? || '?'", "read");
  PG_ASSERT_OK(read);
  for (const std::string& s : texts) {
    (*read)->Reset();
    (*read)->BindText(1, s);
    auto row = (*read)->Step();
    PG_ASSERT_OK(row);
    ASSERT_TRUE(*row) << s;
    EXPECT_EQ((*read)->Text(0), s);
    EXPECT_EQ((*read)->Text(1), s + "?");
    EXPECT_EQ((*read)->Text(2), "lit'?");
  }
  EXPECT_EQ(Int(*db_, "SELECT length(v) FROM t WHERE v LIKE 'ü%'"), 15);  // characters, not bytes
}

TEST_F(PostgresTest, BlobsWithNulBytesAndNulls) {
  PG_ASSERT_OK(db_->Exec("CREATE TABLE t (k BIGINT PRIMARY KEY, b BYTEA, n BIGINT)", "create"));
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  const std::string blobs[] = {all, std::string("\0\0\0", 3), std::string(32, '\0') + "x", ""};
  auto insert = db_->Prepare("INSERT INTO t (k, b) VALUES (?, ?)", "insert");
  PG_ASSERT_OK(insert);
  for (int i = 0; i < 4; ++i) {
    (*insert)->Reset();
    (*insert)->BindInt(1, i);
    (*insert)->BindBlob(2, blobs[i]);
    PG_ASSERT_OK((*insert)->Step());
  }
  auto read = db_->Prepare("SELECT b, length(b), n FROM t WHERE k = ?", "read");
  PG_ASSERT_OK(read);
  for (int i = 0; i < 4; ++i) {
    (*read)->Reset();
    (*read)->BindInt(1, i);
    auto row = (*read)->Step();
    PG_ASSERT_OK(row);
    ASSERT_TRUE(*row);
    EXPECT_EQ((*read)->Blob(0), blobs[i]) << i;
    EXPECT_EQ((*read)->Int(1), static_cast<int64_t>(blobs[i].size()));
    EXPECT_FALSE((*read)->IsNull(0));
    EXPECT_TRUE((*read)->IsNull(2));
    EXPECT_EQ((*read)->Int(2), 0);  // NULL reads as 0
  }
  // A blob compares as bytes on the server.
  auto find = db_->Prepare("SELECT k FROM t WHERE b = ?", "find");
  PG_ASSERT_OK(find);
  (*find)->BindBlob(1, blobs[2]);
  auto row = (*find)->Step();
  PG_ASSERT_OK(row);
  ASSERT_TRUE(*row);
  EXPECT_EQ((*find)->Int(0), 2);
}

TEST_F(PostgresTest, ReadsBooleansAsZeroOneAndRefusesNonIntegers) {
  auto st = db_->Prepare("SELECT 2 > 1, 1 > 2, 'x1'", "read");
  PG_ASSERT_OK(st);
  auto row = (*st)->Step();
  PG_ASSERT_OK(row);
  ASSERT_TRUE(*row);
  EXPECT_EQ((*st)->Int(0), 1);
  EXPECT_EQ((*st)->Int(1), 0);
  EXPECT_EQ((*st)->Int(2), 0);
  auto next = (*st)->Step();  // reports the failed read
  ASSERT_FALSE(next.has_value());
  EXPECT_EQ(next.error().code(), ErrorCode::kInternal);
  EXPECT_NE(next.error().message().find("not a 64-bit integer"), std::string::npos);
}

TEST_F(PostgresTest, ErrorsByConstraintAndSqlState) {
  PG_ASSERT_OK(MigratePostgres(*db_));
  auto run = [&](const std::string& sql, const std::string& what) {
    auto st = db_->Prepare(sql, what);
    EXPECT_TRUE(st.has_value());
    auto r = (*st)->Step();
    return std::make_pair(r, (*st)->violation());
  };
  auto [ok, v0] =
      run("INSERT INTO accounts (account_id, alias, created_ms) VALUES ('111111111111', 'one', 1)",
          "add one");
  PG_ASSERT_OK(ok);
  EXPECT_EQ(v0, Violation::kNone);

  auto [pk, v1] =
      run("INSERT INTO accounts (account_id, alias, created_ms) VALUES ('111111111111', 'two', 1)",
          "add account again");
  ASSERT_FALSE(pk.has_value());
  EXPECT_EQ(pk.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(v1, Violation::kPrimaryKey);
  EXPECT_NE(pk.error().message().find("add account again: "), std::string::npos)
      << pk.error().message();
  EXPECT_NE(pk.error().message().find("duplicate key"), std::string::npos) << pk.error().message();

  auto [uq, v2] =
      run("INSERT INTO accounts (account_id, alias, created_ms) VALUES ('222222222222', 'one', 1)",
          "add alias again");
  ASSERT_FALSE(uq.has_value());
  EXPECT_EQ(uq.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(v2, Violation::kUnique);

  auto [fk, v3] =
      run("INSERT INTO instances (instance_id, account_id, name, created_ms)"
          " VALUES ('i-1', '999999999999', '', 1)",
          "add instance");
  ASSERT_FALSE(fk.has_value());
  EXPECT_EQ(fk.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(v3, Violation::kForeignKey);
  EXPECT_NE(fk.error().message().find("foreign key"), std::string::npos) << fk.error().message();

  // The GLOB checks as regexes: 12 digits or 'all'.
  for (const char* grantee : {"all", "123456789012"}) {
    auto [g, vg] =
        run(std::string("INSERT INTO snapshot_permissions VALUES ('snap-1', '") + grantee + "')",
            "grant");
    PG_ASSERT_OK(g);
  }
  for (const char* grantee :
       {"12345678901a", "1234567890123", "12345678901", "", "ALL", "12345678901\n"}) {
    auto [g, vg] =
        run(std::string("INSERT INTO snapshot_permissions VALUES ('snap-1', '") + grantee + "')",
            "grant");
    ASSERT_FALSE(g.has_value()) << grantee;
    EXPECT_EQ(g.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(vg, Violation::kOther);
  }
  auto [nn, v4] = run("INSERT INTO iam_policies (name, document, created_ms) VALUES ('p', NULL, 1)",
                      "add policy");
  ASSERT_FALSE(nn.has_value());
  EXPECT_EQ(nn.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(v4, Violation::kOther);

  auto [syntax, v5] = run("SELEC 1", "bad sql");
  ASSERT_FALSE(syntax.has_value());
  EXPECT_EQ(syntax.error().code(), ErrorCode::kInternal);
  EXPECT_NE(syntax.error().message().find("42601"), std::string::npos) << syntax.error().message();
  EXPECT_EQ(v5, Violation::kNone);
  auto [missing, v6] = run("SELECT * FROM no_such_table", "missing table");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), ErrorCode::kInternal);
}

TEST_F(PostgresTest, ChangesCountsRowsOfTheLastWrite) {
  PG_ASSERT_OK(db_->Exec("CREATE TABLE t (k BIGINT PRIMARY KEY, v BIGINT)", "create"));
  PG_ASSERT_OK(db_->Exec("INSERT INTO t VALUES (1, 0), (2, 0), (3, 1)", "insert"));
  EXPECT_EQ(db_->Changes(), 3);
  auto update = db_->Prepare("UPDATE t SET v = v + 1 WHERE v = ?", "update");
  PG_ASSERT_OK(update);
  (*update)->BindInt(1, 0);
  PG_ASSERT_OK((*update)->Step());
  EXPECT_EQ(db_->Changes(), 2);
  EXPECT_EQ(Int(*db_, "SELECT count(*) FROM t"), 3);  // a read leaves it alone
  EXPECT_EQ(db_->Changes(), 2);
  PG_ASSERT_OK(db_->Exec("DELETE FROM t WHERE k > 100", "delete nothing"));
  EXPECT_EQ(db_->Changes(), 0);
  auto upsert =
      db_->Prepare("INSERT INTO t VALUES (?, 5) ON CONFLICT (k) DO NOTHING RETURNING k", "upsert");
  PG_ASSERT_OK(upsert);
  (*upsert)->BindInt(1, 4);
  auto row = (*upsert)->Step();
  PG_ASSERT_OK(row);
  EXPECT_TRUE(*row);
  EXPECT_EQ((*upsert)->Int(0), 4);
  EXPECT_EQ(db_->Changes(), 1);
}

TEST_F(PostgresTest, CachedStatementsArePreparedOnceAndReusedAfterRelease) {
  PG_ASSERT_OK(db_->Exec("CREATE TABLE t (k BIGINT PRIMARY KEY, v TEXT)", "create"));
  const std::string sql = "INSERT INTO t (k, v) VALUES (?, ?) RETURNING k * 2";
  StatementImpl* first = nullptr;
  for (int i = 0; i < 5; ++i) {
    auto st = db_->PrepareCached(sql, "insert");
    PG_ASSERT_OK(st);
    if (first == nullptr) first = *st;
    EXPECT_EQ(*st, first);
    (*st)->BindInt(1, i);
    (*st)->BindText(2, "v" + std::to_string(i));
    auto row = (*st)->Step();
    PG_ASSERT_OK(row);
    ASSERT_TRUE(*row);
    EXPECT_EQ((*st)->Int(0), 2 * i);
    db_->Release(*st);
  }
  EXPECT_EQ(Int(*db_, "SELECT count(*) FROM pg_prepared_statements"), 1);
  EXPECT_EQ(Int(*db_, "SELECT count(*) FROM t"), 5);
  // A second SQL text is a second statement.
  auto other = db_->PrepareCached("SELECT v FROM t WHERE k = ?", "read");
  PG_ASSERT_OK(other);
  EXPECT_NE(*other, first);
  (*other)->BindInt(1, 3);
  auto row = (*other)->Step();
  PG_ASSERT_OK(row);
  ASSERT_TRUE(*row);
  EXPECT_EQ((*other)->Text(0), "v3");
  db_->Release(*other);
  EXPECT_EQ(Int(*db_, "SELECT count(*) FROM pg_prepared_statements"), 2);
}

TEST_F(PostgresTest, SecondWriterWaitsUntilTheFirstCommits) {
  PG_ASSERT_OK(db_->Exec("CREATE TABLE t (k BIGINT PRIMARY KEY)", "create"));
  auto second = Open();
  auto watcher = Open();
  ASSERT_TRUE(second && watcher);
  PG_ASSERT_OK(db_->Begin(/*write=*/true));
  PG_ASSERT_OK(db_->Exec("INSERT INTO t VALUES (1)", "insert 1"));

  std::atomic<bool> second_began{false};
  int64_t seen_by_second = -1;
  std::thread writer([&] {
    auto began = second->Begin(/*write=*/true);
    second_began = began.has_value();
    if (began) {
      seen_by_second = Int(*second, "SELECT count(*) FROM t");
      second->Rollback();
    }
  });
  // Wait (bounded) until the second writer is queued on the advisory lock on the server.
  int64_t waiting = 0;
  for (int i = 0; i < 600 && waiting == 0; ++i) {
    waiting =
        Int(*watcher, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted");
    if (waiting == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(waiting, 1) << "the second writer never waited for the lock";
  EXPECT_FALSE(second_began.load());
  PG_ASSERT_OK(db_->Exec("INSERT INTO t VALUES (2)", "insert 2"));
  PG_ASSERT_OK(db_->Commit());
  writer.join();
  EXPECT_TRUE(second_began.load());
  EXPECT_EQ(seen_by_second, 2);  // it began after both of the first writer's rows committed
}

TEST_F(PostgresTest, ReadTransactionSeesOneStateWhileAWriterCommits) {
  PG_ASSERT_OK(
      db_->Exec("CREATE TABLE t (k BIGINT PRIMARY KEY); INSERT INTO t VALUES (1)", "create"));
  auto writer = Open();
  ASSERT_TRUE(writer);
  PG_ASSERT_OK(db_->Begin(/*write=*/false));
  EXPECT_TRUE(db_->InTransaction());
  EXPECT_EQ(Int(*db_, "SELECT count(*) FROM t"), 1);
  PG_ASSERT_OK(writer->Begin(/*write=*/true));  // readers do not hold the write lock
  PG_ASSERT_OK(writer->Exec("INSERT INTO t VALUES (2)", "insert"));
  PG_ASSERT_OK(writer->Commit());
  EXPECT_EQ(Int(*writer, "SELECT count(*) FROM t"), 2);
  EXPECT_EQ(Int(*db_, "SELECT count(*) FROM t"), 1);
  // A reader cannot write, nor nest a writer.
  auto nested = db_->Begin(/*write=*/true);
  ASSERT_FALSE(nested.has_value());
  EXPECT_EQ(nested.error().code(), ErrorCode::kInternal);
  PG_ASSERT_OK(db_->Commit());
  EXPECT_FALSE(db_->InTransaction());
  EXPECT_EQ(Int(*db_, "SELECT count(*) FROM t"), 2);
}

TEST_F(PostgresTest, FailedStatementEndsTheTransactionAndRollbackRecovers) {
  PG_ASSERT_OK(db_->Exec("CREATE TABLE t (k BIGINT PRIMARY KEY)", "create"));
  EXPECT_FALSE(db_->InTransaction());
  PG_ASSERT_OK(db_->Begin(/*write=*/true));
  EXPECT_TRUE(db_->InTransaction());
  PG_ASSERT_OK(db_->Exec("INSERT INTO t VALUES (1)", "insert 1"));
  auto dup = db_->Exec("INSERT INTO t VALUES (1)", "insert 1 again");
  ASSERT_FALSE(dup.has_value());
  EXPECT_EQ(dup.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_FALSE(db_->InTransaction());
  // Committing now would silently roll back: it is an error instead, and ends the transaction.
  auto commit = db_->Commit();
  ASSERT_FALSE(commit.has_value());
  EXPECT_EQ(commit.error().code(), ErrorCode::kIoError);
  EXPECT_TRUE(commit.error().retryable());
  db_->Rollback();  // a no-op now, as on every error path
  EXPECT_EQ(Int(*db_, "SELECT count(*) FROM t"), 0);

  // The same with Rollback right after the failure: the connection is usable again.
  PG_ASSERT_OK(db_->Begin(/*write=*/true));
  PG_ASSERT_OK(db_->Exec("INSERT INTO t VALUES (5)", "insert 5"));
  ASSERT_FALSE(db_->Exec("INSERT INTO nowhere VALUES (1)", "bad insert").has_value());
  EXPECT_FALSE(db_->InTransaction());
  db_->Rollback();
  PG_ASSERT_OK(db_->Begin(/*write=*/true));
  PG_ASSERT_OK(db_->Exec("INSERT INTO t VALUES (2)", "insert 2"));
  PG_ASSERT_OK(db_->Commit());
  EXPECT_EQ(Text(*db_, "SELECT string_agg(k::text, ',' ORDER BY k) FROM t"), "2");

  // A savepoint whose statement failed does not commit either (retryably, as the whole
  // transaction's would not), and rolling it back lets the outer transaction commit.
  PG_ASSERT_OK(db_->Begin(/*write=*/true));
  PG_ASSERT_OK(db_->Exec("INSERT INTO t VALUES (3)", "insert 3"));
  PG_ASSERT_OK(db_->Begin(/*write=*/true));
  ASSERT_FALSE(db_->Exec("INSERT INTO t VALUES (3)", "insert 3 again").has_value());
  auto release = db_->Commit();
  ASSERT_FALSE(release.has_value());
  EXPECT_EQ(release.error().code(), ErrorCode::kIoError);
  EXPECT_TRUE(release.error().retryable()) << release.error().ToString();
  db_->Rollback();
  EXPECT_TRUE(db_->InTransaction());
  PG_ASSERT_OK(db_->Commit());
  EXPECT_EQ(Text(*db_, "SELECT string_agg(k::text, ',' ORDER BY k) FROM t"), "2,3");
}

TEST_F(PostgresTest, NestedRollbackKeepsTheOuterWork) {
  PG_ASSERT_OK(db_->Exec("CREATE TABLE t (k BIGINT PRIMARY KEY)", "create"));
  PG_ASSERT_OK(db_->Begin(/*write=*/true));
  PG_ASSERT_OK(db_->Exec("INSERT INTO t VALUES (1)", "insert 1"));
  PG_ASSERT_OK(db_->Begin(/*write=*/true));
  PG_ASSERT_OK(db_->Exec("INSERT INTO t VALUES (2)", "insert 2"));
  ASSERT_FALSE(db_->Exec("INSERT INTO t VALUES (1)", "insert 1 again").has_value());
  EXPECT_FALSE(db_->InTransaction());
  db_->Rollback();  // to the savepoint
  EXPECT_TRUE(db_->InTransaction());
  PG_ASSERT_OK(db_->Exec("INSERT INTO t VALUES (3)", "insert 3"));
  PG_ASSERT_OK(db_->Begin(/*read, nested=*/false));
  PG_ASSERT_OK(db_->Exec("INSERT INTO t VALUES (4)", "insert 4"));
  PG_ASSERT_OK(db_->Commit());  // releases the savepoint, keeps 4
  PG_ASSERT_OK(db_->Commit());
  EXPECT_FALSE(db_->InTransaction());
  EXPECT_EQ(Text(*db_, "SELECT string_agg(k::text, ',' ORDER BY k) FROM t"), "1,3,4");
}

// A relaxed commit (heartbeats, progress) is relaxed for its own transaction only, never for a
// later one, and never for the outer transaction of a savepoint; outside a write transaction
// it is refused.
TEST_F(PostgresTest, RelaxedCommitDurabilityEndsWithItsTransaction) {
  // The test cluster commits without waiting for its disk; a production server does.
  PG_ASSERT_OK(db_->Exec("SET synchronous_commit = on", "commit durably"));
  EXPECT_FALSE(db_->RelaxCommitDurability().has_value());  // no transaction
  PG_ASSERT_OK(db_->Begin(/*write=*/false));
  EXPECT_FALSE(db_->RelaxCommitDurability().has_value());  // a read transaction
  db_->Rollback();
  EXPECT_EQ(Text(*db_, "SHOW synchronous_commit"), "on");
  PG_ASSERT_OK(db_->Begin(/*write=*/true));
  PG_ASSERT_OK(db_->Begin(/*write=*/true));
  PG_ASSERT_OK(db_->RelaxCommitDurability());  // in a savepoint: the outer commit stays durable
  EXPECT_EQ(Text(*db_, "SHOW synchronous_commit"), "on");
  PG_ASSERT_OK(db_->Commit());
  PG_ASSERT_OK(db_->Commit());
  PG_ASSERT_OK(db_->Begin(/*write=*/true));
  PG_ASSERT_OK(db_->RelaxCommitDurability());
  EXPECT_EQ(Text(*db_, "SHOW synchronous_commit"), "off");
  PG_ASSERT_OK(db_->Commit());
  EXPECT_EQ(Text(*db_, "SHOW synchronous_commit"), "on");
  PG_ASSERT_OK(db_->Begin(/*write=*/true));
  EXPECT_EQ(Text(*db_, "SHOW synchronous_commit"), "on");
  db_->Rollback();
}

TEST_F(PostgresTest, DataVersionChangesWhenAnotherConnectionCommitsAWrite) {
  PG_ASSERT_OK(MigratePostgres(*db_));
  auto other = Open();
  ASSERT_TRUE(other);
  auto v0 = db_->DataVersion();
  PG_ASSERT_OK(v0);
  // A read transaction, and a write transaction rolled back, change nothing.
  PG_ASSERT_OK(other->Begin(false));
  EXPECT_EQ(Int(*other, "SELECT count(*) FROM accounts"), 0);
  PG_ASSERT_OK(other->Commit());
  PG_ASSERT_OK(other->Begin(true));
  PG_ASSERT_OK(other->Exec("INSERT INTO iam_policies VALUES ('p', '{}', 1)", "add policy"));
  other->Rollback();
  auto v1 = db_->DataVersion();
  PG_ASSERT_OK(v1);
  EXPECT_EQ(*v1, *v0);
  PG_ASSERT_OK(other->Begin(true));
  PG_ASSERT_OK(other->Exec("INSERT INTO iam_policies VALUES ('p', '{}', 1)", "add policy"));
  PG_ASSERT_OK(other->Commit());
  auto v2 = db_->DataVersion();
  PG_ASSERT_OK(v2);
  EXPECT_NE(*v2, *v0);
  auto v3 = other->DataVersion();
  PG_ASSERT_OK(v3);
  EXPECT_EQ(*v3, *v2);
}

TEST_F(PostgresTest, MigrateTwiceIsANoOpAndANewerVersionIsRefused) {
  PG_ASSERT_OK(MigratePostgres(*db_));
  auto version = PostgresSchemaVersion(*db_);
  PG_ASSERT_OK(version);
  EXPECT_EQ(*version, kPostgresSchemaVersion);
  const int64_t tables =
      Int(*db_, "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()");
  EXPECT_EQ(tables, 38);  // 36 of the catalog, snapvol_schema and snapvol_data_version
  PG_ASSERT_OK(db_->Exec("INSERT INTO iam_policies VALUES ('kept', '{}', 1)", "add policy"));
  auto v0 = db_->DataVersion();
  PG_ASSERT_OK(v0);

  auto again = Open();
  ASSERT_TRUE(again);
  PG_ASSERT_OK(MigratePostgres(*again));
  EXPECT_EQ(Int(*db_, "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"),
            tables);
  EXPECT_EQ(Int(*db_, "SELECT count(*) FROM iam_policies WHERE name = 'kept'"), 1);
  EXPECT_EQ(Int(*db_, "SELECT count(*) FROM usage_state"), 1);  // seeded once
  auto v1 = db_->DataVersion();
  PG_ASSERT_OK(v1);
  EXPECT_EQ(*v1, *v0);  // it did not even take the write lock

  const std::string next = std::to_string(kPostgresSchemaVersion + 1);
  PG_ASSERT_OK(db_->Exec("UPDATE snapvol_schema SET version = " + next, "pretend a newer snapvol"));
  auto newer = MigratePostgres(*again);
  ASSERT_FALSE(newer.has_value());
  EXPECT_EQ(newer.error().code(), ErrorCode::kUnsupported);
  EXPECT_NE(newer.error().message().find("catalog schema version " + next +
                                         " is newer than this snapvol supports (up to " +
                                         std::to_string(kPostgresSchemaVersion) + "); upgrade snapvol"),
            std::string::npos)
      << newer.error().message();
  EXPECT_EQ(newer.error().message().find(url_.substr(url_.find(':', 13) + 1, 32)),
            std::string::npos);
}

TEST_F(PostgresTest, MigrateRefusesASchemaThatIsNotACatalog) {
  PG_ASSERT_OK(db_->Exec("CREATE TABLE something_else (k BIGINT)", "create"));
  auto r = MigratePostgres(*db_);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(Int(*db_, "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"), 1);
}

TEST_F(PostgresTest, KilledConnectionGivesARetryableErrorAndTheNextCallReconnects) {
  PG_ASSERT_OK(db_->Exec("CREATE TABLE t (k BIGINT PRIMARY KEY)", "create"));
  auto killer = Open();
  ASSERT_TRUE(killer);
  auto cached = db_->PrepareCached("SELECT count(*) FROM t WHERE k > ?", "count");
  PG_ASSERT_OK(cached);
  (*cached)->BindInt(1, 0);
  PG_ASSERT_OK((*cached)->Step());
  db_->Release(*cached);

  // Killed inside a transaction: the statement fails, retryably, and the transaction is gone.
  const int64_t pid = Int(*db_, "SELECT pg_backend_pid()");
  PG_ASSERT_OK(db_->Begin(/*write=*/true));
  PG_ASSERT_OK(db_->Exec("INSERT INTO t VALUES (1)", "insert 1"));
  EXPECT_EQ(Int(*killer, "SELECT pg_terminate_backend(" + std::to_string(pid) + ", 10000)::int"),
            1);
  auto lost = db_->Exec("INSERT INTO t VALUES (2)", "insert 2");
  ASSERT_FALSE(lost.has_value());
  EXPECT_EQ(lost.error().code(), ErrorCode::kIoError);
  EXPECT_TRUE(lost.error().retryable()) << lost.error().ToString();
  EXPECT_NE(lost.error().message().find("insert 2"), std::string::npos);
  EXPECT_FALSE(db_->InTransaction());
  auto commit = db_->Commit();
  ASSERT_FALSE(commit.has_value());
  EXPECT_TRUE(commit.error().retryable());
  db_->Rollback();

  // The retry works on a new session: cached statements are prepared again.
  PG_ASSERT_OK(db_->Begin(/*write=*/true));
  EXPECT_NE(Int(*db_, "SELECT pg_backend_pid()"), pid);
  PG_ASSERT_OK(db_->Exec("INSERT INTO t VALUES (2)", "insert 2"));
  PG_ASSERT_OK(db_->Commit());
  auto again = db_->PrepareCached("SELECT count(*) FROM t WHERE k > ?", "count");
  PG_ASSERT_OK(again);
  (*again)->BindInt(1, 0);
  auto row = (*again)->Step();
  PG_ASSERT_OK(row);
  ASSERT_TRUE(*row);
  EXPECT_EQ((*again)->Int(0), 1);  // 1 was lost with its transaction
  db_->Release(*again);

  // Killed between statements: one retryable failure, then the next call reconnects.
  const int64_t pid2 = Int(*db_, "SELECT pg_backend_pid()");
  EXPECT_EQ(Int(*killer, "SELECT pg_terminate_backend(" + std::to_string(pid2) + ", 10000)::int"),
            1);
  auto st = db_->Prepare("SELECT 1", "ping");
  PG_ASSERT_OK(st);
  auto failed = (*st)->Step();
  ASSERT_FALSE(failed.has_value());
  EXPECT_TRUE(failed.error().retryable()) << failed.error().ToString();
  EXPECT_EQ(Int(*db_, "SELECT 7"), 7);
}

TEST_F(PostgresTest, TimeoutsAreBoundedAndRetryable) {
  EXPECT_EQ(Text(*db_, "SHOW statement_timeout"), "30s");
  EXPECT_EQ(Text(*db_, "SHOW application_name"), "snapvol");
  EXPECT_EQ(Text(*db_, "SHOW client_encoding"), "UTF8");
  // A URL that sets its own statement timeout keeps it.
  const std::string sep = url_.find('?') == std::string::npos ? "?" : "&";
  auto quick = Open(url_ + sep + "options=-c%20statement_timeout%3D300");
  ASSERT_TRUE(quick);
  EXPECT_EQ(Text(*quick, "SHOW statement_timeout"), "300ms");
  auto slow = quick->Exec("SELECT pg_sleep(5)", "sleep");
  ASSERT_FALSE(slow.has_value());
  EXPECT_EQ(slow.error().code(), ErrorCode::kIoError);
  EXPECT_TRUE(slow.error().retryable());
  // Waiting for the write lock is bounded the same way.
  PG_ASSERT_OK(db_->Begin(/*write=*/true));
  auto blocked = quick->Begin(/*write=*/true);
  ASSERT_FALSE(blocked.has_value());
  EXPECT_TRUE(blocked.error().retryable()) << blocked.error().ToString();
  EXPECT_FALSE(quick->InTransaction());
  db_->Rollback();
  PG_ASSERT_OK(quick->Begin(/*write=*/true));
  PG_ASSERT_OK(quick->Commit());
}

TEST_F(PostgresTest, OpenRefusesAWrongPasswordAndReportsAnUnreachableServer) {
  const size_t colon = url_.find(':', 13);
  const size_t at = url_.find('@');
  ASSERT_TRUE(colon != std::string::npos && at != std::string::npos);
  const std::string wrong = url_.substr(0, colon + 1) + "wrong" + url_.substr(at);
  auto denied = OpenPostgres(wrong);
  ASSERT_FALSE(denied.has_value());
  EXPECT_EQ(denied.error().code(), ErrorCode::kUnauthorized) << denied.error().ToString();
  auto nobody = OpenPostgres("postgresql://snapvol:x@127.0.0.1:1/snapvol");
  ASSERT_FALSE(nobody.has_value());
  EXPECT_EQ(nobody.error().code(), ErrorCode::kIoError);
  EXPECT_TRUE(nobody.error().retryable());
  EXPECT_EQ(nobody.error().message().find(":x@"), std::string::npos) << nobody.error().message();
  auto malformed = OpenPostgres("postgresql://[::1");
  ASSERT_FALSE(malformed.has_value());
  EXPECT_EQ(malformed.error().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace snapvol::catalog_internal
