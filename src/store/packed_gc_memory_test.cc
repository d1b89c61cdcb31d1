// What a format-2 GC holds while it sweeps and rewrites the store-wide index: the index
// objects are streamed, one decoded at a time, never all at once (a 1 TB store has 2 M
// entries). Measured by this binary's own operator new (every C++ allocation, on any thread):
// the peak of live heap bytes during the run, over what was live before it, per entry.
// Also: an index object of more than kMaxEntriesPerIndexObject entries (an older writer's) is
// rewritten as several, even when nothing else changes.
// Its own binary because it replaces the global operator new.
#include <gtest/gtest.h>
#include <malloc.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <new>
#include <random>
#include <set>

#include "core/file_util.h"
#include "core/ids.h"
#include "store/gc.h"
#include "store/local_store.h"
#include "store/packed_objects.h"
#include "store/repository.h"

namespace {
std::atomic<int64_t> g_live{0}, g_peak{0};

void Count(void* p) {
  if (!p) return;
  const int64_t now = g_live.fetch_add(static_cast<int64_t>(malloc_usable_size(p))) +
                      static_cast<int64_t>(malloc_usable_size(p));
  int64_t peak = g_peak.load();
  while (now > peak && !g_peak.compare_exchange_weak(peak, now)) {
  }
}
void Uncount(void* p) {
  if (p) g_live.fetch_sub(static_cast<int64_t>(malloc_usable_size(p)));
}
}  // namespace

void* operator new(size_t n) {
  void* p = std::malloc(n ? n : 1);
  if (!p) throw std::bad_alloc();
  Count(p);
  return p;
}
void* operator new[](size_t n) { return operator new(n); }
void operator delete(void* p) noexcept {
  Uncount(p);
  std::free(p);
}
void operator delete[](void* p) noexcept { operator delete(p); }
void operator delete(void* p, size_t) noexcept { operator delete(p); }
void operator delete[](void* p, size_t) noexcept { operator delete(p); }

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

class PackedGcMemoryTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir() + "/packed-gc-memory-" + NewVolumeId();
    ASSERT_TRUE(MakeDirs(dir_));
    RepositoryOptions ro;
    ro.format = 2;
    auto store = LocalStore::Open(dir_);
    ASSERT_TRUE(store);
    auto repo = Repository::Create(std::move(*store), ro);
    ASSERT_TRUE(repo) << repo.error().ToString();
    repo_ = std::move(*repo);
  }
  void TearDown() override {
    repo_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Publishes entries chunk entries in packs of 32, in packindex/ objects of at most
  // per_object entries; each pack is stored (empty: a gc lists it, young, and keeps it).
  std::vector<IndexedPack> Synthesize(size_t entries, size_t per_object) {
    std::mt19937_64 rng(7);
    std::vector<IndexedPack> all;
    auto batch = repo_->store()->NewBatch();
    uint32_t seq = 0;
    for (size_t done = 0; done < entries;) {
      std::vector<IndexedPack> group;
      size_t in_object = 0;
      while (done < entries && in_object + 32 <= per_object) {
        IndexedPack p{RandomDigest(rng), {}};
        for (uint32_t i = 0; i < 32 && done < entries; ++i, ++done, ++in_object)
          p.entries.push_back({RandomDigest(rng), ObjectKind::kChunk, i << 19, 1u << 19});
        EXPECT_TRUE(batch->Add(PackedObjects::PackKey(p.pack), std::vector<uint8_t>{}));
        group.push_back(p);
        all.push_back(std::move(p));
      }
      char key[64];
      std::snprintf(key, sizeof key, "%s%032x-%08x", kPackIndexPrefix, 1, seq++);
      auto enc = repo_->codec().Encode(ObjectKind::kStoreIndex, Sha256(AsBytes(std::string(key))),
                                       EncodeStoreIndex(group));
      EXPECT_TRUE(enc);
      EXPECT_TRUE(repo_->store()->Put(key, *enc));
    }
    EXPECT_TRUE(batch->Commit());
    return all;
  }

  // Every packindex/ object: the most entries one holds, and the union of their packs.
  std::pair<size_t, std::map<Digest, std::vector<PackEntry>>> ReadIndex() {
    std::map<Digest, std::vector<PackEntry>> out;
    size_t largest = 0;
    auto objs = repo_->store()->List(kPackIndexPrefix);
    EXPECT_TRUE(objs);
    for (const auto& o : *objs) {
      auto packs = repo_->packed()->index().ReadIndexObject(o.key);
      EXPECT_TRUE(packs) << o.key;
      size_t n = 0;
      for (auto& p : *packs) {
        n += p.entries.size();
        out[p.pack] = std::move(p.entries);
      }
      largest = std::max(largest, n);
    }
    return {largest, out};
  }

  std::string dir_;
  std::unique_ptr<Repository> repo_;
};

