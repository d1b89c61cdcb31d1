// The catalog's volumes, snapshots, tags and snapshot locks: round trips, validation,
// listing, state transitions, deletion and the rebuild's upserts.
#include "catalog/catalog.h"

#include <gtest/gtest.h>
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
using catalog_testing::Ids;
using catalog_testing::MakeSnapshot;
using catalog_testing::MakeVolume;
using catalog_testing::kT0;

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

// Locking a locked snapshot again replaces its lock whole (LockSnapshot of a governance lock).
TEST_F(CatalogTest, ASecondLockReplacesTheFirst) {
  auto c = Open();
  ASSERT_NE(c, nullptr);
  SnapshotRecord s = MakeSnapshot(NewVolumeId(), kT0);
  ASSERT_TRUE(c->InsertSnapshot(s));
  constexpr int64_t kDay = 86'400'000;
  ASSERT_TRUE(c->PutSnapshotLock({s.snapshot_id, s.account_id, "governance", kT0, kT0, kT0 + kDay, 1, 0, 0}));
  SnapshotLockRecord second{s.snapshot_id, s.account_id, "compliance", kT0 + 5, kT0 + 5, kT0 + 3 * kDay, 3, 2,
                            kT0 + 7'200'005};
  ASSERT_TRUE(c->PutSnapshotLock(second));
  EXPECT_EQ(*c->GetSnapshotLock(s.snapshot_id), second);
  EXPECT_EQ(*c->ListSnapshotLocks(std::nullopt), (std::vector<SnapshotLockRecord>{second}));
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

}  // namespace
}  // namespace snapvol
