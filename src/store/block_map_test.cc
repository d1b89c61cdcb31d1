#include "store/block_map.h"

#include <gtest/gtest.h>

#include "core/ids.h"
#include "core/system_tags.h"
#include "store/memory_store.h"
#include "store/stored_object_test_util.h"

namespace snapvol {
namespace {

Digest BlockDigest(uint64_t i) {
  std::string s = "block " + std::to_string(i);
  return Sha256(AsBytes(s));
}

std::unique_ptr<Repository> NewRepo(MemoryStore** raw) {
  auto store = std::make_unique<MemoryStore>();
  *raw = store.get();
  return std::move(*Repository::Create(std::move(store), {}));
}

ManifestMeta WriteMap(Repository* repo, uint64_t blocks, const std::function<Digest(uint64_t)>& f,
                      const DigestSet* known, uint64_t* pages_written) {
  auto writer = repo->NewWriter();
  BlockMapWriter w(repo, writer.get(), blocks, known);
  for (uint64_t i = 0; i < blocks; ++i) EXPECT_TRUE(w.Append(f(i)));
  auto root = w.Finish();
  EXPECT_TRUE(root);
  EXPECT_TRUE(writer->Commit());
  if (pages_written) *pages_written = w.pages_written();
  ManifestMeta m;
  m.snapshot_id = NewSnapshotId();
  m.volume_id = NewVolumeId();
  m.block_size = 4096;
  m.block_count = blocks;
  m.volume_size = blocks * 4096;
  m.depth = w.depth();
  m.root_page = *root;
  return m;
}

TEST(BlockMap, Depth) {
  EXPECT_EQ(BlockMapDepth(0), 0u);
  EXPECT_EQ(BlockMapDepth(1024), 0u);
  EXPECT_EQ(BlockMapDepth(1025), 1u);
  EXPECT_EQ(BlockMapDepth(1024ull * 1024), 1u);
  EXPECT_EQ(BlockMapDepth(1024ull * 1024 + 1), 2u);
}

TEST(BlockMap, RoundTripAcrossDepthsWithHoles) {
  for (uint64_t blocks : {0ull, 1ull, 1000ull, 1024ull, 1025ull, 5000ull}) {
    MemoryStore* raw;
    auto repo = NewRepo(&raw);
    auto f = [](uint64_t i) { return (i % 7 == 3 || (i >= 2048 && i < 4096)) ? Digest{} : BlockDigest(i); };
    ManifestMeta m = WriteMap(repo.get(), blocks, f, nullptr, nullptr);
    BlockMapReader reader(repo.get(), m);
    for (uint64_t i = 0; i < blocks; ++i) {
      auto id = reader.BlockId(i);
      ASSERT_TRUE(id) << id.error().ToString();
      ASSERT_EQ(*id, f(i)) << "blocks=" << blocks << " i=" << i;
    }
    uint64_t walked = 0;
    ASSERT_TRUE(reader.Walk(nullptr, [&](uint64_t i, const Digest& d) -> Status {
      EXPECT_EQ(d, f(i));
      ++walked;
      return OkStatus();
    }));
    uint64_t expect = 0;
    for (uint64_t i = 0; i < blocks; ++i) expect += !IsZeroDigest(f(i));
    EXPECT_EQ(walked, expect);
  }
}

TEST(BlockMap, AllHolesStoresNothing) {
  MemoryStore* raw;
  auto repo = NewRepo(&raw);
  size_t before = raw->Count();
  ManifestMeta m = WriteMap(repo.get(), 3000, [](uint64_t) { return Digest{}; }, nullptr, nullptr);
  EXPECT_TRUE(IsZeroDigest(m.root_page));
  EXPECT_EQ(raw->Count(), before);
  BlockMapReader reader(repo.get(), m);
  EXPECT_TRUE(IsZeroDigest(*reader.BlockId(2999)));
}

TEST(BlockMap, IncrementalWritesOnlyChangedPages) {
  MemoryStore* raw;
  auto repo = NewRepo(&raw);
  const uint64_t blocks = 10 * 1024;  // ten leaves and a root
  uint64_t first_pages = 0;
  ManifestMeta m1 = WriteMap(repo.get(), blocks, BlockDigest, nullptr, &first_pages);
  EXPECT_EQ(first_pages, 11u);
  DigestSet known;
  BlockMapReader r1(repo.get(), m1);
  ASSERT_TRUE(r1.Walk([&](uint32_t, const Digest& p) -> Result<bool> { known.insert(p); return true; }, nullptr));
  EXPECT_EQ(known.size(), 11u);
  uint64_t second_pages = 0;
  auto changed = [](uint64_t i) { return i == 5000 ? Sha256(AsBytes("changed")) : BlockDigest(i); };
  ManifestMeta m2 = WriteMap(repo.get(), blocks, changed, &known, &second_pages);
  EXPECT_EQ(second_pages, 2u);  // one leaf and the root
  BlockMapReader r2(repo.get(), m2);
  EXPECT_EQ(*r2.BlockId(5000), Sha256(AsBytes("changed")));
  EXPECT_EQ(*r2.BlockId(5001), BlockDigest(5001));
}

TEST(BlockMap, MissingOrDamagedPageIsCorruption) {
  MemoryStore* raw;
  auto repo = NewRepo(&raw);
  ManifestMeta m = WriteMap(repo.get(), 2000, BlockDigest, nullptr, nullptr);
  auto pages = repo->ListObjects(ObjectKind::kIndexPage);
  ASSERT_TRUE(pages);
  ASSERT_EQ(pages->size(), 3u);
  ASSERT_TRUE(testing_util::CorruptStored(repo.get(), ObjectKind::kIndexPage, pages->front().id, 0x01, 20, raw));
  BlockMapReader reader(repo.get(), m);
  Status st = reader.Walk(nullptr, [](uint64_t, const Digest&) -> Status { return OkStatus(); });
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), ErrorCode::kCorruption);
}

