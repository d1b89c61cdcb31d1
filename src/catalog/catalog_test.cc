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

#include "core/ids.h"

namespace snapvol {
namespace {

constexpr int64_t kT0 = 1'700'000'000'000;

// Runs sql on the database file through a separate connection (as another process would)
// and returns the first column of the first row, or "" if there is none.
std::string RawQuery(const std::string& path, const std::string& sql) {
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

VolumeRecord MakeVolume(const std::string& account_id = kDefaultAccountId) {
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

SnapshotRecord MakeSnapshot(const std::string& volume_id, int64_t start_ms,
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

std::vector<std::string> Ids(const std::vector<SnapshotRecord>& snaps) {
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
    path_ = dir_ + "/catalog.db";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

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

  std::string dir_;
  std::string path_;
  FakeClock clock_{kT0};
};

// --- opening, migrations, damage ---

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

TEST_F(CatalogTest, WalModeIsOn) {
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
  EXPECT_EQ(RawQuery(path_, "PRAGMA user_version"), std::to_string(Catalog::LatestSchemaVersion()));
}

TEST_F(CatalogTest, NewerSchemaVersionIsRefused) {
  { ASSERT_NE(Open(), nullptr); }
  RawQuery(path_, "PRAGMA user_version = 99");
  auto c = Catalog::Open(path_, &clock_);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code(), ErrorCode::kUnsupported);
  EXPECT_NE(c.error().message().find("99"), std::string::npos) << c.error().message();
  EXPECT_NE(c.error().message().find(path_), std::string::npos) << c.error().message();
  EXPECT_EQ(RawQuery(path_, "PRAGMA user_version"), "99");  // left untouched
}

TEST_F(CatalogTest, OtherSqliteDatabaseIsRefused) {
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

TEST_F(CatalogTest, GarbageFileIsCorruptionWithRebuildHint) {
  { std::ofstream(path_) << std::string(8192, 'x'); }
  auto c = Catalog::Open(path_, &clock_);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code(), ErrorCode::kCorruption) << c.error().ToString();
  EXPECT_NE(c.error().message().find("catalog database is damaged"), std::string::npos);
  EXPECT_NE(c.error().message().find("snapvol catalog rebuild"), std::string::npos);
  EXPECT_NE(c.error().message().find(path_), std::string::npos);
}

TEST_F(CatalogTest, DamagedPagesAreCorruptionWithRebuildHint) {
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

TEST_F(CatalogTest, UnopenablePathIsIoError) {
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

TEST_F(CatalogTest, VolumeRoundTripWithTags) {
  auto c = Open();
  ASSERT_NE(c, nullptr);
  VolumeRecord v = MakeVolume();
  v.tags = {{"Owner", "ops"}, {"Name", "db"}};
  ASSERT_TRUE(c->InsertVolume(v));
  auto got = c->GetVolume(v.volume_id);
  ASSERT_TRUE(got) << got.error().ToString();
  VolumeRecord want = v;
  want.name = "db";  // the Name tag wins over the name given with it
  want.tags = {{"Name", "db"}, {"Owner", "ops"}};  // sorted by key
  EXPECT_EQ(*got, want);

  auto dup = c->InsertVolume(v);
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_NE(dup.error().message().find(v.volume_id), std::string::npos);

  const std::string missing = NewVolumeId();
  auto nf = c->GetVolume(missing);
  ASSERT_FALSE(nf);
  EXPECT_EQ(nf.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(nf.error().message(), "volume " + missing + " not found");
}

TEST_F(CatalogTest, VolumeValidation) {
  auto c = Open();
  ASSERT_NE(c, nullptr);
  VolumeRecord bad_id = MakeVolume();
  bad_id.volume_id = "vol-1";
  VolumeRecord huge = MakeVolume();
  huge.size_bytes = std::numeric_limits<uint64_t>::max();
  VolumeRecord no_block = MakeVolume();
  no_block.block_size = 0;
  VolumeRecord bad_tag = MakeVolume();
  bad_tag.tags = {{"aws:x", "y"}};
  for (const VolumeRecord& v : {bad_id, huge, no_block, bad_tag}) {
    auto st = c->InsertVolume(v);
    ASSERT_FALSE(st) << v.volume_id;
    EXPECT_EQ(st.error().code(), ErrorCode::kInvalidArgument) << st.error().ToString();
    EXPECT_FALSE(c->GetVolume(v.volume_id));  // nothing half-written
  }
}

TEST_F(CatalogTest, ListVolumesAndUpdateSize) {
  auto c = Open();
  ASSERT_NE(c, nullptr);
  auto team = c->CreateAccount("team");
  ASSERT_TRUE(team);
  VolumeRecord a = MakeVolume();
  VolumeRecord b = MakeVolume(team->account_id);
  b.created_ms = kT0 + 1;
  VolumeRecord d = MakeVolume();
  d.created_ms = kT0 + 2;
  for (const auto& v : {d, b, a}) ASSERT_TRUE(c->InsertVolume(v));

  auto all = c->ListVolumes(std::nullopt);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].volume_id, a.volume_id);
  EXPECT_EQ((*all)[1].volume_id, b.volume_id);
  EXPECT_EQ((*all)[2].volume_id, d.volume_id);
  auto mine = c->ListVolumes(kDefaultAccountId);
  ASSERT_TRUE(mine);
  ASSERT_EQ(mine->size(), 2u);
  EXPECT_EQ((*mine)[0].volume_id, a.volume_id);
  EXPECT_EQ((*mine)[1].volume_id, d.volume_id);

  ASSERT_TRUE(c->UpdateVolumeSize(a.volume_id, 16ULL << 30));
  EXPECT_EQ(c->GetVolume(a.volume_id)->size_bytes, 16ULL << 30);
  EXPECT_EQ(c->GetVolume(b.volume_id)->size_bytes, 8ULL << 30);
  auto nf = c->UpdateVolumeSize(NewVolumeId(), 1);
  ASSERT_FALSE(nf);
  EXPECT_EQ(nf.error().code(), ErrorCode::kNotFound);
}

// --- snapshots ---

TEST_F(CatalogTest, SnapshotRoundTripWithTags) {
  auto c = Open();
  ASSERT_NE(c, nullptr);
  SnapshotRecord s = MakeSnapshot(NewVolumeId(), kT0);  // volume not registered: allowed
  s.state = SnapshotState::kCompleted;
  s.progress = "100%";
  s.completed_time_ms = kT0 + 4321;
  s.volume_size_bytes = (1ULL << 62) + 3;
  s.block_size = 4096;
  s.description = "nightly 'backup' — ünïcode";
  s.state_message = "";
  s.parent_snapshot_id = NewSnapshotId();
  s.encrypted = true;
  s.stored_bytes = 123456789;
  s.changed_blocks = 17;
  s.total_blocks = 16384;
  s.runner = "";
  s.tags = {{"Owner", "alice"}, {"Name", "nightly"}, {"empty", ""}};
  ASSERT_TRUE(c->InsertSnapshot(s));

  auto got = c->GetSnapshot(s.snapshot_id);
  ASSERT_TRUE(got) << got.error().ToString();
  SnapshotRecord want = s;
  want.tags = {{"Name", "nightly"}, {"Owner", "alice"}, {"empty", ""}};
  EXPECT_EQ(*got, want);

  auto dup = c->InsertSnapshot(s);
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(c->GetSnapshot(s.snapshot_id)->tags.size(), 3u);

  const std::string missing = NewSnapshotId();
  auto nf = c->GetSnapshot(missing);
  ASSERT_FALSE(nf);
  EXPECT_EQ(nf.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(nf.error().message(), "snapshot " + missing + " not found");
}

TEST_F(CatalogTest, SnapshotValidation) {
  auto c = Open();
  ASSERT_NE(c, nullptr);
  const std::string vol = NewVolumeId();
  std::vector<SnapshotRecord> bad(6, MakeSnapshot(vol, kT0));
  bad[0].snapshot_id = "snap-123";
  bad[1].volume_id = "volume";
  bad[2].parent_snapshot_id = "snap-x";
  bad[3].progress = "101%";
  bad[4].stored_bytes = std::numeric_limits<uint64_t>::max();
  bad[5].block_size = 0;
  for (auto& s : bad) {
    if (s.snapshot_id != "snap-123") s.snapshot_id = NewSnapshotId();
    auto st = c->InsertSnapshot(s);
    ASSERT_FALSE(st) << s.snapshot_id;
    EXPECT_EQ(st.error().code(), ErrorCode::kInvalidArgument) << st.error().ToString();
  }
  auto all = c->ListSnapshots({});
  ASSERT_TRUE(all);
  EXPECT_TRUE(all->empty());
}

TEST_F(CatalogTest, ListSnapshotsFiltersAndOrder) {
  auto c = Open();
  ASSERT_NE(c, nullptr);
  auto team = c->CreateAccount("team");
  ASSERT_TRUE(team);
  const std::string v1 = NewVolumeId(), v2 = NewVolumeId();
  SnapshotRecord a = MakeSnapshot(v1, kT0 + 30, SnapshotState::kCompleted);
  SnapshotRecord b = MakeSnapshot(v1, kT0 + 10, SnapshotState::kPending);
  SnapshotRecord d = MakeSnapshot(v2, kT0 + 20, SnapshotState::kError, team->account_id);
  SnapshotRecord e = MakeSnapshot(v2, kT0 + 10, SnapshotState::kCompleted, team->account_id);
  e.tags = {{"k", "v"}};
  for (const auto& s : {a, b, d, e}) ASSERT_TRUE(c->InsertSnapshot(s));

  auto list = [&](const SnapshotFilter& f) {
    auto r = c->ListSnapshots(f);
    EXPECT_TRUE(r) << r.error().ToString();
    return r ? Ids(*r) : std::vector<std::string>{};
  };
  // Ties on start time are broken by id.
  std::vector<std::string> at10 = {b.snapshot_id, e.snapshot_id};
  std::sort(at10.begin(), at10.end());
  EXPECT_EQ(list({}), (std::vector<std::string>{at10[0], at10[1], d.snapshot_id, a.snapshot_id}));
  EXPECT_EQ(list({.volume_id = v1}), (std::vector<std::string>{b.snapshot_id, a.snapshot_id}));
  EXPECT_EQ(list({.account_id = team->account_id}),
            (std::vector<std::string>{e.snapshot_id, d.snapshot_id}));
  EXPECT_EQ(list({.state = SnapshotState::kCompleted}),
            (std::vector<std::string>{e.snapshot_id, a.snapshot_id}));
  EXPECT_EQ(list({.volume_id = v2, .state = SnapshotState::kError}),
            (std::vector<std::string>{d.snapshot_id}));
  EXPECT_EQ(list({.snapshot_ids = {a.snapshot_id, NewSnapshotId(), e.snapshot_id, a.snapshot_id}}),
            (std::vector<std::string>{e.snapshot_id, a.snapshot_id}));
  EXPECT_EQ(list({.volume_id = v1, .snapshot_ids = {e.snapshot_id}}), std::vector<std::string>{});
  EXPECT_EQ(list({.volume_id = NewVolumeId()}), std::vector<std::string>{});

  auto with_tags = c->ListSnapshots({.snapshot_ids = {e.snapshot_id}});
  ASSERT_TRUE(with_tags);
  ASSERT_EQ(with_tags->size(), 1u);
  EXPECT_EQ(with_tags->front(), e);
}

TEST_F(CatalogTest, ListSnapshotsWithManyIds) {
  auto c = Open();
  ASSERT_NE(c, nullptr);
  const std::string vol = NewVolumeId();
  std::vector<std::string> want;
  ASSERT_TRUE(c->Transaction([&]() -> Status {
    for (int i = 0; i < 1200; ++i) {
      SnapshotRecord s = MakeSnapshot(vol, kT0 + (i * 7919) % 1200);  // shuffled start times
      s.tags = {{"i", std::to_string(i)}};
      RETURN_IF_ERROR(c->InsertSnapshot(s));
      if (i % 3 != 0) want.push_back(s.snapshot_id);
    }
    return OkStatus();
  }));
  std::vector<std::string> query = want;
  for (int i = 0; i < 100; ++i) query.push_back(NewSnapshotId());  // absent ids
  auto got = c->ListSnapshots({.snapshot_ids = query});
  ASSERT_TRUE(got) << got.error().ToString();
  ASSERT_EQ(got->size(), want.size());
  for (size_t i = 1; i < got->size(); ++i)
    EXPECT_LE((*got)[i - 1].start_time_ms, (*got)[i].start_time_ms);
  std::vector<std::string> got_ids = Ids(*got);
  EXPECT_EQ(std::set<std::string>(want.begin(), want.end()),
            std::set<std::string>(got_ids.begin(), got_ids.end()));
  for (const auto& s : *got) EXPECT_EQ(s.tags.size(), 1u);
}

TEST_F(CatalogTest, StateTransitions) {
  auto c = Open();
  ASSERT_NE(c, nullptr);
  const std::string vol = NewVolumeId();
  SnapshotRecord s = MakeSnapshot(vol, kT0);
  ASSERT_TRUE(c->InsertSnapshot(s));

  ASSERT_TRUE(c->UpdateProgress(s.snapshot_id, "42%"));
  EXPECT_EQ(c->GetSnapshot(s.snapshot_id)->progress, "42%");
  for (const char* bad : {"", "%", "42", "-1%", "101%", "042%", "4.2%", "1000%"}) {
    auto st = c->UpdateProgress(s.snapshot_id, bad);
    ASSERT_FALSE(st) << bad;
    EXPECT_EQ(st.error().code(), ErrorCode::kInvalidArgument) << bad;
  }

  ASSERT_TRUE(c->MarkCompleted(s.snapshot_id, kT0 + 5000, 1000, 3, 64));
  auto done = c->GetSnapshot(s.snapshot_id);
  ASSERT_TRUE(done);
  EXPECT_EQ(done->state, SnapshotState::kCompleted);
  EXPECT_EQ(done->progress, "100%");
  EXPECT_EQ(done->completed_time_ms, kT0 + 5000);
  EXPECT_EQ(done->stored_bytes, 1000u);
  EXPECT_EQ(done->changed_blocks, 3u);
  EXPECT_EQ(done->total_blocks, 64u);
  EXPECT_EQ(done->runner, "");

  auto again = c->MarkCompleted(s.snapshot_id, kT0 + 6000, 1, 1, 1);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), ErrorCode::kConflict);
  EXPECT_NE(again.error().message().find("completed"), std::string::npos);
  EXPECT_EQ(c->GetSnapshot(s.snapshot_id)->completed_time_ms, kT0 + 5000);  // unchanged
  auto progress = c->UpdateProgress(s.snapshot_id, "50%");
  ASSERT_FALSE(progress);
  EXPECT_EQ(progress.error().code(), ErrorCode::kConflict);
  auto demote = c->MarkError(s.snapshot_id, "late failure");
  ASSERT_FALSE(demote);
  EXPECT_EQ(demote.error().code(), ErrorCode::kConflict);
  EXPECT_EQ(c->GetSnapshot(s.snapshot_id)->state, SnapshotState::kCompleted);

  SnapshotRecord f = MakeSnapshot(vol, kT0 + 1);
  ASSERT_TRUE(c->InsertSnapshot(f));
  ASSERT_TRUE(c->MarkError(f.snapshot_id, "volume vanished"));
  auto failed = c->GetSnapshot(f.snapshot_id);
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->state, SnapshotState::kError);
  EXPECT_EQ(failed->state_message, "volume vanished");
  EXPECT_EQ(failed->runner, "");
  auto complete_failed = c->MarkCompleted(f.snapshot_id, kT0, 0, 0, 0);
  ASSERT_FALSE(complete_failed);
  EXPECT_EQ(complete_failed.error().code(), ErrorCode::kConflict);

  const std::string missing = NewSnapshotId();
  EXPECT_EQ(c->MarkCompleted(missing, kT0, 0, 0, 0).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(c->MarkError(missing, "x").error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(c->UpdateProgress(missing, "1%").error().code(), ErrorCode::kNotFound);
}

TEST_F(CatalogTest, LatestCompletedSnapshotIgnoresPendingAndError) {
  auto c = Open();
  ASSERT_NE(c, nullptr);
  const std::string vol = NewVolumeId(), other = NewVolumeId();
  auto none = c->LatestCompletedSnapshot(vol);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code(), ErrorCode::kNotFound);

  SnapshotRecord old_done = MakeSnapshot(vol, kT0 + 10, SnapshotState::kCompleted);
  SnapshotRecord newer_done = MakeSnapshot(vol, kT0 + 20, SnapshotState::kCompleted);
  newer_done.tags = {{"Name", "parent"}};
  SnapshotRecord pending = MakeSnapshot(vol, kT0 + 30, SnapshotState::kPending);
  SnapshotRecord failed = MakeSnapshot(vol, kT0 + 40, SnapshotState::kError);
  SnapshotRecord other_vol = MakeSnapshot(other, kT0 + 50, SnapshotState::kCompleted);
  for (const auto& s : {old_done, newer_done, pending, failed, other_vol})
    ASSERT_TRUE(c->InsertSnapshot(s));

  auto latest = c->LatestCompletedSnapshot(vol);
  ASSERT_TRUE(latest) << latest.error().ToString();
  EXPECT_EQ(*latest, newer_done);

  ASSERT_TRUE(c->DeleteSnapshot(newer_done.snapshot_id, kT0));
  EXPECT_EQ(c->LatestCompletedSnapshot(vol)->snapshot_id, old_done.snapshot_id);
  ASSERT_TRUE(c->MarkCompleted(pending.snapshot_id, kT0 + 99, 0, 0, 0));
  EXPECT_EQ(c->LatestCompletedSnapshot(vol)->snapshot_id, pending.snapshot_id);
}

// --- tags ---

TEST_F(CatalogTest, SetAndRemoveTags) {
  auto c = Open();
  ASSERT_NE(c, nullptr);
  SnapshotRecord s = MakeSnapshot(NewVolumeId(), kT0);
  s.tags = {{"Name", "a"}, {"Owner", "bob"}};
  ASSERT_TRUE(c->InsertSnapshot(s));

  ASSERT_TRUE(c->SetTags(s.snapshot_id, {{"Name", "b"}, {"Team", "storage"}}));
  EXPECT_EQ(c->GetSnapshot(s.snapshot_id)->tags,
            (std::vector<Tag>{{"Name", "b"}, {"Owner", "bob"}, {"Team", "storage"}}));
  ASSERT_TRUE(c->RemoveTags(s.snapshot_id, {"Owner", "not-set"}));
  EXPECT_EQ(c->GetSnapshot(s.snapshot_id)->tags,
            (std::vector<Tag>{{"Name", "b"}, {"Team", "storage"}}));

  const std::string missing = NewSnapshotId();
  EXPECT_EQ(c->SetTags(missing, {{"a", "b"}}).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(c->RemoveTags(missing, {"a"}).error().code(), ErrorCode::kNotFound);
}

TEST_F(CatalogTest, TagValidation) {
  auto c = Open();
  ASSERT_NE(c, nullptr);
  SnapshotRecord s = MakeSnapshot(NewVolumeId(), kT0);
  ASSERT_TRUE(c->InsertSnapshot(s));

  std::string e_acute = "\xC3\xA9";  // one character, two bytes
  std::string key128, value256;
  for (int i = 0; i < 128; ++i) key128 += e_acute;
  for (int i = 0; i < 256; ++i) value256 += e_acute;
  ASSERT_TRUE(c->SetTags(s.snapshot_id, {{key128, value256}, {"Name", ""}}));

  std::vector<std::vector<Tag>> bad = {
      {{"", "v"}},
      {{key128 + "x", "v"}},
      {{"k", value256 + "x"}},
      {{"aws:created-by", "me"}},
      {{"AWS:x", "me"}},
      {{"dup", "1"}, {"dup", "2"}},
  };
  for (const auto& tags : bad) {
    auto st = c->SetTags(s.snapshot_id, tags);
    ASSERT_FALSE(st) << tags.front().key;
    EXPECT_EQ(st.error().code(), ErrorCode::kInvalidArgument) << tags.front().key;
  }
  EXPECT_EQ(c->GetSnapshot(s.snapshot_id)->tags.size(), 2u);

  // 50 per resource: 48 more fit, then the 51st is refused and nothing is written.
  std::vector<Tag> more;
  for (int i = 0; i < 48; ++i) more.push_back({"k" + std::to_string(i), "v"});
  ASSERT_TRUE(c->SetTags(s.snapshot_id, more));
  auto over = c->SetTags(s.snapshot_id, {{"Name", "changed"}, {"one-too-many", "v"}});
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().code(), ErrorCode::kInvalidArgument);
  auto after = c->GetSnapshot(s.snapshot_id);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->tags.size(), 50u);
  auto name = std::find_if(after->tags.begin(), after->tags.end(),
                           [](const Tag& t) { return t.key == "Name"; });
  ASSERT_NE(name, after->tags.end());
  EXPECT_EQ(name->value, "");  // the rolled-back update did not land
  ASSERT_TRUE(c->SetTags(s.snapshot_id, {{"Name", "overwrite is fine at 50"}}));

  SnapshotRecord crowded = MakeSnapshot(NewVolumeId(), kT0);
  for (int i = 0; i < 51; ++i) crowded.tags.push_back({"k" + std::to_string(i), "v"});
  auto ins = c->InsertSnapshot(crowded);
  ASSERT_FALSE(ins);
  EXPECT_EQ(ins.error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(CatalogTest, ALockedSnapshotCannotBeDeletedUntilItsLockEnds) {
  auto c = Open();
  ASSERT_NE(c, nullptr);
  SnapshotRecord s = MakeSnapshot(NewVolumeId(), kT0);
  ASSERT_TRUE(c->InsertSnapshot(s));
  constexpr int64_t kDay = 86'400'000;
  SnapshotLockRecord l{s.snapshot_id, s.account_id, "compliance", kT0, kT0, kT0 + 2 * kDay, 2, 1, kT0 + 3'600'000};
  ASSERT_TRUE(c->PutSnapshotLock(l));
  EXPECT_EQ(*c->GetSnapshotLock(s.snapshot_id), l);
  EXPECT_EQ(LockStateAt(l, kT0), "compliance-cooloff");
  EXPECT_EQ(LockStateAt(l, kT0 + 3'600'000), "compliance");
  EXPECT_EQ(LockStateAt(l, kT0 + 2 * kDay), "expired");
  // In force: refused, and the hook that would remove the store's manifest never runs.
  bool ran = false;
  auto refused = c->DeleteSnapshot(s.snapshot_id, kT0 + kDay, [&] { ran = true; return OkStatus(); });
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), ErrorCode::kConflict);
  EXPECT_NE(refused.error().message().find("locked"), std::string::npos) << refused.error().message();
  EXPECT_FALSE(ran);
  EXPECT_TRUE(c->GetSnapshot(s.snapshot_id));
  // A failing hook leaves the row.
  auto failed = c->DeleteSnapshot(s.snapshot_id, kT0 + 2 * kDay, [] { return Internal("store unreachable"); });
  ASSERT_FALSE(failed);
  EXPECT_TRUE(c->GetSnapshot(s.snapshot_id));
  // Expired: deleted, and the lock with it.
  ASSERT_TRUE(c->DeleteSnapshot(s.snapshot_id, kT0 + 2 * kDay, [&] { ran = true; return OkStatus(); }));
  EXPECT_TRUE(ran);
  EXPECT_EQ(c->GetSnapshotLock(s.snapshot_id).error().code(), ErrorCode::kNotFound);
  // Locking a snapshot that does not exist, unlocking one that is not locked.
  EXPECT_EQ(c->PutSnapshotLock(l).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(c->DeleteSnapshotLock(s.snapshot_id).error().code(), ErrorCode::kNotFound);
  // Listing by account.
  SnapshotRecord t = MakeSnapshot(NewVolumeId(), kT0 + 1);
  ASSERT_TRUE(c->InsertSnapshot(t));
  SnapshotLockRecord g{t.snapshot_id, t.account_id, "governance", kT0, kT0, kT0 + kDay, 1, 0, 0};
  ASSERT_TRUE(c->PutSnapshotLock(g));
  auto mine = c->ListSnapshotLocks(t.account_id);
  ASSERT_TRUE(mine);
  ASSERT_EQ(mine->size(), 1u);
  EXPECT_EQ(mine->front(), g);
  EXPECT_TRUE(c->ListSnapshotLocks("000000000000")->empty());
  ASSERT_TRUE(c->DeleteSnapshotLock(t.snapshot_id));
  ASSERT_TRUE(c->DeleteSnapshot(t.snapshot_id, kT0));
}

TEST_F(CatalogTest, DeleteSnapshotRemovesRowAndTags) {
  auto c = Open();
  ASSERT_NE(c, nullptr);
  SnapshotRecord s = MakeSnapshot(NewVolumeId(), kT0);
  s.tags = {{"Name", "x"}};
  ASSERT_TRUE(c->InsertSnapshot(s));
  ASSERT_TRUE(c->DeleteSnapshot(s.snapshot_id, kT0));
  EXPECT_EQ(c->GetSnapshot(s.snapshot_id).error().code(), ErrorCode::kNotFound);
  auto again = c->DeleteSnapshot(s.snapshot_id, kT0);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), ErrorCode::kNotFound);
  // Same id again without tags: no stale tags come back.
  s.tags.clear();
  ASSERT_TRUE(c->InsertSnapshot(s));
  EXPECT_TRUE(c->GetSnapshot(s.snapshot_id)->tags.empty());
}

// --- rebuild ---

TEST_F(CatalogTest, DeleteAllAndUpsertForRebuild) {
  auto c = Open();
  ASSERT_NE(c, nullptr);
  auto team = c->CreateAccount("team");
  ASSERT_TRUE(team);
  VolumeRecord v = MakeVolume();
  v.name = "vol";
  v.tags = {{"Name", "vol"}};
  ASSERT_TRUE(c->InsertVolume(v));
  SnapshotRecord a = MakeSnapshot(v.volume_id, kT0, SnapshotState::kCompleted);
  a.tags = {{"Name", "a"}, {"Old", "x"}};
  SnapshotRecord b = MakeSnapshot(v.volume_id, kT0 + 1, SnapshotState::kCompleted);
  ASSERT_TRUE(c->InsertSnapshot(a));
  ASSERT_TRUE(c->InsertSnapshot(b));

  ASSERT_TRUE(c->DeleteAllSnapshots());
  EXPECT_TRUE(c->ListSnapshots({})->empty());
  EXPECT_EQ(*c->GetVolume(v.volume_id), v);  // volume and its tags stay
  EXPECT_EQ(c->ListAccounts()->size(), 2u);

  // Upsert inserts, then replaces the whole record including its tags.
  ASSERT_TRUE(c->UpsertSnapshot(a));
  EXPECT_EQ(*c->GetSnapshot(a.snapshot_id), a);
  SnapshotRecord a2 = a;
  a2.description = "from the store";
  a2.tags = {{"Name", "a2"}};
  a2.account_id = team->account_id;
  ASSERT_TRUE(c->UpsertSnapshot(a2));
  EXPECT_EQ(*c->GetSnapshot(a.snapshot_id), a2);
  EXPECT_EQ(c->ListSnapshots({})->size(), 1u);

  SnapshotRecord orphan = MakeSnapshot(NewVolumeId(), kT0, SnapshotState::kCompleted);
  EXPECT_TRUE(c->UpsertSnapshot(orphan));  // volume unknown to this catalog
}

// --- transactions and threads ---

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
  // Two Catalog objects on one file behave like two processes: they meet in SQLite's file
  // locks, and the busy timeout makes them wait for each other instead of failing.
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

namespace snapvol {
namespace {

class CatalogKeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "catalog_keys.XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(CatalogKeysTest, AccessKeysAndAdminFlag) {
  auto cat = std::move(*Catalog::Open(dir_ + "/catalog.db"));
  EXPECT_EQ(cat->SchemaVersion(), Catalog::LatestSchemaVersion());
  auto team = cat->CreateAccount("team-1");
  ASSERT_TRUE(team);
  EXPECT_FALSE(team->is_admin);
  ASSERT_TRUE(cat->SetAccountAdmin(team->account_id, true));
  EXPECT_TRUE(cat->GetAccount(team->account_id)->is_admin);
  EXPECT_EQ(cat->SetAccountAdmin("999999999999", true).error().code(), ErrorCode::kNotFound);

