// The Recycle Bin in the one deletion path (engine/snapshot_deletion.h, engine/recycle_bin.h):
// which rule keeps a snapshot (tag-level, account-level with exclusions, the longest, the
// daemon's default, only the snapshot's own account's); a kept snapshot's root goes to bin/
// and GC keeps its chunks; restored it reads back byte-identical; after its retention it is
// deleted for good and GC frees its chunks; the catalog's bin is rebuilt from the store; a
// binned snapshot keeps its grants and its place in the quota; the default rule's record.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "catalog/catalog_test_db.h"
#include "core/file_util.h"
#include "core/ids.h"
#include "engine/recycle_bin.h"
#include "engine/snapshot_deletion.h"
#include "engine/snapshot_engine.h"
#include "engine/snapshot_jobs.h"
#include "store/gc.h"
#include "store/memory_store.h"
#include "volume/block_source.h"

namespace snapvol {
namespace {

constexpr int64_t kNow = 1'700'000'000'000;

class RecycleBinTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir() + "/rbin-" + NewVolumeId();
    ASSERT_TRUE(MakeDirs(dir_));
    catalog_db_ = std::make_unique<catalog_testing::TestCatalogDb>(dir_);
    catalog_ = std::move(*Catalog::Open(catalog_db_->location()));
    RepositoryOptions ro;
    ro.block_size = 64 * 1024;
    auto store = std::make_unique<MemoryStore>();
    store_ = store.get();
    repo_ = std::move(*Repository::Create(std::move(store), ro));
    volume_.volume_id = NewVolumeId();
    volume_.account_id = kDefaultAccountId;
    volume_.name = "v";
    volume_.path = dir_ + "/" + volume_.volume_id + ".img";
    std::string data;
    for (int i = 0; i < 200000; ++i) data += static_cast<char>('a' + (i * 7919) % 26);
    content_ = data;
    ASSERT_TRUE(WriteFileAtomic(volume_.path, AsBytes(data)));
    volume_.size_bytes = data.size();
    volume_.block_size = 64 * 1024;
    volume_.created_ms = 1;
    ASSERT_TRUE(catalog_->InsertVolume(volume_));
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Completed(std::vector<Tag> tags = {}) {
    SnapshotJobs jobs(repo_.get(), catalog_.get(), &pool_, "test-runner", 1);
    auto started = jobs.Start({{volume_, "", tags, 0, false}});
    EXPECT_TRUE(started);
    const std::string id = started->front().snapshot_id;
    for (int i = 0; i < 1000 && catalog_->GetSnapshot(id)->state == SnapshotState::kPending; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_EQ(catalog_->GetSnapshot(id)->state, SnapshotState::kCompleted);
    return id;
  }
  void AddRule(const std::string& id, int64_t days, const std::string& tags = "[]", const std::string& exclude = "[]",
               const std::string& account = kDefaultAccountId) {
    RbinRuleRecord r;
    r.rule_id = id;
    r.account_id = account;
    r.retention_days = days;
    r.resource_tags = tags;
    r.exclude_tags = exclude;
    ASSERT_TRUE(catalog_->InsertRbinRule(r));
  }
  size_t Chunks() {
    auto listed = store_->List("chunks/");
    EXPECT_TRUE(listed);
    return listed ? listed->size() : 0;
  }
  std::string RestoredBytes(const std::string& id) {
    const std::string out = dir_ + "/restored-" + id;
    auto target = FileTarget::Create(out, volume_.size_bytes, true);
    EXPECT_TRUE(target);
    SnapshotEngine engine(repo_.get(), &pool_);
    auto stats = engine.Restore(id, target->get());
    EXPECT_TRUE(stats) << stats.error().ToString();
    auto bytes = ReadWholeFile(out);
    EXPECT_TRUE(bytes);
    return bytes ? std::string(bytes->begin(), bytes->end()) : "";
  }
  SnapshotDeletion With(int64_t default_days = 0) {
    return {.catalog = catalog_.get(), .repo = repo_.get(), .recycle_bin = {.default_retention_days = default_days}};
  }

  std::string dir_, content_;
  std::unique_ptr<catalog_testing::TestCatalogDb> catalog_db_;  // outlives catalog_
  std::unique_ptr<Catalog> catalog_;
  MemoryStore* store_ = nullptr;
  std::unique_ptr<Repository> repo_;
  ThreadPool pool_{2};
  VolumeRecord volume_;
};

TEST_F(RecycleBinTest, WhichRuleKeepsASnapshot) {
  SnapshotRecord s;
  s.account_id = kDefaultAccountId;
  s.tags = {{"env", "prod"}, {"scratch", "1"}};
  auto match = [&](int64_t default_days = 0) {
    auto m = MatchRetentionRule(catalog_.get(), s, {.default_retention_days = default_days});
    EXPECT_TRUE(m);
    return m && *m ? (*m)->rule_id + ":" + std::to_string((*m)->retention_days) : std::string("none");
  };
  EXPECT_EQ(match(), "none");
  EXPECT_EQ(match(7), "default:7");
  AddRule("tagvalue000", 3, R"([{"ResourceTagKey":"env","ResourceTagValue":"test"}])");
  EXPECT_EQ(match(), "none");  // the value differs
  AddRule("tagkeyonly0", 4, R"([{"ResourceTagKey":"env"}])");
  EXPECT_EQ(match(), "tagkeyonly0:4");  // a key without value matches any value
  EXPECT_EQ(match(7), "default:7");     // the longest wins
  AddRule("accountexcl", 9, "[]", R"([{"ResourceTagKey":"scratch","ResourceTagValue":"1"}])");
  EXPECT_EQ(match(), "tagkeyonly0:4");  // excluded by its tag
  s.tags = {{"env", "prod"}};
  EXPECT_EQ(match(), "accountexcl:9");
  // Another account's rules never apply.
  auto other = catalog_->CreateAccount("other");
  ASSERT_TRUE(other);
  AddRule("otheraccnt0", 99, "[]", "[]", other->account_id);
  EXPECT_EQ(match(), "accountexcl:9");
  // Only EBS_SNAPSHOT rules count.
  RbinRuleRecord image;
  image.rule_id = "imagerule00";
  image.account_id = kDefaultAccountId;
  image.resource_type = "EC2_IMAGE";
  image.retention_days = 50;
  ASSERT_TRUE(catalog_->InsertRbinRule(image));
  EXPECT_EQ(match(), "accountexcl:9");
}

TEST_F(RecycleBinTest, BinnedThenRestoredReadsBackAndGcKeepsItsChunks) {
  const std::string id = Completed({{"keep", "yes"}});
  AddRule("keepthemall", 2, R"([{"ResourceTagKey":"keep"}])");
  const size_t chunks = Chunks();
  ASSERT_GT(chunks, 0u);
  bool binned = false;
  ASSERT_TRUE(DeleteSnapshot(With(), id, kNow, &binned));
  EXPECT_TRUE(binned);
  EXPECT_EQ(catalog_->GetSnapshot(id).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(repo_->GetManifest(id, true).error().code(), ErrorCode::kNotFound);  // neither live nor deleted
  auto roots = repo_->ListBinnedManifests();
  ASSERT_TRUE(roots);
  ASSERT_EQ(roots->size(), 1u);
  EXPECT_EQ((*roots)[0].snapshot_id, id);
  EXPECT_EQ((*roots)[0].bin_exit_ms, kNow + 2 * kDayMs);
  EXPECT_EQ((*roots)[0].bin_rule_id, "keepthemall");

  GcOptions gc;
  gc.grace_ms = 0;
  auto report = CollectGarbage(repo_.get(), gc);
  ASSERT_TRUE(report) << report.error().ToString();
  EXPECT_EQ(report->binned_roots, 1u);
  EXPECT_EQ(report->deleted_chunks, 0u);
  EXPECT_EQ(Chunks(), chunks);

  // Purging before the retention ends changes nothing.
  auto purged = PurgeExpiredBin(catalog_.get(), repo_.get(), kNow + 2 * kDayMs - 1);
  ASSERT_TRUE(purged);
  EXPECT_TRUE(purged->empty());

  ASSERT_TRUE(RestoreSnapshotFromBin(catalog_.get(), repo_.get(), id, kNow + kDayMs));
  auto back = catalog_->GetSnapshot(id);
  ASSERT_TRUE(back);
  // Its own tags come back, and the reserved ones that say how it was cut.
  std::vector<Tag> user_tags = back->tags;
  std::erase_if(user_tags, [](const Tag& t) { return t.key.rfind(kSystemTagPrefix, 0) == 0; });
  EXPECT_EQ(user_tags, (std::vector<Tag>{{"keep", "yes"}}));
  EXPECT_EQ(back->tags.size(), 3u);
  auto meta = repo_->GetManifest(id);
  ASSERT_TRUE(meta);
  EXPECT_EQ(meta->bin_exit_ms, 0);
  EXPECT_EQ(RestoredBytes(id), content_);
  EXPECT_EQ(RestoreSnapshotFromBin(catalog_.get(), repo_.get(), id, kNow).error().code(), ErrorCode::kNotFound);
}

// AWS: a snapshot in the bin can only be viewed, restored or retagged, is billed as a regular
// snapshot, and a restored one is used as before. So its grants stay with it (of no use in the
// bin) and come back, and it counts toward the account's snapshot quota until it is gone.
TEST_F(RecycleBinTest, ABinnedSnapshotKeepsItsGrantsAndItsPlaceInTheQuota) {
  const std::string id = Completed();
  const std::string other = Completed();
  const std::vector<std::string> grantees = {"111122223333", "all"};
  ASSERT_TRUE(catalog_->AddSnapshotPermissions(id, grantees));
  ASSERT_TRUE(catalog_->SetQuotas(kDefaultAccountId, {{QuotaKind::kSnapshots,
                                                       QuotaSetting{QuotaSetting::Mode::kLimit, 2}}}));
  ASSERT_EQ(catalog_->GetQuotaUsage(kDefaultAccountId)->snapshots, 2u);
  bool binned = false;
  ASSERT_TRUE(DeleteSnapshot(With(/*default_days=*/3), id, kNow, &binned));
  ASSERT_TRUE(binned);
  // Not shared while binned: no grant of it is listed anywhere.
  auto shared = catalog_->ListSnapshotPermissions(std::vector<std::string>{id});
  ASSERT_TRUE(shared);
  EXPECT_TRUE(shared->empty());
  EXPECT_EQ(catalog_->GetQuotaUsage(kDefaultAccountId)->snapshots, 2u) << "a binned snapshot stopped counting";
  EXPECT_EQ(catalog_->CheckSnapshotQuota(kDefaultAccountId, 1).error().code(), ErrorCode::kQuotaExceeded);
  // A rebuild of the bin (from the store's bin/ roots) keeps the grants of those still binned.
  auto bin = catalog_->ListBinnedSnapshots(std::nullopt);
  ASSERT_TRUE(bin);
  ASSERT_TRUE(catalog_->ReplaceRecycleBin(*bin));

  ASSERT_TRUE(RestoreSnapshotFromBin(catalog_.get(), repo_.get(), id, kNow + kDayMs));
  auto back = catalog_->ListSnapshotPermissions(id);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, grantees) << "the restored snapshot lost its grants";
  EXPECT_EQ(catalog_->GetQuotaUsage(kDefaultAccountId)->snapshots, 2u);

  // Binned again and purged: its kept grants go with it, and the quota is freed.
  ASSERT_TRUE(DeleteSnapshot(With(/*default_days=*/1), id, kNow + 2 * kDayMs, &binned));
  ASSERT_TRUE(binned);
  auto purged = PurgeExpiredBin(catalog_.get(), repo_.get(), kNow + 3 * kDayMs);
  ASSERT_TRUE(purged);
  EXPECT_EQ(*purged, std::vector<std::string>{id});
  EXPECT_EQ(catalog_->GetQuotaUsage(kDefaultAccountId)->snapshots, 1u);
  EXPECT_TRUE(catalog_->CheckSnapshotQuota(kDefaultAccountId, 1));
  EXPECT_TRUE(catalog_->GetSnapshot(other));
}

TEST_F(RecycleBinTest, TheDefaultRuleIsRecordedInTheCatalog) {
  EXPECT_EQ(*catalog_->GetRecycleBinDefaultRetentionDays(), 0);
  ASSERT_TRUE(catalog_->SetRecycleBinDefaultRetentionDays(7));
  EXPECT_EQ(*catalog_->GetRecycleBinDefaultRetentionDays(), 7);
  EXPECT_EQ(catalog_->SetRecycleBinDefaultRetentionDays(3651).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(catalog_->SetRecycleBinDefaultRetentionDays(-1).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(*catalog_->GetRecycleBinDefaultRetentionDays(), 7);
  ASSERT_TRUE(catalog_->SetRecycleBinDefaultRetentionDays(0));
  EXPECT_EQ(*catalog_->GetRecycleBinDefaultRetentionDays(), 0);
}

TEST_F(RecycleBinTest, AfterItsRetentionGcFreesIt) {
  const std::string id = Completed();
  ASSERT_TRUE(DeleteSnapshot(With(/*default_days=*/1), id, kNow));
  // Its retention over: not restorable, and deleted for good by the purge.
  EXPECT_EQ(RestoreSnapshotFromBin(catalog_.get(), repo_.get(), id, kNow + kDayMs).error().code(),
            ErrorCode::kConflict);
  auto purged = PurgeExpiredBin(catalog_.get(), repo_.get(), kNow + kDayMs);
  ASSERT_TRUE(purged);
  EXPECT_EQ(*purged, std::vector<std::string>{id});
  EXPECT_EQ(catalog_->GetBinnedSnapshot(id).error().code(), ErrorCode::kNotFound);
  GcOptions gc;
  gc.grace_ms = 0;
  auto report = CollectGarbage(repo_.get(), gc);
  ASSERT_TRUE(report) << report.error().ToString();
  EXPECT_GT(report->deleted_chunks, 0u);
  EXPECT_EQ(Chunks(), 0u);
  EXPECT_EQ(repo_->GetManifest(id, true).error().code(), ErrorCode::kNotFound);
}

TEST_F(RecycleBinTest, NoRuleDeletesAsBeforeAndALockStillRefuses) {
  const std::string id = Completed();
  bool binned = true;
  ASSERT_TRUE(DeleteSnapshot(With(), id, kNow, &binned));
  EXPECT_FALSE(binned);
  EXPECT_TRUE(repo_->GetManifest(id, true));  // under deleted/
  auto roots = repo_->ListBinnedManifests();
  ASSERT_TRUE(roots);
  EXPECT_TRUE(roots->empty());

  const std::string locked = Completed();
  ASSERT_TRUE(catalog_->PutSnapshotLock(
      SnapshotLockRecord{locked, kDefaultAccountId, "governance", kNow, kNow, kNow + 5 * kDayMs, 5, 0, 0}));
  auto refused = DeleteSnapshot(With(7), locked, kNow);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), ErrorCode::kConflict);
  EXPECT_TRUE(catalog_->GetSnapshot(locked));
  EXPECT_TRUE(repo_->GetManifest(locked));
}

TEST_F(RecycleBinTest, TheStoreDescribesTheBinForARebuild) {
  const std::string kept = Completed({{"Name", "db"}}), live = Completed();
  ASSERT_TRUE(DeleteSnapshot(With(3), kept, kNow));
  auto from_store = BinFromStore(catalog_.get(), repo_.get());
  ASSERT_TRUE(from_store) << from_store.error().ToString();
  ASSERT_EQ(from_store->size(), 1u);
  auto in_catalog = catalog_->GetBinnedSnapshot(kept);
  ASSERT_TRUE(in_catalog);
  const BinnedSnapshotRecord& b = (*from_store)[0];
  EXPECT_EQ(b.snapshot.snapshot_id, kept);
  EXPECT_EQ(b.snapshot.tags, in_catalog->snapshot.tags);
  EXPECT_EQ(b.snapshot.volume_size_bytes, in_catalog->snapshot.volume_size_bytes);
  EXPECT_EQ(b.entered_ms, kNow);
  EXPECT_EQ(b.exit_ms, kNow + 3 * kDayMs);
  EXPECT_EQ(b.rule_id, kDefaultBinRuleId);
  // A root both live and binned (a crash between the two writes of a move) counts as live.
  auto meta = repo_->GetManifest(live);
  ASSERT_TRUE(meta);
  ASSERT_TRUE(repo_->MoveManifestToBin(live, kNow, kNow + kDayMs, "x"));
  ASSERT_TRUE(repo_->PutManifest(*meta));
  from_store = BinFromStore(catalog_.get(), repo_.get());
  ASSERT_TRUE(from_store);
  EXPECT_EQ(from_store->size(), 1u);
}

}  // namespace
}  // namespace snapvol
