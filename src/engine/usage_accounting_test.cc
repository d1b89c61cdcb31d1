// Usage accounting checked against the definitions, computed the slow way: every object each
// live snapshot reaches (a full walk of its block map) and its stored size. Snapshots share
// chunks within a volume's lineage, across volumes of one account, across accounts, hold the
// same block twice, and one is identical to another (one root page referenced twice).
#include "engine/usage_accounting.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "catalog/catalog_test_util.h"
#include "core/hash.h"
#include "core/ids.h"
#include "engine/snapshot_engine.h"
#include "store/block_map.h"
#include "store/gc.h"
#include "store/memory_store.h"
#include "store/stored_object_test_util.h"

namespace snapvol {
namespace {

constexpr uint32_t kBs = 4096;

// A volume whose block b holds a pattern made from seeds[b]; seed 0 is a hole (all zero).
class SeededSource : public BlockSource {
 public:
  SeededSource(std::vector<uint32_t> seeds, uint64_t size) : seeds_(std::move(seeds)), size_(size) {}
  uint64_t size() const override { return size_; }
  Status ReadAt(uint64_t off, std::span<uint8_t> out) override {
    for (size_t i = 0; i < out.size(); ++i) {
      const uint64_t pos = off + i, seed = seeds_[pos / kBs];
      out[i] = seed == 0 ? 0 : static_cast<uint8_t>(((seed * 0x9E3779B97F4A7C15ull) >> (8 * (pos % 8))) | 1);
    }
    return OkStatus();
  }
  std::string Describe() const override { return "seeded"; }

 private:
  std::vector<uint32_t> seeds_;
  uint64_t size_;
};

class UsageAccountingTest : public testing_util::FreshCatalogTest {
 protected:
  void SetUp() override {
    FreshCatalogTest::SetUp();
    auto owned = std::make_unique<MemoryStore>(&clock_);
    store_ = owned.get();
    RepositoryOptions opt;
    opt.block_size = kBs;
    repo_ = std::move(*Repository::Create(std::move(owned), opt));
    usage_ = std::make_unique<UsageAccounting>(cat_.get(), repo_.get());
    for (const char* alias : {"team-a", "team-b"}) {
      auto a = cat_->CreateAccount(alias);
      ASSERT_TRUE(a) << a.error().ToString();
      accounts_.push_back(a->account_id);
    }
  }

  // Takes a snapshot of seeds (size: the volume's bytes, default whole blocks) for account,
  // and records it completed in the catalog as the engine's callers do.
  std::string Snap(const std::string& account, const std::string& volume, std::vector<uint32_t> seeds,
                   uint64_t size = 0, const std::string& parent = "") {
    if (size == 0) size = seeds.size() * kBs;
    if (!volume_ids_.count(volume)) volume_ids_[volume] = NewVolumeId();
    const std::string volume_id = volume_ids_[volume];
    SeededSource src(std::move(seeds), size);
    SnapshotEngine engine(repo_.get(), &pool_);
    SnapshotRequest req;
    req.snapshot_id = NewSnapshotId();
    req.volume_id = volume_id;
    req.owner_id = account;
    req.parent_id = parent;
    req.start_time_ms = ++now_;
    auto out = engine.Create(&src, req);
    EXPECT_TRUE(out) << out.error().ToString();
    SnapshotRecord r;
    r.snapshot_id = req.snapshot_id;
    r.volume_id = volume_id;
    r.account_id = account;
    r.start_time_ms = now_;
    r.volume_size_bytes = size;
    r.block_size = kBs;
    r.runner = "test";
    auto inserted = cat_->InsertSnapshot(r);
    EXPECT_TRUE(inserted) << inserted.error().ToString();
    EXPECT_TRUE(cat_->MarkCompleted(r.snapshot_id, now_, 0, 0, 0));
    live_[r.snapshot_id] = {account, size};
    return r.snapshot_id;
  }

  void Delete(const std::string& id) {
    ASSERT_TRUE(cat_->DeleteSnapshot(id, now_, nullptr));
    ASSERT_TRUE(repo_->DeleteManifest(id));
    live_.erase(id);
  }

