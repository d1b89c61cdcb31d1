// The catalog: opening, schema versions and damage, accounts and policy attachments,
// transactions and concurrency. Records: catalog_records_test.cc; keys, instances and pages:
// catalog_keys_test.cc.
#include "catalog/catalog.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <future>
#include <limits>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "catalog/catalog_test_fixture.h"

namespace snapvol {
namespace {

using catalog_testing::CatalogTest;
using catalog_testing::MakeSnapshot;
using catalog_testing::MakeVolume;
using catalog_testing::RawQuery;
using catalog_testing::StoredSchemaVersion;
using catalog_testing::kT0;


TEST_F(CatalogTest, OpenCreatesSchemaAndDefaultAccount) {
  auto c = Open();
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->SchemaVersion(), Catalog::LatestSchemaVersion());
  EXPECT_GE(Catalog::LatestSchemaVersion(), 1);
  auto acct = c->GetAccount(kDefaultAccountId);
  ASSERT_TRUE(acct) << acct.error().ToString();
  EXPECT_EQ(acct->alias, "default");
  EXPECT_EQ(acct->created_ms, kT0);
}

TEST_F(CatalogTest, SqliteWalModeIsOn) {
  auto c = Open();
  ASSERT_NE(c, nullptr);
  // journal_mode=WAL is persistent, so another connection sees it; a -wal file exists while
  // the catalog is open.
  EXPECT_EQ(RawQuery(path_, "PRAGMA journal_mode"), "wal");
  ASSERT_TRUE(c->InsertVolume(MakeVolume()));
  EXPECT_TRUE(std::filesystem::exists(path_ + "-wal"));
}

TEST_F(CatalogTest, ForeignKeysAreEnforced) {
  auto c = Open();
  ASSERT_NE(c, nullptr);
  auto st = c->InsertVolume(MakeVolume("999999999999"));
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(st.error().message().find("999999999999"), std::string::npos);
  auto snap =
      c->InsertSnapshot(MakeSnapshot(NewVolumeId(), kT0, SnapshotState::kPending, "999999999999"));
  ASSERT_FALSE(snap);
  EXPECT_EQ(snap.error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(CatalogTest, ReopenIsIdempotent) {
  VolumeRecord v = MakeVolume();
  std::string account_id;
  {
    auto c = Open();
    ASSERT_NE(c, nullptr);
    clock_.Advance(1);  // listed after the default account
    auto a = c->CreateAccount("team-a");
    ASSERT_TRUE(a);
    account_id = a->account_id;
    ASSERT_TRUE(c->InsertVolume(v));
  }
  for (int i = 0; i < 3; ++i) {
    clock_.Advance(1000);
    auto c = Open();
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->SchemaVersion(), Catalog::LatestSchemaVersion());
    auto accounts = c->ListAccounts();
    ASSERT_TRUE(accounts);
    ASSERT_EQ(accounts->size(), 2u);  // the default account is not created twice
    EXPECT_EQ((*accounts)[0].account_id, kDefaultAccountId);
    EXPECT_EQ((*accounts)[0].created_ms, kT0);
    EXPECT_EQ((*accounts)[1].account_id, account_id);
    auto got = c->GetVolume(v.volume_id);
    ASSERT_TRUE(got);
    EXPECT_EQ(*got, v);
  }
  EXPECT_EQ(StoredSchemaVersion(path_), std::to_string(Catalog::LatestSchemaVersion()));
}

TEST_F(CatalogTest, SqliteNewerSchemaVersionIsRefused) {
  { ASSERT_NE(Open(), nullptr); }
  RawQuery(path_, "PRAGMA user_version = 99");
  auto c = Catalog::Open(path_, &clock_);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code(), ErrorCode::kUnsupported);
  EXPECT_NE(c.error().message().find("99"), std::string::npos) << c.error().message();
  EXPECT_NE(c.error().message().find(path_), std::string::npos) << c.error().message();
  EXPECT_EQ(RawQuery(path_, "PRAGMA user_version"), "99");  // left untouched
}

TEST_F(CatalogTest, SqliteOtherSqliteDatabaseIsRefused) {
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE accounts (x)", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  auto c = Catalog::Open(path_, &clock_);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(c.error().message().find("not a snapvol catalog"), std::string::npos);
}

TEST_F(CatalogTest, SqliteGarbageFileIsCorruptionWithRebuildHint) {
  { std::ofstream(path_) << std::string(8192, 'x'); }
  auto c = Catalog::Open(path_, &clock_);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code(), ErrorCode::kCorruption) << c.error().ToString();
  EXPECT_NE(c.error().message().find("catalog database is damaged"), std::string::npos);
  EXPECT_NE(c.error().message().find("snapvol catalog rebuild"), std::string::npos);
  EXPECT_NE(c.error().message().find(path_), std::string::npos);
}