TEST(Repository, ManifestRoundTripDeleteAndConfig) {
  MemoryStore* raw;
  auto repo = NewRepo(&raw);
  ManifestMeta m = WriteMap(repo.get(), 10, BlockDigest, nullptr, nullptr);
  m.tags = {{"Name", "web"}, {"Owner", "team-1"}};
  m.description = "daily";
  ASSERT_TRUE(repo->PutManifest(m));
  auto back = repo->GetManifest(m.snapshot_id);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->tags, m.tags);
  EXPECT_EQ(back->root_page, m.root_page);
  EXPECT_EQ(*repo->ListManifestIds(), std::vector<std::string>{m.snapshot_id});
  ASSERT_TRUE(repo->DeleteManifest(m.snapshot_id));
  EXPECT_EQ(repo->GetManifest(m.snapshot_id).error().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(repo->GetManifest(m.snapshot_id, true));
  EXPECT_EQ(repo->DeleteManifest(m.snapshot_id).error().code(), ErrorCode::kNotFound);
}

// A root written before the system tags moved under aws: (its writer put snapvol:… keys, as
// PutManifest writes whatever keys it is given) reads back with today's names; other keys,
// snapvol:… ones that were never snapvol's included, are read as written.
TEST(Repository, OldSystemTagKeysReadUnderTodaysNames) {
  MemoryStore* raw;
  auto repo = NewRepo(&raw);
  ManifestMeta m = WriteMap(repo.get(), 4, BlockDigest, nullptr, nullptr);
  m.tags = {{"Name", "web"}, {"snapvol:consistency", "point-in-time (reflink)"}, {"snapvol:policy-id", "policy-1"},
            {"snapvol:schedule", "daily"}, {"snapvol:run", "2026-12-01T02:00:00Z"}, {"snapvol:other", "mine"}};
  ASSERT_TRUE(repo->PutManifest(m));
  auto back = repo->GetManifest(m.snapshot_id);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->tags, (TagList{{"Name", "web"},
                                 {kConsistencyTag, "point-in-time (reflink)"},
                                 {kPolicyIdTag, "policy-1"},
                                 {kScheduleTag, "daily"},
                                 {kRunTag, "2026-12-01T02:00:00Z"},
                                 {"snapvol:other", "mine"}}));
}

TEST(Repository, EncryptedStoreRefusesWrongOrMissingKey) {
  auto store = std::make_unique<MemoryStore>();
  MemoryStore* raw = store.get();
  Key256 key;
  key.fill(7);
  RepositoryOptions opt;
  opt.master_key = key;
  auto repo = Repository::Create(std::move(store), opt);
  ASSERT_TRUE(repo);
  // Reopen over the same objects through a forwarding copy.
  auto objects = *raw->List("");
  auto copy = std::make_unique<MemoryStore>();
  auto copy2 = std::make_unique<MemoryStore>();
  for (auto& o : objects) {
    ASSERT_TRUE(copy->Put(o.key, *raw->Get(o.key)));
    ASSERT_TRUE(copy2->Put(o.key, *raw->Get(o.key)));
  }
  RepositoryOptions wrong;
  wrong.master_key = Key256{};
  auto w = Repository::Open(std::move(copy), wrong);
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code(), ErrorCode::kUnauthorized);
  EXPECT_NE(w.error().message().find("wrong encryption key"), std::string::npos);
  auto none = Repository::Open(std::move(copy2), {});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code(), ErrorCode::kUnauthorized);
}

TEST(Repository, NewerFormatVersionRefused) {
  auto store = std::make_unique<MemoryStore>();
  std::string cfg = R"({"format":"snapvol-store","version":99,"block_size":524288,"encryption":"none"})";
  ASSERT_TRUE(store->Put("config", std::vector<uint8_t>(cfg.begin(), cfg.end())));
  auto r = Repository::Open(std::move(store), {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kUnsupported);
  EXPECT_NE(r.error().message().find("upgrade snapvol"), std::string::npos);
}

}  // namespace
}  // namespace snapvol