  // Every object (chunk or page) the snapshot reaches, with its stored size; and its full size.
  std::map<std::string, uint64_t> Reach(const std::string& id, uint64_t* full) {
    auto meta = repo_->GetManifest(id, true);
    EXPECT_TRUE(meta);
    std::map<std::string, uint64_t> out;
    BlockMapReader reader(repo_.get(), *meta);
    *full = 0;
    auto st = reader.Walk(
        [&](uint32_t, const Digest& page) -> Result<bool> {
          out["p" + ToHex(page)] = *repo_->StoredSize(ObjectKind::kIndexPage, page);
          return true;
        },
        [&](uint64_t index, const Digest& chunk) -> Status {
          out["c" + ToHex(chunk)] = *repo_->StoredSize(ObjectKind::kChunk, chunk);
          *full += std::min<uint64_t>(kBs, meta->volume_size - index * kBs);
          return OkStatus();
        });
    EXPECT_TRUE(st) << st.error().ToString();
    return out;
  }

  // Drains the journal and compares every number with the slow computation.
  void CheckAgainstDefinitions() {
    auto drained = usage_->Drain();
    ASSERT_TRUE(drained) << drained.error().ToString();
    std::map<std::string, std::map<std::string, uint64_t>> reach;
    std::map<std::string, std::set<std::string>> holders;  // object → accounts
    std::map<std::string, std::set<std::string>> snaps_of;  // object → snapshots
    std::map<std::string, uint64_t> size_of, full_of;
    for (const auto& [id, info] : live_) {
      reach[id] = Reach(id, &full_of[id]);
      for (const auto& [obj, size] : reach[id]) {
        holders[obj].insert(info.first);
        snaps_of[obj].insert(id);
        size_of[obj] = size;
      }
    }
    for (const auto& [id, objs] : reach) {
      uint64_t unique = 0;
      for (const auto& [obj, size] : objs)
        if (snaps_of[obj].size() == 1) unique += size;
      auto got = usage_->Snapshot(id);
      ASSERT_TRUE(got) << got.error().ToString();
      EXPECT_EQ(got->unique_bytes, unique) << id;
      EXPECT_EQ(got->full_bytes, full_of[id]) << id;
      auto again = usage_->Snapshot(id);  // from the cache
      ASSERT_TRUE(again);
      EXPECT_EQ(again->unique_bytes, unique) << id;
    }
    std::map<std::string, std::pair<uint64_t, uint64_t>> want;
    uint64_t total = 0;
    for (const auto& [obj, accts] : holders) {
      total += size_of[obj];
      for (const auto& a : accts) (accts.size() == 1 ? want[a].first : want[a].second) += size_of[obj];
    }
    auto totals = usage_->Totals();
    ASSERT_TRUE(totals) << totals.error().ToString();
    EXPECT_EQ(totals->pending, 0u);
    EXPECT_EQ(totals->stored_bytes, total);
    std::map<std::string, std::pair<uint64_t, uint64_t>> got;
    for (const auto& a : totals->accounts)
      if (a.exclusive_bytes || a.shared_bytes) got[a.account_id] = {a.exclusive_bytes, a.shared_bytes};
    EXPECT_EQ(got, want);
  }