  AccessKeyRecord k{"AKIA0123456789ABCDEF", team->account_id, "alice", "sealed-bytes-hex", 5};
  ASSERT_TRUE(cat->InsertAccessKey(k));
  EXPECT_EQ(cat->InsertAccessKey(k).error().code(), ErrorCode::kAlreadyExists);
  AccessKeyRecord orphan{"AKIA0123456789ABCDEX", "999999999999", "bob", "x", 5};
  EXPECT_EQ(cat->InsertAccessKey(orphan).error().code(), ErrorCode::kNotFound);
  auto got = cat->GetAccessKey(k.access_key_id);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, k);
  EXPECT_EQ(cat->ListAccessKeys(team->account_id)->size(), 1u);
  EXPECT_EQ(cat->ListAccessKeys(kDefaultAccountId)->size(), 0u);
  EXPECT_EQ(cat->ListAccessKeys(std::nullopt)->size(), 1u);
  // The only active key of an administrator is kept (catalog_access_keys_test has the rest).
  EXPECT_EQ(cat->DeleteAccessKey(k.access_key_id).error().code(), ErrorCode::kConflict);
  ASSERT_TRUE(cat->SetAccountAdmin(team->account_id, false));
  ASSERT_TRUE(cat->DeleteAccessKey(k.access_key_id));
  EXPECT_EQ(cat->GetAccessKey(k.access_key_id).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(cat->DeleteAccessKey(k.access_key_id).error().code(), ErrorCode::kNotFound);
}

TEST_F(CatalogKeysTest, MigratesVersionOneDatabase) {
  // A version-1 catalog (as the first release wrote it) gains the new columns and tables.
  std::string path = dir_ + "/catalog.db";
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    const char* v1 =
        "PRAGMA application_id = 1399739953;"
        "CREATE TABLE accounts (account_id TEXT NOT NULL PRIMARY KEY, alias TEXT NOT NULL UNIQUE,"
        " created_ms INTEGER NOT NULL) STRICT;"
        "INSERT INTO accounts VALUES ('100000000001', 'default', 1);"
        "CREATE TABLE volumes (volume_id TEXT NOT NULL PRIMARY KEY, account_id TEXT NOT NULL,"
        " name TEXT NOT NULL, path TEXT NOT NULL, size_bytes INTEGER NOT NULL, block_size INTEGER"
        " NOT NULL, created_ms INTEGER NOT NULL) STRICT;"
        "CREATE TABLE snapshots (snapshot_id TEXT NOT NULL PRIMARY KEY, volume_id TEXT NOT NULL,"
        " account_id TEXT NOT NULL, state TEXT NOT NULL, progress TEXT NOT NULL, start_time_ms"
        " INTEGER NOT NULL, completed_time_ms INTEGER NOT NULL, volume_size_bytes INTEGER NOT NULL,"
        " block_size INTEGER NOT NULL, description TEXT NOT NULL, state_message TEXT NOT NULL,"
        " parent_snapshot_id TEXT NOT NULL, encrypted INTEGER NOT NULL, stored_bytes INTEGER NOT"
        " NULL, changed_blocks INTEGER NOT NULL, total_blocks INTEGER NOT NULL, runner TEXT NOT"
        " NULL) STRICT;"
        "CREATE TABLE tags (resource_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
        " PRIMARY KEY (resource_id, key)) STRICT, WITHOUT ROWID;"
        "PRAGMA user_version = 1;";
    ASSERT_EQ(sqlite3_exec(db, v1, nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  auto cat = Catalog::Open(path);
  ASSERT_TRUE(cat) << cat.error().ToString();
  EXPECT_EQ((*cat)->SchemaVersion(), Catalog::LatestSchemaVersion());
  auto def = (*cat)->GetAccount(kDefaultAccountId);
  ASSERT_TRUE(def);
  EXPECT_FALSE(def->is_admin);
  EXPECT_TRUE((*cat)->InsertAccessKey({"AKIA0123456789ABCDEF", kDefaultAccountId, "u", "s", 1}));
  EXPECT_TRUE((*cat)->GetAccessKey("AKIA0123456789ABCDEF")->active);  // keys start active
}

}  // namespace
}  // namespace snapvol

namespace snapvol {
namespace {

TEST_F(CatalogKeysTest, InstancesAndAttachedVolumes) {
  auto cat = std::move(*Catalog::Open(dir_ + "/catalog.db"));
  InstanceRecord inst{NewInstanceId(), kDefaultAccountId, "web-1", 7, {{"Name", "web-1"}}};
  ASSERT_TRUE(cat->InsertInstance(inst));
  EXPECT_EQ(cat->InsertInstance(inst).error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(cat->InsertInstance({NewInstanceId(), "999999999999", "x", 1}).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(cat->InsertInstance({"i-bad", kDefaultAccountId, "x", 1}).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(*cat->GetInstance(inst.instance_id), inst);
  EXPECT_EQ(cat->ListInstances(kDefaultAccountId)->size(), 1u);
  VolumeRecord v;
  v.volume_id = NewVolumeId();
  v.account_id = kDefaultAccountId;
  v.name = "root";
  v.tags = {{"Name", "root"}};
  v.path = "/dev/null";
  v.size_bytes = 10;
  v.block_size = 4096;
  v.created_ms = 1;
  v.instance_id = inst.instance_id;
  v.device = "/dev/xvda";
  v.boot = true;
  ASSERT_TRUE(cat->InsertVolume(v));
  EXPECT_EQ(*cat->GetVolume(v.volume_id), v);
}

}  // namespace
}  // namespace snapvol

namespace snapvol {
namespace {

TEST_F(CatalogKeysTest, KeysetPagesOfAnAccountsSnapshots) {
  auto cat = std::move(*Catalog::Open(dir_ + "/catalog.db"));
  auto other = *cat->CreateAccount("other");
  std::vector<std::string> ids;
  for (int i = 0; i < 23; ++i) {
    SnapshotRecord r;
    r.snapshot_id = NewSnapshotId();
    r.volume_id = NewVolumeId();
    r.account_id = i % 4 == 3 ? other.account_id : kDefaultAccountId;
    r.start_time_ms = 100 - i;  // start order differs from id order
    r.block_size = 4096;
    r.tags = {{"n", std::to_string(i)}, {"z", "last"}};
    ASSERT_TRUE(cat->InsertSnapshot(r));
    if (r.account_id == kDefaultAccountId) ids.push_back(r.snapshot_id);
  }
  std::sort(ids.begin(), ids.end());
  std::vector<std::string> seen;
  std::string after;
  for (;;) {
    auto page = cat->ListSnapshotsPage(kDefaultAccountId, after, 5);
    ASSERT_TRUE(page) << page.error().ToString();
    for (const auto& s : *page) {
      EXPECT_EQ(s.tags.size(), 2u);
      seen.push_back(s.snapshot_id);
    }
    if (page->size() < 5) break;
    after = page->back().snapshot_id;
  }
  EXPECT_EQ(seen, ids);
}

}  // namespace
}  // namespace snapvol