TEST_F(CatalogTest, SqliteDamagedPagesAreCorruptionWithRebuildHint) {
  {
    auto c = Open();
    ASSERT_NE(c, nullptr);
    std::string vol = NewVolumeId();
    for (int i = 0; i < 200; ++i) {
      SnapshotRecord s = MakeSnapshot(vol, kT0 + i);
      s.description = std::string(200, 'd');
      s.tags = {{"Name", "n" + std::to_string(i)}};
      ASSERT_TRUE(c->InsertSnapshot(s));
    }
  }  // closing the last connection checkpoints the WAL into the main file
  auto size = std::filesystem::file_size(path_);
  ASSERT_GT(size, 8 * 4096u);
  WriteGarbage(4096, static_cast<size_t>(size - 4096));  // keep page 1 (header, schema)

  // Open reads only some pages, so the damage may surface there or at the first full scan.
  auto c = Catalog::Open(path_, &clock_);
  Error err = c.has_value() ? Error(ErrorCode::kInternal, "damage went unnoticed") : c.error();
  if (c) {
    auto list = (*c)->ListSnapshots({});
    ASSERT_FALSE(list);
    err = list.error();
  }
  EXPECT_EQ(err.code(), ErrorCode::kCorruption) << err.ToString();
  EXPECT_NE(err.message().find("snapvol catalog rebuild"), std::string::npos) << err.message();
}

TEST_F(CatalogTest, SqliteUnopenablePathIsIoError) {
  auto c = Catalog::Open(dir_ + "/missing/catalog.db", &clock_);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code(), ErrorCode::kIoError);
  EXPECT_NE(c.error().message().find(dir_ + "/missing/catalog.db"), std::string::npos);
}

// --- accounts ---

TEST_F(CatalogTest, Accounts) {
  auto c = Open();
  ASSERT_NE(c, nullptr);
  clock_.Advance(5);
  auto a = c->CreateAccount("team-a");
  ASSERT_TRUE(a) << a.error().ToString();
  EXPECT_TRUE(IsAccountId(a->account_id));
  EXPECT_NE(a->account_id, kDefaultAccountId);
  EXPECT_EQ(a->alias, "team-a");
  EXPECT_EQ(a->created_ms, kT0 + 5);
  auto got = c->GetAccount(a->account_id);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, *a);

  auto dup = c->CreateAccount("team-a");
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code(), ErrorCode::kAlreadyExists);
  auto dup_default = c->CreateAccount("default");
  ASSERT_FALSE(dup_default);
  EXPECT_EQ(dup_default.error().code(), ErrorCode::kAlreadyExists);

  for (const std::string& bad :
       {std::string(), std::string("has space"), std::string(64, 'a'), std::string("semi;colon")}) {
    auto r = c->CreateAccount(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument) << bad;
  }
  clock_.Advance(5);
  EXPECT_TRUE(c->CreateAccount(std::string(63, 'a')));

  auto missing = c->GetAccount("123456789012");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message().find("123456789012"), std::string::npos);

  auto all = c->ListAccounts();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].account_id, kDefaultAccountId);
  EXPECT_EQ((*all)[1], *a);
}

