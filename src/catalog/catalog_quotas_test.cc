// Tests of quotas per account: settings and defaults, counting (what counts, what frees
// quota), refusals that write nothing, and inserts from many threads and two connections
// that together cannot pass a limit.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/catalog_test_util.h"
#include "core/ids.h"

namespace snapvol {
namespace {

constexpr int64_t kT0 = 1'700'000'000'000;
constexpr uint64_t kGiB = uint64_t{1} << 30;
using Mode = QuotaSetting::Mode;

QuotaSetting Limit(uint64_t n) { return {Mode::kLimit, n}; }
QuotaSetting Unlimited() { return {Mode::kUnlimited, 0}; }
QuotaSetting Inherit() { return {Mode::kInherit, 0}; }

class CatalogQuotasTest : public testing_util::FreshCatalogTest {
 protected:
  void SetUp() override {
    FreshCatalogTest::SetUp();
    if (HasFatalFailure()) return;
    auto a = cat_->CreateAccount("team-a");
    ASSERT_TRUE(a);
    team_ = a->account_id;
  }
  // A second connection to the same catalog.
  std::unique_ptr<Catalog> Open() {
    auto c = Catalog::Open(path_);
    EXPECT_TRUE(c) << c.error().ToString();
    return c ? std::move(*c) : nullptr;
  }

  static SnapshotRecord Snapshot(const std::string& account) {
    SnapshotRecord s;
    s.snapshot_id = NewSnapshotId();
    s.volume_id = NewVolumeId();
    s.account_id = account;
    s.start_time_ms = kT0;
    s.block_size = 4096;
    return s;
  }
  // A managed volume (snapvol keeps its data), or a volume registered by path.
  static VolumeRecord Volume(const std::string& account, uint64_t gib, bool managed = true) {
    VolumeRecord v;
    v.volume_id = NewVolumeId();
    v.account_id = account;
    v.path = "/var/lib/snapvol/volumes/" + v.volume_id + ".img";
    v.size_bytes = gib * kGiB;
    v.block_size = 4096;
    v.created_ms = kT0;
    v.managed = managed;
    return v;
  }
  size_t Snapshots(const std::string& account) { return cat_->ListSnapshots({.account_id = account})->size(); }
  size_t Volumes(const std::string& account) { return cat_->ListVolumes(account)->size(); }