  FakeClock clock_{1'800'000'000'000};
  MemoryStore* store_ = nullptr;
  std::unique_ptr<Repository> repo_;
  ThreadPool pool_{2};
  std::unique_ptr<UsageAccounting> usage_;
  std::vector<std::string> accounts_;
  std::map<std::string, std::string> volume_ids_;  // the test's names → vol-… ids
  std::map<std::string, std::pair<std::string, uint64_t>> live_;  // snapshot → (account, size)
  int64_t now_ = 1'800'000'000'000;
};

std::vector<uint32_t> Seeds(size_t n, uint32_t first) {
  std::vector<uint32_t> s(n);
  for (size_t i = 0; i < n; ++i) s[i] = first + static_cast<uint32_t>(i);
  return s;
}

TEST_F(UsageAccountingTest, NumbersMatchTheirDefinitionsAsSnapshotsComeAndGo) {
  const std::string& a = accounts_[0];
  const std::string& b = accounts_[1];
  // A two-level block map (1100 blocks > one leaf page), with holes and a block held twice.
  std::vector<uint32_t> v1 = Seeds(1100, 1);
  for (size_t i = 200; i < 260; ++i) v1[i] = 0;
  v1[11] = v1[10];
  std::string a1 = Snap(a, "vol-a", v1);
  std::vector<uint32_t> v2 = v1;
  for (size_t i : {3, 500, 1099}) v2[i] = 90000 + static_cast<uint32_t>(i);
  std::string a2 = Snap(a, "vol-a", v2, 0, a1);
  // Account b: a volume whose first 100 blocks are a's too, and a short last block.
  std::vector<uint32_t> w = Seeds(300, 50000);
  for (size_t i = 0; i < 100; ++i) w[i] = v1[i];
  std::string b1 = Snap(b, "vol-b", w, 300 * kBs - 100);
  std::string b2 = Snap(b, "vol-b", w, 300 * kBs - 100, b1);  // identical: the same root page
  // Another of a's volumes with a's first blocks: shared within the account only.
  std::string a3 = Snap(a, "vol-c", std::vector<uint32_t>(v1.begin() + 500, v1.begin() + 520));
  CheckAgainstDefinitions();

  auto u2 = usage_->Snapshot(b2);
  ASSERT_TRUE(u2);
  EXPECT_EQ(u2->unique_bytes, 0u) << "b2 is b1's twin: deleting it alone frees nothing";
  EXPECT_EQ(u2->full_bytes, 300u * kBs - 100);

  Delete(a1);
  CheckAgainstDefinitions();
  Delete(b1);
  CheckAgainstDefinitions();
  Delete(a3);
  Delete(a2);
  CheckAgainstDefinitions();
  Delete(b2);
  CheckAgainstDefinitions();
  auto totals = usage_->Totals();
  ASSERT_TRUE(totals);
  EXPECT_EQ(totals->stored_bytes, 0u);
  EXPECT_TRUE(totals->accounts.empty());
}

TEST_F(UsageAccountingTest, ARebuildCountsTheSameAsTheJournal) {
  std::string a1 = Snap(accounts_[0], "vol-a", Seeds(40, 1));
  Snap(accounts_[1], "vol-b", Seeds(40, 21));
  Snap(accounts_[0], "vol-a", Seeds(40, 5), 0, a1);
  ASSERT_TRUE(usage_->Drain());
  auto before = usage_->Totals();
  ASSERT_TRUE(before);
  ASSERT_TRUE(cat_->ResetUsage());
  EXPECT_EQ(usage_->Totals()->pending, 3u);
  EXPECT_EQ(usage_->Totals()->stored_bytes, 0u);
  CheckAgainstDefinitions();
  EXPECT_EQ(usage_->Totals()->stored_bytes, before->stored_bytes);
}

TEST_F(UsageAccountingTest, AnEntryThatFailsStaysInTheJournalAndNothingIsCountedTwice) {
  std::string a1 = Snap(accounts_[0], "vol-a", Seeds(1100, 1));
  // The root page is unreadable: the add cannot be worked out.
  auto meta = repo_->GetManifest(a1);
  ASSERT_TRUE(meta);
  // Its stored object (format 2: the pack holding it) goes, and comes back below.
  auto root = testing_util::LocateStored(repo_.get(), ObjectKind::kIndexPage, meta->root_page);
  ASSERT_TRUE(root) << root.error().ToString();
  std::vector<uint8_t> saved = *store_->Get(root->key);
  ASSERT_TRUE(store_->Delete(root->key));
  auto failed = usage_->Drain();
  ASSERT_FALSE(failed);
  EXPECT_EQ(usage_->Totals()->pending, 1u);
  EXPECT_EQ(usage_->Totals()->stored_bytes, 0u);
  EXPECT_EQ(usage_->Snapshot(a1).error().code(), ErrorCode::kNotFound);
  ASSERT_TRUE(store_->Put(root->key, saved));
  // Worked out again from the start: every count once.
  CheckAgainstDefinitions();
  // An add journalled twice (a catalog rebuild upserts a counted snapshot) counts once.
  auto rec = cat_->GetSnapshot(a1);
  ASSERT_TRUE(cat_->UpsertSnapshot(*rec));
  CheckAgainstDefinitions();
}

TEST_F(UsageAccountingTest, GcKeepsWhatAPendingRemovalMustReadUntilItIsApplied) {
  std::string a1 = Snap(accounts_[0], "vol-a", Seeds(1100, 1));
  ASSERT_TRUE(usage_->Drain());
  Delete(a1);  // journalled, not applied
  auto keep = usage_->KeepForUsage();
  ASSERT_TRUE(keep);
  ASSERT_EQ(*keep, std::vector<std::string>{a1});
  clock_.Advance(24 * 3600 * 1000);
  GcOptions gc;
  gc.clock = &clock_;
  gc.keep_snapshots = *keep;
  auto kept = CollectGarbage(repo_.get(), gc);
  ASSERT_TRUE(kept) << kept.error().ToString();
  EXPECT_EQ(kept->deleted_chunks, 0u);
  CheckAgainstDefinitions();  // the removal reads a1's pages: still there
  EXPECT_TRUE(usage_->KeepForUsage()->empty());
  gc.keep_snapshots.clear();
  auto swept = CollectGarbage(repo_.get(), gc);
  ASSERT_TRUE(swept);
  EXPECT_EQ(swept->deleted_chunks, 1100u);
}

}  // namespace
}  // namespace snapvol
