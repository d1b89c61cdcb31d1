// DiffBlockMaps (store/block_map_diff.h): the blocks whose ids differ between two block maps,
// against a block-by-block comparison, across depths (one leaf page, two levels, three), with
// holes (all-zero ids, whole subtrees of them), maps of different lengths and of different
// depths; and equal subtrees are not read.
#include "store/block_map_diff.h"

#include <gtest/gtest.h>

#include <set>

#include "core/ids.h"
#include "store/block_map.h"
#include "store/memory_store.h"

namespace snapvol {
namespace {

Digest BlockDigest(uint64_t i, int version) {
  std::string s = "block " + std::to_string(i) + " v" + std::to_string(version);
  return Sha256(AsBytes(s));
}

ManifestMeta WriteMap(Repository* repo, uint64_t blocks, const std::function<Digest(uint64_t)>& f) {
  auto writer = repo->NewWriter();
  BlockMapWriter w(repo, writer.get(), blocks, nullptr);
  for (uint64_t i = 0; i < blocks; ++i) EXPECT_TRUE(w.Append(f(i)));
  auto root = w.Finish();
  EXPECT_TRUE(root);
  EXPECT_TRUE(writer->Commit());
  ManifestMeta m;
  m.snapshot_id = NewSnapshotId();
  m.block_size = 4096;
  m.block_count = blocks;
  m.volume_size = blocks * 4096;
  m.depth = w.depth();
  m.root_page = *root;
  return m;
}

// The blocks that differ, block by block through BlockMapReader.
std::set<uint64_t> Expected(Repository* repo, const ManifestMeta& a, const ManifestMeta& b) {
  std::set<uint64_t> out;
  BlockMapReader ra(repo, a), rb(repo, b);
  const uint64_t common = std::min(a.block_count, b.block_count);
  for (uint64_t i = 0; i < common; ++i)
    if (*ra.BlockId(i) != *rb.BlockId(i)) out.insert(i);
  // Past the shorter map, its blocks read as holes: a block of the longer one differs unless
  // it is a hole too.
  const ManifestMeta& longer = a.block_count > b.block_count ? a : b;
  BlockMapReader rl(repo, longer);
  for (uint64_t i = common; i < longer.block_count; ++i)
    if (!IsZeroDigest(*rl.BlockId(i))) out.insert(i);
  return out;
}

std::set<uint64_t> Found(const BlockMapDiff& d) {
  std::set<uint64_t> out;
  for (uint64_t i = 0; i < d.changed.size(); ++i)
    if (d.changed[i]) out.insert(i);
  EXPECT_EQ(out.size(), d.changed_blocks);
  return out;
}

TEST(BlockMapDiff, MatchesABlockByBlockComparisonAcrossDepths) {
  auto repo = std::move(*Repository::Create(std::make_unique<MemoryStore>(), {}));
  for (uint64_t blocks : {1ull, 700ull, 1024ull, 1025ull, 2048ull, 5000ull, 1024ull * 1024 + 3}) {
    const std::set<uint64_t> changed = {0, 5, 1023, 1024, 1500, 2047, 4999, 1024ull * 1024 + 1};
    auto base = [](uint64_t i) { return (i % 11 == 4 || (i >= 3000 && i < 4100)) ? Digest{} : BlockDigest(i, 1); };
    auto later = [&](uint64_t i) {
      if (i == 4 || i == 3500) return BlockDigest(i, 2);  // a hole filled
      if (i == 7) return Digest{};                        // data punched
      return changed.count(i) ? BlockDigest(i, 2) : base(i);
    };
    ManifestMeta a = WriteMap(repo.get(), blocks, base), b = WriteMap(repo.get(), blocks, later);
    auto d = DiffBlockMaps(repo.get(), a, b);
    ASSERT_TRUE(d) << d.error().ToString();
    auto want = Expected(repo.get(), a, b);
    EXPECT_EQ(Found(*d), want) << blocks << " blocks";
    EXPECT_FALSE(want.empty());
    if (blocks > 1024 * 1024) EXPECT_LT(d->pages_read, 40u) << "equal subtrees were read";
    // Equal maps: nothing differs, no page is read.
    auto same = DiffBlockMaps(repo.get(), a, a);
    ASSERT_TRUE(same);
    EXPECT_EQ(same->changed_blocks, 0u);
    EXPECT_EQ(same->pages_read, 0u);
  }
}

TEST(BlockMapDiff, MapsOfDifferentLengthsAndDepths) {
  auto repo = std::move(*Repository::Create(std::make_unique<MemoryStore>(), {}));
  auto f = [](uint64_t i) { return i == 9 || i == 1450 ? Digest{} : BlockDigest(i, 1); };
  auto g = [](uint64_t i) { return i == 600 ? BlockDigest(i, 3) : BlockDigest(i, 1); };
  for (auto [na, nb] : {std::pair<uint64_t, uint64_t>{1000, 1010}, {1500, 1400}, {900, 3000}}) {
    ManifestMeta a = WriteMap(repo.get(), na, f), b = WriteMap(repo.get(), nb, g);
    auto d = DiffBlockMaps(repo.get(), a, b);
    ASSERT_TRUE(d) << d.error().ToString();
    EXPECT_EQ(d->changed.size(), std::max(na, nb));
    EXPECT_EQ(Found(*d), Expected(repo.get(), a, b)) << na << " vs " << nb;
  }
  ManifestMeta a = WriteMap(repo.get(), 10, f), b = WriteMap(repo.get(), 10, g);
  b.block_size = 8192;
  EXPECT_EQ(DiffBlockMaps(repo.get(), a, b).error().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace snapvol