  std::string team_;
};

TEST_F(CatalogQuotasTest, WithoutQuotasNothingIsLimited) {
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(cat_->InsertSnapshot(Snapshot(team_)));
  ASSERT_TRUE(cat_->InsertVolume(Volume(team_, 16384)));
  auto limits = cat_->EffectiveQuotaLimits(team_);
  ASSERT_TRUE(limits);
  EXPECT_FALSE(limits->volume_gib || limits->volumes || limits->snapshots);
  auto usage = cat_->GetQuotaUsage(team_);
  ASSERT_TRUE(usage);
  EXPECT_EQ(usage->snapshots, 20u);
  EXPECT_EQ(usage->volumes, 1u);
  EXPECT_EQ(usage->volume_bytes, 16384 * kGiB);
}

TEST_F(CatalogQuotasTest, SnapshotLimitRefusesTheNextAndDeletingFreesIt) {
  ASSERT_TRUE(cat_->SetQuotas(kQuotaDefaults, {{QuotaKind::kSnapshots, Limit(2)}}));
  ASSERT_TRUE(cat_->InsertSnapshot(Snapshot(team_)));
  EXPECT_TRUE(cat_->CheckSnapshotQuota(team_, 1));
  EXPECT_EQ(cat_->CheckSnapshotQuota(team_, 2).error().code(), ErrorCode::kQuotaExceeded);
  SnapshotRecord second = Snapshot(team_);
  second.state = SnapshotState::kError;  // a failed snapshot counts too: it is a row to delete
  ASSERT_TRUE(cat_->InsertSnapshot(second));
  SnapshotRecord third = Snapshot(team_);
  third.tags = {{"Name", "over"}};
  auto over = cat_->InsertSnapshot(third);
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().code(), ErrorCode::kQuotaExceeded);
  EXPECT_NE(over.error().message().find("it would have 3 snapshots; the limit is 2"), std::string::npos)
      << over.error().message();
  EXPECT_NE(over.error().message().find(team_), std::string::npos);
  // Nothing of the refused snapshot is left: no row, no tags.
  EXPECT_EQ(Snapshots(team_), 2u);
  EXPECT_EQ(cat_->GetSnapshot(third.snapshot_id).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(cat_->RemoveAllTags(third.snapshot_id).error().code(), ErrorCode::kNotFound);
  // Another account has its own count.
  EXPECT_TRUE(cat_->InsertSnapshot(Snapshot(kDefaultAccountId)));
  // Deleting one makes room for exactly one.
  ASSERT_TRUE(cat_->DeleteSnapshot(second.snapshot_id, kT0));
  EXPECT_TRUE(cat_->InsertSnapshot(third));
  EXPECT_FALSE(cat_->InsertSnapshot(Snapshot(team_)));
  EXPECT_EQ(Snapshots(team_), 2u);
}

TEST_F(CatalogQuotasTest, AccountOverridesWinOverDefaults) {
  ASSERT_TRUE(cat_->SetQuotas(kQuotaDefaults, {{QuotaKind::kSnapshots, Limit(1)}, {QuotaKind::kVolumes, Limit(1)}}));
  ASSERT_TRUE(cat_->SetQuotas(team_, {{QuotaKind::kSnapshots, Limit(3)}, {QuotaKind::kVolumes, Unlimited()}}));
  auto limits = cat_->EffectiveQuotaLimits(team_);
  ASSERT_TRUE(limits);
  EXPECT_EQ(limits->snapshots, 3u);
  EXPECT_FALSE(limits->volumes);  // unlimited, despite the default of 1
  EXPECT_EQ(cat_->EffectiveQuotaLimits(kDefaultAccountId)->snapshots, 1u);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(cat_->InsertSnapshot(Snapshot(team_)));
  EXPECT_FALSE(cat_->InsertSnapshot(Snapshot(team_)));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(cat_->InsertVolume(Volume(team_, 1)));
  // Settings as stored: the override, the explicit unlimited, nothing for volume-gib.
  auto own = cat_->GetQuotaSettings(team_);
  ASSERT_TRUE(own);
  EXPECT_EQ(own->snapshots, Limit(3));
  EXPECT_EQ(own->volumes, Unlimited());
  EXPECT_EQ(own->volume_gib, Inherit());
  // Back to the default: 3 snapshots held, 1 allowed.
  ASSERT_TRUE(cat_->SetQuotas(team_, {{QuotaKind::kSnapshots, Inherit()}, {QuotaKind::kVolumes, Inherit()}}));
  EXPECT_EQ(cat_->EffectiveQuotaLimits(team_)->snapshots, 1u);
  EXPECT_EQ(cat_->InsertSnapshot(Snapshot(team_)).error().code(), ErrorCode::kQuotaExceeded);
  EXPECT_EQ(cat_->InsertVolume(Volume(team_, 1)).error().code(), ErrorCode::kQuotaExceeded);
  // A limit of 0 allows none; unlimited defaults are stored as no row.
  ASSERT_TRUE(cat_->SetQuotas(kQuotaDefaults, {{QuotaKind::kSnapshots, Unlimited()}}));
  EXPECT_EQ(cat_->GetQuotaSettings(kQuotaDefaults)->snapshots, Inherit());
  EXPECT_TRUE(cat_->InsertSnapshot(Snapshot(team_)));
  ASSERT_TRUE(cat_->SetQuotas(kDefaultAccountId, {{QuotaKind::kSnapshots, Limit(0)}}));
  EXPECT_EQ(cat_->InsertSnapshot(Snapshot(kDefaultAccountId)).error().code(), ErrorCode::kQuotaExceeded);
}

TEST_F(CatalogQuotasTest, VolumeLimitsCountManagedAndRestoredVolumesOnly) {
  ASSERT_TRUE(cat_->SetQuotas(team_, {{QuotaKind::kVolumeGib, Limit(100)}, {QuotaKind::kVolumes, Limit(3)}}));
  ASSERT_TRUE(cat_->InsertVolume(Volume(team_, 60)));
  // 60 + 41 > 100 GiB: refused, by size, with nothing written.
  VolumeRecord big = Volume(team_, 41);
  big.tags = {{"Name", "big"}};
  auto over = cat_->InsertVolume(big);
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().code(), ErrorCode::kQuotaExceeded);
  EXPECT_NE(over.error().message().find("would total 101 GiB; the limit is 100 GiB"), std::string::npos)
      << over.error().message();
  EXPECT_EQ(cat_->GetVolume(big.volume_id).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(Volumes(team_), 1u);
  // Exactly up to the limit is allowed.
  VolumeRecord restored = Volume(team_, 40, /*managed=*/false);
  restored.snapshot_id = NewSnapshotId();  // restored from a snapshot into the volume dir
  ASSERT_TRUE(cat_->InsertVolume(restored));
  // A volume registered by path is the operator's file: neither counted nor refused.
  ASSERT_TRUE(cat_->InsertVolume(Volume(team_, 5000, /*managed=*/false)));
  auto usage = cat_->GetQuotaUsage(team_);
  EXPECT_EQ(usage->volumes, 2u);
  EXPECT_EQ(usage->volume_bytes, 100 * kGiB);
  // The pre-check says the same as the insert would.
  EXPECT_EQ(cat_->CheckVolumeQuota(team_, 1).error().code(), ErrorCode::kQuotaExceeded);
  ASSERT_TRUE(cat_->SetQuotas(team_, {{QuotaKind::kVolumeGib, Unlimited()}}));
  EXPECT_TRUE(cat_->CheckVolumeQuota(team_, 1000 * kGiB));
  ASSERT_TRUE(cat_->InsertVolume(Volume(team_, 1)));  // the third volume
  auto count = cat_->InsertVolume(Volume(team_, 1));
  ASSERT_FALSE(count);
  EXPECT_NE(count.error().message().find("it would have 4 volumes; the limit is 3"), std::string::npos);
  EXPECT_EQ(cat_->CheckVolumeQuota(team_, 0).error().code(), ErrorCode::kQuotaExceeded);
  // A failed restore's record holds no data: recorded even at the limit (and it counts).
  VolumeRecord failed = Volume(team_, 1, /*managed=*/false);
  failed.snapshot_id = NewSnapshotId();
  failed.state = "error";
  EXPECT_TRUE(cat_->InsertVolume(failed));
  EXPECT_EQ(cat_->GetQuotaUsage(team_)->volumes, 4u);
  // Deleting frees quota.
  ASSERT_TRUE(cat_->DeleteVolume(failed.volume_id));
  ASSERT_TRUE(cat_->DeleteVolume(restored.volume_id));
  EXPECT_TRUE(cat_->InsertVolume(Volume(team_, 1)));
}

TEST_F(CatalogQuotasTest, ABatchOverTheLimitWritesNone) {
  ASSERT_TRUE(cat_->SetQuotas(team_, {{QuotaKind::kSnapshots, Limit(3)}}));
  ASSERT_TRUE(cat_->InsertSnapshot(Snapshot(team_)));
  ASSERT_TRUE(cat_->InsertSnapshot(Snapshot(team_)));
  // Two snapshots in one transaction (CreateSnapshots of two volumes) with room for one.
  auto batch = cat_->Transaction([&]() -> Status {
    RETURN_IF_ERROR(cat_->InsertSnapshot(Snapshot(team_)));
    return cat_->InsertSnapshot(Snapshot(team_));
  });
  ASSERT_FALSE(batch);
  EXPECT_EQ(batch.error().code(), ErrorCode::kQuotaExceeded);
  EXPECT_EQ(Snapshots(team_), 2u);
}

TEST_F(CatalogQuotasTest, RebuildIsNotLimited) {
  ASSERT_TRUE(cat_->SetQuotas(team_, {{QuotaKind::kSnapshots, Limit(1)}}));
  ASSERT_TRUE(cat_->UpsertSnapshot(Snapshot(team_)));
  ASSERT_TRUE(cat_->UpsertSnapshot(Snapshot(team_)));  // the store holds them: recorded
  EXPECT_EQ(Snapshots(team_), 2u);
  EXPECT_FALSE(cat_->InsertSnapshot(Snapshot(team_)));
}

TEST_F(CatalogQuotasTest, BadSettingsChangeNothing) {
  EXPECT_EQ(cat_->SetQuotas("999999999999", {{QuotaKind::kSnapshots, Limit(1)}}).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(cat_->SetQuotas("nope", {{QuotaKind::kSnapshots, Limit(1)}}).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(cat_->GetQuotaSettings("999999999999").error().code(), ErrorCode::kNotFound);
  auto big = cat_->SetQuotas(team_, {{QuotaKind::kSnapshots, Limit(5)}, {QuotaKind::kVolumeGib, Limit(kMaxQuotaLimit + 1)}});
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(cat_->GetQuotaSettings(team_)->snapshots, Inherit());  // the valid one was not applied either
  EXPECT_TRUE(cat_->SetQuotas(team_, {{QuotaKind::kVolumeGib, Limit(kMaxQuotaLimit)}}));
  EXPECT_TRUE(cat_->InsertVolume(Volume(team_, 16384)));
}

// Many threads on one connection and on a second one (as another process would) insert
// snapshots at once: exactly the limit lands, the rest are refused by the quota.
TEST_F(CatalogQuotasTest, ConcurrentInsertsCannotPassTheLimit) {
  constexpr uint64_t kLimit = 7;
  ASSERT_TRUE(cat_->SetQuotas(team_, {{QuotaKind::kSnapshots, Limit(kLimit)}, {QuotaKind::kVolumes, Limit(kLimit)}}));
  std::unique_ptr<Catalog> other = Open();
  ASSERT_TRUE(other);
  std::atomic<int> ok{0}, refused{0}, other_errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    Catalog* c = t % 2 == 0 ? cat_.get() : other.get();
    threads.emplace_back([&, c] {
      for (int i = 0; i < 6; ++i) {
        auto st = i % 2 == 0 ? c->InsertSnapshot(Snapshot(team_)) : c->InsertVolume(Volume(team_, 1));
        if (st) ++ok;
        else if (st.error().code() == ErrorCode::kQuotaExceeded) ++refused;
        else ++other_errors;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(other_errors.load(), 0);
  EXPECT_EQ(ok.load(), static_cast<int>(2 * kLimit));
  EXPECT_EQ(refused.load(), 48 - static_cast<int>(2 * kLimit));
  EXPECT_EQ(Snapshots(team_), kLimit);
  EXPECT_EQ(Volumes(team_), kLimit);
}

}  // namespace
}  // namespace snapvol