TEST_F(CatalogTest, PolicyAttachments) {
  auto c = Open();
  ASSERT_NE(c, nullptr);
  auto a = c->CreateAccount("team-a");
  ASSERT_TRUE(a);
  auto names = [&](const std::string& id) {
    std::vector<std::string> out;
    auto attached = *c->ListPolicyAttachments(id);
    for (const auto& at : attached) out.push_back(at.policy_name);
    return out;
  };
  // New accounts (and the default one) start as members; the admin flag swaps the built-in.
  EXPECT_EQ(names(a->account_id), std::vector<std::string>{"member"});
  EXPECT_EQ(names(kDefaultAccountId), std::vector<std::string>{"member"});
  ASSERT_TRUE(c->SetAccountAdmin(a->account_id, true));
  EXPECT_EQ(names(a->account_id), std::vector<std::string>{"administrator"});
  ASSERT_TRUE(c->SetAccountAdmin(a->account_id, false));
  EXPECT_EQ(names(a->account_id), std::vector<std::string>{"member"});

  ASSERT_TRUE(c->PutIamPolicy({"ro", R"({"Statement":[]})", kT0}));
  ASSERT_TRUE(c->AttachPolicy(a->account_id, "ro"));
  auto again = c->AttachPolicy(a->account_id, "ro");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), ErrorCode::kAlreadyExists);
  auto nobody = c->AttachPolicy("123456789012", "ro");
  ASSERT_FALSE(nobody);
  EXPECT_EQ(nobody.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(names(a->account_id), (std::vector<std::string>{"member", "ro"}));
  auto in_use = c->DeleteIamPolicy("ro");
  ASSERT_FALSE(in_use);
  EXPECT_EQ(in_use.error().code(), ErrorCode::kConflict);
  ASSERT_TRUE(c->DetachPolicy(a->account_id, "ro"));
  auto gone = c->DetachPolicy(a->account_id, "ro");
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code(), ErrorCode::kNotFound);
  ASSERT_TRUE(c->DeleteIamPolicy("ro"));
  EXPECT_EQ(c->GetIamPolicy("ro").error().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(c->ListIamPolicies()->empty());
}

// --- volumes ---

TEST_F(CatalogTest, TransactionCommitsAndRollsBack) {
  auto c = Open();
  ASSERT_NE(c, nullptr);
  const std::string vol = NewVolumeId();
  SnapshotRecord a = MakeSnapshot(vol, kT0), b = MakeSnapshot(vol, kT0 + 1);

  auto st = c->Transaction([&]() -> Status {
    RETURN_IF_ERROR(c->InsertSnapshot(a));
    RETURN_IF_ERROR(c->SetTags(a.snapshot_id, {{"k", "v"}}));
    return Conflict("changed my mind");
  });
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), ErrorCode::kConflict);
  EXPECT_EQ(st.error().message(), "changed my mind");
  EXPECT_EQ(c->GetSnapshot(a.snapshot_id).error().code(), ErrorCode::kNotFound);

  // A nested Transaction is a savepoint: its failure undoes only its own work.
  ASSERT_TRUE(c->Transaction([&]() -> Status {
    RETURN_IF_ERROR(c->InsertSnapshot(a));
    auto inner = c->Transaction([&]() -> Status {
      RETURN_IF_ERROR(c->InsertSnapshot(b));
      return Internal("inner fails");
    });
    EXPECT_FALSE(inner);
    return OkStatus();
  }));
  EXPECT_TRUE(c->GetSnapshot(a.snapshot_id));
  EXPECT_EQ(c->GetSnapshot(b.snapshot_id).error().code(), ErrorCode::kNotFound);

  // A throwing fn rolls back and leaves the catalog usable.
  EXPECT_THROW((void)c->Transaction([&]() -> Status {
    (void)c->InsertSnapshot(b);
    throw std::runtime_error("boom");
  }),
               std::runtime_error);
  EXPECT_EQ(c->GetSnapshot(b.snapshot_id).error().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(c->InsertSnapshot(b));
}

