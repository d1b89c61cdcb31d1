// The compact store-wide index of format 2: lookups across merges of its delta, the first
// copy winning, a rebuild when an index object vanishes, the cache file and its log (covers,
// refused when damaged, truncated, stale or foreign, then rebuilt; mode 0600; a commit
// appends to the log, the file is written whole once the log passes its share), and its size
// per entry at 2 M entries.
#include "store/packed_index.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>

#include "core/file_util.h"
#include "core/ids.h"
#include "store/memory_store.h"

namespace snapvol {
namespace {

Digest RandomDigest(std::mt19937_64& rng) {
  Digest d;
  for (size_t i = 0; i < d.size(); i += 8) {
    uint64_t v = rng();
    std::memcpy(d.data() + i, &v, 8);
  }
  return d;
}

// A pack of n chunk entries (and one index page entry), back to back.
IndexedPack MakePack(std::mt19937_64& rng, size_t n) {
  IndexedPack p;
  p.pack = RandomDigest(rng);
  uint32_t at = 0;
  for (size_t i = 0; i < n; ++i) {
    p.entries.push_back({RandomDigest(rng), ObjectKind::kChunk, at, 1000 + static_cast<uint32_t>(i)});
    at += 1000 + static_cast<uint32_t>(i);
  }
  p.entries.push_back({RandomDigest(rng), ObjectKind::kIndexPage, at, 77});
  return p;
}

TEST(IndexTableTest, FindsEveryEntryAcrossMergesAndNothingElse) {
  std::mt19937_64 rng(1);
  IndexTable t;
  std::vector<IndexedPack> packs;
  for (int i = 0; i < 300; ++i) {  // 30,000 chunks: the delta is merged several times
    packs.push_back(MakePack(rng, 100));
    ASSERT_TRUE(t.AddPack(packs.back().pack, packs.back().entries));
  }
  EXPECT_EQ(t.size(ObjectKind::kChunk), 30000u);
  EXPECT_EQ(t.size(ObjectKind::kIndexPage), 300u);
  for (const auto& p : packs)
    for (const auto& e : p.entries) {
      auto loc = t.Find(e.kind, e.id);
      ASSERT_TRUE(loc);
      EXPECT_EQ(t.PackId(loc->pack), p.pack);
      EXPECT_EQ(loc->offset, e.offset);
      EXPECT_EQ(loc->length, e.length);
      // Kinds are separate, and an id one bit off is another id (no truncated match).
      EXPECT_FALSE(t.Find(e.kind == ObjectKind::kChunk ? ObjectKind::kIndexPage : ObjectKind::kChunk, e.id));
      Digest near = e.id;
      near[31] ^= 1;
      EXPECT_FALSE(t.Find(e.kind, near));
    }
  ASSERT_TRUE(t.Compact());
  size_t seen = 0;
  t.ForEach(ObjectKind::kChunk, [&](const Digest&, const IndexLoc&) { ++seen; });
  EXPECT_EQ(seen, 30000u);
}

TEST(IndexTableTest, TheFirstCopyWinsInTheDeltaAndAfterAMerge) {
  std::mt19937_64 rng(2);
  IndexTable t;
  IndexedPack a = MakePack(rng, 3), b = MakePack(rng, 3), c = MakePack(rng, 3);
  b.entries[0].id = a.entries[0].id;  // both in the delta
  ASSERT_TRUE(t.AddPack(a.pack, a.entries));
  ASSERT_TRUE(t.AddPack(b.pack, b.entries));
  EXPECT_EQ(t.PackId(t.Find(ObjectKind::kChunk, a.entries[0].id)->pack), a.pack);
  ASSERT_TRUE(t.Compact());
  c.entries[1].id = a.entries[0].id;  // the first in the sorted array, the second in the delta
  ASSERT_TRUE(t.AddPack(c.pack, c.entries));
  auto loc = t.Find(ObjectKind::kChunk, a.entries[0].id);
  EXPECT_EQ(t.PackId(loc->pack), a.pack);
  EXPECT_EQ(loc->offset, a.entries[0].offset);
  EXPECT_EQ(t.size(ObjectKind::kChunk), 7u);
}

TEST(IndexTableTest, ABulkBuildResolvesEveryIdAsAddingOneByOneDoes) {
  std::mt19937_64 rng(5);
  std::vector<IndexedPack> packs;
  for (int i = 0; i < 200; ++i) packs.push_back(MakePack(rng, 60));
  // Copies of the same ids in later packs (and a pack named twice): the first copy wins.
  for (int i = 0; i < 50; ++i) packs[100 + i].entries[i % 60].id = packs[i].entries[(i + 7) % 60].id;
  packs.push_back(packs[3]);
  IndexTable one, bulk;
  bulk.BeginBulk();
  for (const auto& p : packs) {
    ASSERT_TRUE(one.AddPack(p.pack, p.entries));
    ASSERT_TRUE(bulk.AddPack(p.pack, p.entries));
  }
  ASSERT_TRUE(bulk.EndBulk());
  EXPECT_EQ(bulk.size(ObjectKind::kChunk), one.size(ObjectKind::kChunk));
  EXPECT_EQ(bulk.size(ObjectKind::kChunk), 200u * 60 - 50);
  for (const auto& p : packs)
    for (const auto& e : p.entries) {
      auto a = one.Find(e.kind, e.id), b = bulk.Find(e.kind, e.id);
      ASSERT_TRUE(a && b);
      EXPECT_EQ(a->pack, b->pack);
      EXPECT_EQ(a->offset, b->offset);
    }
  for (int i = 0; i < 50; ++i)
    EXPECT_EQ(bulk.PackId(bulk.Find(ObjectKind::kChunk, packs[i].entries[(i + 7) % 60].id)->pack), packs[i].pack);
}

// 2,000,000 entries, 44 bytes of each a full record: at most 50 bytes per entry in all,
// counted by the table itself (mapped capacity, delta nodes and buckets, the pack table).
TEST(IndexTableTest, TwoMillionEntriesTakeAtMostFiftyBytesEach) {
  constexpr size_t kEntries = 2'000'000, kPerPack = 32;  // 16 MiB packs of 512 KiB chunks
  std::mt19937_64 rng(3);
  IndexTable t;
  std::vector<PackEntry> entries(kPerPack);
  std::vector<Digest> sample;
  auto t0 = std::chrono::steady_clock::now();
  uint64_t peak = 0;
  for (size_t n = 0; n < kEntries; n += kPerPack) {
    Digest pack = RandomDigest(rng);
    for (size_t i = 0; i < kPerPack; ++i) {
      entries[i] = {RandomDigest(rng), ObjectKind::kChunk, static_cast<uint32_t>(i << 19), 1u << 19};
      if ((n + i) % 1000 == 0) sample.push_back(entries[i].id);
    }
    ASSERT_TRUE(t.AddPack(pack, entries));
    if (n % (kPerPack * 1024) == 0) peak = std::max(peak, t.MemoryBytes());
  }
  auto t1 = std::chrono::steady_clock::now();
  peak = std::max(peak, t.MemoryBytes());
  ASSERT_EQ(t.size(ObjectKind::kChunk), kEntries);
  const double per_entry = double(peak) / double(kEntries);
  EXPECT_LE(per_entry, 50.0) << peak << " bytes at the most for " << kEntries << " entries";
  size_t found = 0;
  auto t2 = std::chrono::steady_clock::now();
  for (int round = 0; round < 500; ++round)
    for (const auto& id : sample) found += t.Find(ObjectKind::kChunk, id).has_value();
  auto t3 = std::chrono::steady_clock::now();
  EXPECT_EQ(found, sample.size() * 500);
  // The same entries built in bulk, as a rebuild from the store does.
  std::mt19937_64 again(3);
  IndexTable bulk;
  auto t4 = std::chrono::steady_clock::now();
  bulk.BeginBulk();
  for (size_t n = 0; n < kEntries; n += kPerPack) {
    Digest pack = RandomDigest(again);
    for (size_t i = 0; i < kPerPack; ++i)
      entries[i] = {RandomDigest(again), ObjectKind::kChunk, static_cast<uint32_t>(i << 19), 1u << 19};
    ASSERT_TRUE(bulk.AddPack(pack, entries));
  }
  ASSERT_TRUE(bulk.EndBulk());
  auto t5 = std::chrono::steady_clock::now();
  ASSERT_EQ(bulk.size(ObjectKind::kChunk), kEntries);
  EXPECT_LE(double(bulk.MemoryBytes()) / double(kEntries), 50.0);
  for (const auto& id : sample) ASSERT_EQ(bulk.Find(ObjectKind::kChunk, id)->offset, t.Find(ObjectKind::kChunk, id)->offset);
  // Figures for the record, not asserted.
  std::printf("index: %zu entries, %.1f bytes/entry at the most, built in %.0f ms (in bulk: %.0f ms, %.1f bytes/entry), "
              "%.2f us per lookup\n",
              kEntries, per_entry, std::chrono::duration<double, std::milli>(t1 - t0).count(),
              std::chrono::duration<double, std::milli>(t5 - t4).count(), double(bulk.MemoryBytes()) / double(kEntries),
              std::chrono::duration<double, std::micro>(t3 - t2).count() / double(sample.size() * 500));
}

class PackedIndexTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir() + "/packed-index-" + NewVolumeId();
    ASSERT_TRUE(MakeDirs(dir_, 0700));
    cache_ = IndexCachePath(dir_, kStoreId);
  }
  void TearDown() override {
    ::unlink(cache_.c_str());
    ::unlink(IndexCacheLogPath(cache_).c_str());
    ::rmdir(dir_.c_str());
  }