TEST_F(PackedGcMemoryTest, GcHoldsTheIndexStreamedNotDecodedWhole) {
  // 14 small objects (each under half the limit, as many snapshots' would be): all merged,
  // so the run reads and rewrites the whole index.
  constexpr size_t kEntries = 400'000;
  auto all = Synthesize(kEntries, 30'000);
  ASSERT_TRUE(repo_->packed()->Refresh());  // this process's own copy, as a gc that marked has
  const int64_t before = g_live.load();
  g_peak = before;
  GcOptions o;
  auto report = CollectGarbage(repo_.get(), o);
  ASSERT_TRUE(report) << report.error().ToString();
  const double per_entry = double(g_peak.load() - before) / kEntries;
  std::printf("gc of %zu entries: peak heap %.1f MiB over %.1f MiB before, %.1f bytes an entry\n", kEntries,
              double(g_peak.load() - before) / (1 << 20), double(before) / (1 << 20), per_entry);
  // Every pack is young, so kept; the 14 index objects are replaced by 7 of the same packs.
  EXPECT_EQ(report->packs, all.size());
  EXPECT_EQ(report->packs_deleted, 0u);
  auto [largest, index] = ReadIndex();
  EXPECT_LE(largest, kMaxEntriesPerIndexObject);
  EXPECT_EQ(repo_->store()->List(kPackIndexPrefix)->size(), 7u);
  ASSERT_EQ(index.size(), all.size());
  for (const auto& p : all) EXPECT_EQ(index[p.pack], p.entries);
  // The compact table of the sweep is 46 bytes an entry at most; a second copy of the index,
  // decoded (as the plan and the new index held it, each), is 44 more.
  EXPECT_LT(per_entry, 70.0);
}

TEST_F(PackedGcMemoryTest, AnIndexObjectOfAnOlderWriterIsRewrittenIntoSmallerOnes) {
  constexpr size_t kEntries = 100'000;  // one object, as writers made them before
  auto all = Synthesize(kEntries, 1u << 20);
  ASSERT_EQ(ReadIndex().first, kEntries);
  auto report = CollectGarbage(repo_.get(), GcOptions{});
  ASSERT_TRUE(report) << report.error().ToString();
  auto [largest, index] = ReadIndex();
  EXPECT_LE(largest, kMaxEntriesPerIndexObject);
  ASSERT_EQ(index.size(), all.size());
  for (const auto& p : all) EXPECT_EQ(index[p.pack], p.entries);
  // Nothing else to do: a second run leaves the index as it is.
  auto keys = repo_->store()->List(kPackIndexPrefix);
  ASSERT_TRUE(CollectGarbage(repo_.get(), GcOptions{}));
  auto again = repo_->store()->List(kPackIndexPrefix);
  ASSERT_TRUE(keys && again);
  EXPECT_EQ(keys->size(), 2u);
  ASSERT_EQ(again->size(), keys->size());
  for (size_t i = 0; i < keys->size(); ++i) EXPECT_EQ((*again)[i].key, (*keys)[i].key);
}

TEST_F(PackedGcMemoryTest, OnlyTheIndexObjectsThatChangeAreReplaced) {
  // Three objects, none small: losing one pack replaces the one object that names it.
  auto all = Synthesize(120'000, 40'000);
  auto before = repo_->store()->List(kPackIndexPrefix);
  ASSERT_TRUE(before);
  ASSERT_EQ(before->size(), 3u);
  const Digest lost = all[1500].pack;  // in the second object written (1250 packs an object)
  std::string holder;
  for (const auto& o : *before) {
    auto packs = repo_->packed()->index().ReadIndexObject(o.key);
    ASSERT_TRUE(packs);
    for (const auto& p : *packs)
      if (p.pack == lost) holder = o.key;
  }
  ASSERT_FALSE(holder.empty());
  ASSERT_TRUE(repo_->store()->Delete(PackedObjects::PackKey(lost)));
  auto report = CollectGarbage(repo_.get(), GcOptions{});
  ASSERT_TRUE(report) << report.error().ToString();
  EXPECT_EQ(report->packs_lost, 1u);
  auto after = repo_->store()->List(kPackIndexPrefix);
  ASSERT_TRUE(after);
  std::set<std::string> keys;
  for (const auto& o : *after) keys.insert(o.key);
  EXPECT_EQ(keys.size(), 3u);
  for (const auto& o : *before) EXPECT_EQ(keys.count(o.key), o.key == holder ? 0u : 1u) << o.key;
  auto [largest, index] = ReadIndex();
  EXPECT_EQ(index.size(), all.size() - 1);
  EXPECT_FALSE(index.count(lost));
  for (const auto& p : all) {
    if (p.pack == lost) continue;
    EXPECT_EQ(index[p.pack], p.entries);
  }
}

TEST_F(PackedGcMemoryTest, PacksTwoObjectsNameAreNamedOnceAfterAGc) {
  // As a gc killed after writing its new index object leaves it: two objects, neither small,
  // naming the same packs.
  auto all = Synthesize(40'000, 40'000);
  auto objs = repo_->store()->List(kPackIndexPrefix);
  ASSERT_TRUE(objs && objs->size() == 1u);
  auto plain = repo_->packed()->index().ReadIndexPlain((*objs)[0].key);
  ASSERT_TRUE(plain);
  const std::string copy = std::string(kPackIndexPrefix) + std::string(32, 'f') + "-00000000";
  auto enc = repo_->codec().Encode(ObjectKind::kStoreIndex, Sha256(AsBytes(copy)), *plain);
  ASSERT_TRUE(enc);
  ASSERT_TRUE(repo_->store()->Put(copy, *enc));
  auto report = CollectGarbage(repo_.get(), GcOptions{});
  ASSERT_TRUE(report) << report.error().ToString();
  size_t named = 0;
  auto after = repo_->store()->List(kPackIndexPrefix);
  ASSERT_TRUE(after);
  for (const auto& o : *after) {
    auto packs = repo_->packed()->index().ReadIndexObject(o.key);
    ASSERT_TRUE(packs);
    named += packs->size();
  }
  EXPECT_EQ(named, all.size()) << "a pack is named twice";
  auto [largest, index] = ReadIndex();
  ASSERT_EQ(index.size(), all.size());
  for (const auto& p : all) EXPECT_EQ(index[p.pack], p.entries);
}

}  // namespace
}  // namespace snapvol