TEST_F(CatalogTest, OtherThreadsDoNotSeeAnOpenTransaction) {
  auto c = Open();
  ASSERT_NE(c, nullptr);
  SnapshotRecord s = MakeSnapshot(NewVolumeId(), kT0);
  std::promise<void> inserted;
  std::thread writer([&] {
    auto st = c->Transaction([&]() -> Status {
      RETURN_IF_ERROR(c->InsertSnapshot(s));
      inserted.set_value();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      return Conflict("roll back");
    });
    EXPECT_FALSE(st);
  });
  inserted.get_future().wait();
  // Blocks until the writer's transaction ends; must never observe the uncommitted row.
  auto got = c->GetSnapshot(s.snapshot_id);
  writer.join();
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code(), ErrorCode::kNotFound);
}

TEST_F(CatalogTest, ConcurrentInsertsFromManyThreads) {
  auto c = Open();
  ASSERT_NE(c, nullptr);
  constexpr int kThreads = 8, kPerThread = 25;
  const std::string vol = NewVolumeId();
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        SnapshotRecord s = MakeSnapshot(vol, kT0 + t * 1000 + i);
        s.tags = {{"thread", std::to_string(t)}};
        if (!c->InsertSnapshot(s) || !c->UpdateProgress(s.snapshot_id, "50%") ||
            !c->MarkCompleted(s.snapshot_id, kT0, 1, 1, 1) || !c->ListSnapshots({.volume_id = vol}))
          ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  auto all = c->ListSnapshots({.volume_id = vol, .state = SnapshotState::kCompleted});
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), static_cast<size_t>(kThreads * kPerThread));
}

TEST_F(CatalogTest, ConcurrentWritersThroughTwoConnections) {
  // Two Catalog objects on one database behave like two processes (or two hosts): they meet
  // in SQLite's file locks, where the busy timeout makes them wait for each other instead of
  // failing, or in PostgreSQL's write lock (catalog_db.h).
  auto c1 = Open();
  auto c2 = Open();
  ASSERT_NE(c1, nullptr);
  ASSERT_NE(c2, nullptr);
  constexpr int kThreads = 6, kPerThread = 30;
  const std::string vol = NewVolumeId();
  std::vector<std::string> errors;
  std::mutex errors_mu;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    Catalog* c = (t % 2 == 0) ? c1.get() : c2.get();
    threads.emplace_back([&, c, t] {
      for (int i = 0; i < kPerThread; ++i) {
        SnapshotRecord s = MakeSnapshot(vol, kT0 + t * 1000 + i);
        auto st = c->Transaction([&]() -> Status {
          RETURN_IF_ERROR(c->InsertSnapshot(s));
          return c->SetTags(s.snapshot_id, {{"t", std::to_string(t)}});
        });
        if (!st) {
          std::lock_guard lock(errors_mu);
          errors.push_back(st.error().ToString());
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_TRUE(errors.empty()) << errors.size() << " failed, first: " << errors.front();
  for (Catalog* c : {c1.get(), c2.get()}) {
    auto all = c->ListSnapshots({.volume_id = vol});
    ASSERT_TRUE(all);
    EXPECT_EQ(all->size(), static_cast<size_t>(kThreads * kPerThread));
    for (const auto& s : *all) EXPECT_EQ(s.tags.size(), 1u);
  }
}

TEST(SnapshotStateTest, NamesRoundTrip) {
  for (SnapshotState s :
       {SnapshotState::kPending, SnapshotState::kCompleted, SnapshotState::kError}) {
    auto parsed = ParseSnapshotState(SnapshotStateName(s));
    ASSERT_TRUE(parsed);
    EXPECT_EQ(*parsed, s);
  }
  EXPECT_STREQ(SnapshotStateName(SnapshotState::kPending), "pending");
  EXPECT_STREQ(SnapshotStateName(SnapshotState::kCompleted), "completed");
  EXPECT_STREQ(SnapshotStateName(SnapshotState::kError), "error");
  auto bad = ParseSnapshotState("Completed");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace snapvol