  // Publishes packs as one packindex/ object, as a writer's commit does.
  std::string Publish(const std::vector<IndexedPack>& packs) {
    char key[64];
    std::snprintf(key, sizeof key, "%s%032x-%08x", kPackIndexPrefix, 0xabcu, seq_++);
    auto enc = codec_.Encode(ObjectKind::kStoreIndex, Sha256(AsBytes(std::string(key))), EncodeStoreIndex(packs));
    EXPECT_TRUE(enc);
    EXPECT_TRUE(store_.Put(key, *enc));
    return key;
  }
  std::unique_ptr<PackedIndex> Open(const std::string& cache, const std::string& store_id = kStoreId) {
    auto idx = std::make_unique<PackedIndex>(&store_, &codec_, store_id, cache);
    auto st = idx->Refresh();
    EXPECT_TRUE(st) << st.error().ToString();
    return idx;
  }
  static void ExpectHolds(const PackedIndex& idx, const std::vector<IndexedPack>& packs) {
    for (const auto& p : packs)
      for (const auto& e : p.entries) {
        auto loc = idx.Find(e.kind, e.id);
        ASSERT_TRUE(loc);
        EXPECT_EQ(loc->pack, p.pack);
        EXPECT_EQ(loc->offset, e.offset);
      }
  }

  static constexpr char kStoreId[] = "0123456789abcdef0123456789abcdef";
  std::mt19937_64 rng_{4};
  MemoryStore store_;
  ChunkCodec codec_{std::nullopt};
  std::string dir_, cache_;
  uint32_t seq_ = 0;
};

TEST_F(PackedIndexTest, AVanishedIndexObjectMakesTheNextRefreshRebuild) {
  std::vector<IndexedPack> a = {MakePack(rng_, 5)}, b = {MakePack(rng_, 5)};
  std::string ka = Publish(a);
  Publish(b);
  auto idx = Open("");
  ExpectHolds(*idx, a);
  ExpectHolds(*idx, b);
  // A gc replaced index object a with one naming only its first entry's pack, moved.
  IndexedPack moved{RandomDigest(rng_), {a[0].entries[0]}};
  Publish({moved});
  ASSERT_TRUE(store_.Delete(ka));
  ASSERT_TRUE(idx->Refresh());
  EXPECT_EQ(idx->Find(ObjectKind::kChunk, a[0].entries[0].id)->pack, moved.pack);
  EXPECT_FALSE(idx->Find(ObjectKind::kChunk, a[0].entries[1].id));
  ExpectHolds(*idx, b);
}

TEST_F(PackedIndexTest, TheCacheFileCoversWhatItNamesAndIsPrivate) {
  std::vector<IndexedPack> a = {MakePack(rng_, 50)}, b = {MakePack(rng_, 50), MakePack(rng_, 7)};
  Publish(a);
  Publish(b);
  auto first = Open(cache_);
  EXPECT_EQ(first->last_refresh().objects_read, 2u);
  EXPECT_FALSE(first->last_refresh().from_cache);
  EXPECT_EQ(first->last_refresh().cache_problem, "");
  struct stat st {};
  ASSERT_EQ(::stat(cache_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  std::vector<IndexedPack> c = {MakePack(rng_, 9)};
  Publish(c);
  auto second = Open(cache_);
  EXPECT_TRUE(second->last_refresh().from_cache);
  EXPECT_EQ(second->last_refresh().objects_read, 1u);  // only the one the file does not cover
  for (const auto* packs : {&a, &b, &c}) ExpectHolds(*second, *packs);

  auto third = Open(cache_);  // the second appended c's object to the log
  EXPECT_TRUE(third->last_refresh().from_cache);
  EXPECT_EQ(third->last_refresh().objects_read, 0u);
  for (const auto* packs : {&a, &b, &c}) ExpectHolds(*third, *packs);
}

TEST_F(PackedIndexTest, ADamagedCacheFileIsRefusedAndRebuilt) {
  std::vector<IndexedPack> a = {MakePack(rng_, 200)};
  Publish(a);
  Open(cache_);
  auto bytes = ReadWholeFile(cache_);
  ASSERT_TRUE(bytes);
  for (size_t at : {bytes->size() - 3, size_t{60}}) {  // a record byte, then a header byte
    std::vector<uint8_t> bad = *bytes;
    bad[at] ^= 0x10;
    ASSERT_TRUE(WriteFileAtomic(cache_, bad, 0600));
    auto idx = Open(cache_);
    EXPECT_FALSE(idx->last_refresh().from_cache) << at;
    EXPECT_NE(idx->last_refresh().cache_problem.find("index cache"), std::string::npos);
    EXPECT_EQ(idx->last_refresh().objects_read, 1u);
    ExpectHolds(*idx, a);
    EXPECT_EQ(*ReadWholeFile(cache_), *bytes) << "rebuilt as it was";
    EXPECT_TRUE(Open(cache_)->last_refresh().from_cache);
  }
  // Cut short.
  std::vector<uint8_t> cut(bytes->begin(), bytes->end() - 44);
  ASSERT_TRUE(WriteFileAtomic(cache_, cut, 0600));
  EXPECT_FALSE(Open(cache_)->last_refresh().from_cache);
  EXPECT_TRUE(Open(cache_)->last_refresh().from_cache);
}

TEST_F(PackedIndexTest, ACacheFileOfAnotherStoreOrCoveringAVanishedObjectIsNotUsed) {
  std::vector<IndexedPack> a = {MakePack(rng_, 5)}, b = {MakePack(rng_, 5)};
  std::string ka = Publish(a);
  Publish(b);
  Open(cache_);
  auto ours = ReadWholeFile(cache_);
  ASSERT_TRUE(ours);
  // The same file read as another store's.
  auto other = Open(cache_, "ffffffffffffffffffffffffffffffff");
  EXPECT_FALSE(other->last_refresh().from_cache);
  EXPECT_NE(other->last_refresh().cache_problem.find("belongs to store"), std::string::npos);
  ASSERT_TRUE(WriteFileAtomic(cache_, *ours, 0600));  // back to ours
  auto again = Open(cache_);
  EXPECT_TRUE(again->last_refresh().from_cache);
  // Index object a was replaced by a gc: the file covers it, so it is stale.
  IndexedPack moved{RandomDigest(rng_), {a[0].entries[0]}};
  Publish({moved});
  ASSERT_TRUE(store_.Delete(ka));
  auto fresh = Open(cache_);
  EXPECT_FALSE(fresh->last_refresh().from_cache);
  EXPECT_NE(fresh->last_refresh().cache_problem.find("no longer has"), std::string::npos);
  EXPECT_EQ(fresh->Find(ObjectKind::kChunk, a[0].entries[0].id)->pack, moved.pack);
  EXPECT_FALSE(fresh->Find(ObjectKind::kChunk, a[0].entries[1].id));
  ExpectHolds(*fresh, b);
  EXPECT_TRUE(Open(cache_)->last_refresh().from_cache);  // rebuilt
}

TEST_F(PackedIndexTest, ACommitAppendsToTheLogInsteadOfRewritingTheFile) {
  std::vector<IndexedPack> a = {MakePack(rng_, 300)};
  Publish(a);
  auto idx = Open(cache_);
  const auto file = ReadWholeFile(cache_);
  ASSERT_TRUE(file);
  const uint64_t written = idx->cache_bytes_written();
  EXPECT_EQ(written, file->size()) << "the first open wrote the sorted file, once";
  std::vector<IndexedPack> b = {MakePack(rng_, 5)};
  ASSERT_TRUE(idx->Published(Publish(b), b));
  ExpectHolds(*idx, b);
  // The sorted file is as it was; the log holds b's object: 16 bytes, the key, the plaintext.
  EXPECT_EQ(*ReadWholeFile(cache_), *file);
  EXPECT_EQ(idx->cache_bytes_written() - written, 16 + 51 + EncodeStoreIndex(b).size());
  struct stat st {};
  ASSERT_EQ(::stat(IndexCacheLogPath(cache_).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto next = Open(cache_);
  EXPECT_TRUE(next->last_refresh().from_cache);
  EXPECT_EQ(next->last_refresh().objects_read, 0u);
  EXPECT_EQ(next->last_refresh().cache_problem, "");
  EXPECT_EQ(next->cache_bytes_written(), 0u) << "nothing new: nothing written";
  ExpectHolds(*next, a);
  ExpectHolds(*next, b);
  // An object another process published is read once, then it is in the log too.
  std::vector<IndexedPack> c = {MakePack(rng_, 7)};
  Publish(c);
  auto third = Open(cache_);
  EXPECT_EQ(third->last_refresh().objects_read, 1u);
  EXPECT_EQ(*ReadWholeFile(cache_), *file);
  auto fourth = Open(cache_);
  EXPECT_EQ(fourth->last_refresh().objects_read, 0u);
  for (const auto* packs : {&a, &b, &c}) ExpectHolds(*fourth, *packs);
}

TEST_F(PackedIndexTest, TheFileIsWrittenWholeOnceTheLogPassesItsShare) {
  std::vector<IndexedPack> a = {MakePack(rng_, 100)};
  Publish(a);
  auto idx = Open(cache_);
  const auto file = ReadWholeFile(cache_);
  ASSERT_TRUE(file);
  // The log's share of a small file is kIndexDeltaMin entries' bytes: 35 commits of 100
  // entries (4,507 bytes each in the log) stay under it, the 40th passes it.
  std::vector<std::vector<IndexedPack>> commits;
  for (int i = 0; i < 35; ++i) {
    commits.push_back({MakePack(rng_, 99)});
    ASSERT_TRUE(idx->Published(Publish(commits.back()), commits.back()));
  }
  EXPECT_EQ(*ReadWholeFile(cache_), *file);
  const auto log_before = ReadWholeFile(IndexCacheLogPath(cache_));
  ASSERT_TRUE(log_before);
  EXPECT_GT(log_before->size(), 35u * 100 * kPackIndexEntryBytes);
  for (int i = 0; i < 5; ++i) {
    commits.push_back({MakePack(rng_, 99)});
    ASSERT_TRUE(idx->Published(Publish(commits.back()), commits.back()));
  }
  // Passed it: the file holds everything, the log starts again empty.
  EXPECT_NE(*ReadWholeFile(cache_), *file);
  EXPECT_LT(ReadWholeFile(IndexCacheLogPath(cache_))->size(), 100u);
  for (const auto& c : commits) ExpectHolds(*idx, c);
  auto next = Open(cache_);
  EXPECT_TRUE(next->last_refresh().from_cache);
  EXPECT_EQ(next->last_refresh().objects_read, 0u);
  ExpectHolds(*next, a);
  for (const auto& c : commits) ExpectHolds(*next, c);
}

TEST_F(PackedIndexTest, ADamagedTruncatedOrForeignLogIsRefusedAndRebuilt) {
  std::vector<IndexedPack> a = {MakePack(rng_, 50)};
  Publish(a);
  Open(cache_);
  auto idx = Open(cache_);
  std::vector<IndexedPack> b = {MakePack(rng_, 20)}, c = {MakePack(rng_, 30)};
  ASSERT_TRUE(idx->Published(Publish(b), b));
  ASSERT_TRUE(idx->Published(Publish(c), c));
  const std::string log_path = IndexCacheLogPath(cache_);
  const auto file = ReadWholeFile(cache_);
  const auto log = ReadWholeFile(log_path);
  ASSERT_TRUE(file && log);
  std::vector<std::vector<uint8_t>> bad;
  for (size_t at : {log->size() - 3, log->size() / 2, size_t{10}, size_t{30}}) {  // sections, then the header
    bad.push_back(*log);
    bad.back()[at] ^= 0x04;
  }
  bad.emplace_back(log->begin(), log->end() - 5);  // torn last section
  bad.emplace_back(log->begin(), log->begin() + 10);  // torn header
  for (size_t i = 0; i < bad.size(); ++i) {
    ASSERT_TRUE(WriteFileAtomic(cache_, *file, 0600));
    ASSERT_TRUE(WriteFileAtomic(log_path, bad[i], 0600));
    auto again = Open(cache_);
    // The sorted file checks itself and is used; nothing of the log is: b and c are read.
    EXPECT_TRUE(again->last_refresh().from_cache) << i;
    EXPECT_NE(again->last_refresh().cache_problem.find("index cache log"), std::string::npos) << i;
    EXPECT_EQ(again->last_refresh().objects_read, 2u) << i;
    for (const auto* packs : {&a, &b, &c}) ExpectHolds(*again, *packs);
    // Rebuilt: the file covers all three, the log starts again.
    auto after = Open(cache_);
    EXPECT_TRUE(after->last_refresh().from_cache) << i;
    EXPECT_EQ(after->last_refresh().objects_read, 0u) << i;
    EXPECT_EQ(after->last_refresh().cache_problem, "") << i;
    for (const auto* packs : {&a, &b, &c}) ExpectHolds(*after, *packs);
  }
  // Another store's log.
  ASSERT_TRUE(WriteFileAtomic(cache_, *file, 0600));
  ASSERT_TRUE(WriteFileAtomic(log_path, *log, 0600));
  auto other = Open(cache_, "ffffffffffffffffffffffffffffffff");
  EXPECT_FALSE(other->last_refresh().from_cache);  // the sorted file is refused first
  ASSERT_TRUE(ResetIndexCacheLog(log_path, "ffffffffffffffffffffffffffffffff"));
  ASSERT_TRUE(WriteFileAtomic(cache_, *file, 0600));
  auto foreign = Open(cache_);
  EXPECT_NE(foreign->last_refresh().cache_problem.find("belongs to store"), std::string::npos);
  EXPECT_EQ(foreign->last_refresh().objects_read, 2u);
  for (const auto* packs : {&a, &b, &c}) ExpectHolds(*foreign, *packs);
}

TEST_F(PackedIndexTest, ALogCoveringAVanishedObjectIsNotUsed) {
  std::vector<IndexedPack> a = {MakePack(rng_, 5)};
  Publish(a);
  auto idx = Open(cache_);
  std::vector<IndexedPack> b = {MakePack(rng_, 5)};
  const std::string kb = Publish(b);
  ASSERT_TRUE(idx->Published(kb, b));
  // A gc replaced index object b (only in the log) with one naming its first entry, moved.
  IndexedPack moved{RandomDigest(rng_), {b[0].entries[0]}};
  Publish({moved});
  ASSERT_TRUE(store_.Delete(kb));
  auto fresh = Open(cache_);
  EXPECT_FALSE(fresh->last_refresh().from_cache);
  EXPECT_NE(fresh->last_refresh().cache_problem.find("no longer has"), std::string::npos);
  EXPECT_EQ(fresh->Find(ObjectKind::kChunk, b[0].entries[0].id)->pack, moved.pack);
  EXPECT_FALSE(fresh->Find(ObjectKind::kChunk, b[0].entries[1].id));
  ExpectHolds(*fresh, a);
  auto after = Open(cache_);  // rebuilt
  EXPECT_TRUE(after->last_refresh().from_cache);
  EXPECT_EQ(after->last_refresh().objects_read, 0u);
  EXPECT_FALSE(after->Find(ObjectKind::kChunk, b[0].entries[1].id));
}

TEST_F(PackedIndexTest, TheFirstCopyWinsAcrossTheFileAndTheLogAsInARebuild) {
  std::vector<IndexedPack> a = {MakePack(rng_, 5)};
  Publish(a);
  auto idx = Open(cache_);
  // b repeats an id of a (in the sorted file); c repeats one of b (both in the log).
  std::vector<IndexedPack> b = {MakePack(rng_, 5)}, c = {MakePack(rng_, 5)};
  b[0].entries[0].id = a[0].entries[0].id;
  c[0].entries[0].id = b[0].entries[1].id;
  ASSERT_TRUE(idx->Published(Publish(b), b));
  ASSERT_TRUE(idx->Published(Publish(c), c));
  const Digest x = a[0].entries[0].id, y = b[0].entries[1].id;
  auto cached = Open(cache_);
  ASSERT_TRUE(cached->last_refresh().from_cache);
  ASSERT_EQ(cached->last_refresh().objects_read, 0u);
  auto rebuilt = Open("");
  for (const auto* i : {idx.get(), cached.get(), rebuilt.get()}) {
    EXPECT_EQ(i->Find(ObjectKind::kChunk, x)->pack, a[0].pack);
    EXPECT_EQ(i->Find(ObjectKind::kChunk, y)->pack, b[0].pack);
    EXPECT_EQ(i->Find(ObjectKind::kChunk, y)->offset, b[0].entries[1].offset);
  }
}

TEST_F(PackedIndexTest, ALoadedCacheFindsEveryEntryAndNothingElse) {
  // Thousands of entries in many objects: read a few at a time, and the loaded file's lookups
  // go through its fence of every 512th id, so the first and last of each stride count.
  std::vector<std::vector<IndexedPack>> objs;
  for (int i = 0; i < 12; ++i) {
    objs.push_back({MakePack(rng_, 150), MakePack(rng_, 100)});
    Publish(objs.back());
  }
  auto built = Open(cache_);
  EXPECT_EQ(built->last_refresh().objects_read, 12u);
  auto loaded = Open(cache_);
  ASSERT_TRUE(loaded->last_refresh().from_cache);
  ASSERT_EQ(loaded->size(ObjectKind::kChunk), 12u * 250);
  std::vector<Digest> all;
  for (const auto* i : {built.get(), loaded.get()})
    for (const auto& o : objs) ExpectHolds(*i, o);
  for (const auto& [id, len] : loaded->Entries(ObjectKind::kChunk)) all.push_back(id);
  ASSERT_EQ(all.size(), 12u * 250);
  std::sort(all.begin(), all.end());
  Digest below{}, above;
  above.fill(0xff);
  EXPECT_FALSE(loaded->Find(ObjectKind::kChunk, below));
  EXPECT_FALSE(loaded->Find(ObjectKind::kChunk, above));
  for (size_t i = 0; i + 1 < all.size(); ++i) {
    ASSERT_TRUE(loaded->Find(ObjectKind::kChunk, all[i])) << i;
    Digest next = all[i];  // just above an id, below the next one
    for (int b = 31; b >= 0 && ++next[b] == 0; --b) {
    }
    if (next != all[i + 1]) EXPECT_FALSE(loaded->Find(ObjectKind::kChunk, next)) << i;
  }
  EXPECT_TRUE(loaded->Find(ObjectKind::kChunk, all.back()));
}

TEST(IndexCacheLogTest, SectionsComeBackInOrderAndAStoreMismatchIsRefused) {
  const std::string path = testing::TempDir() + "/index-cache-log-" + NewVolumeId();
  std::vector<uint8_t> one = {1, 2, 3}, two(70000, 7);
  EXPECT_FALSE(IndexCacheLog::Open(path, "s1")) << "none yet";
  EXPECT_EQ(IndexCacheLog::Open(path, "s1").error().code(), ErrorCode::kNotFound);
  ASSERT_TRUE(AppendIndexCacheLog(path, "s1", "packindex/a", one));  // starts the log
  auto size = AppendIndexCacheLog(path, "s1", "packindex/b", two);
  ASSERT_TRUE(size);
  ASSERT_TRUE(AppendIndexCacheLog(path, "s1", "packindex/a", {}));
  auto log = IndexCacheLog::Open(path, "s1");
  ASSERT_TRUE(log) << log.error().ToString();
  EXPECT_EQ(log->keys(), (std::vector<std::string>{"packindex/a", "packindex/b", "packindex/a"}));
  EXPECT_GT(log->bytes(), *size);
  std::vector<std::vector<uint8_t>> got;
  ASSERT_TRUE(log->ForEach([&](const std::string&, std::span<const uint8_t> plain) -> Status {
    got.emplace_back(plain.begin(), plain.end());
    return OkStatus();
  }));
  EXPECT_EQ(got, (std::vector<std::vector<uint8_t>>{one, two, {}}));
  EXPECT_EQ(IndexCacheLog::Open(path, "s2").error().code(), ErrorCode::kConflict);
  ASSERT_TRUE(ResetIndexCacheLog(path, "s1"));
  EXPECT_TRUE(IndexCacheLog::Open(path, "s1")->keys().empty());
  ::unlink(path.c_str());
}

}  // namespace
}  // namespace snapvol
