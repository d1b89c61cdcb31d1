// The fixture of the store format 2 (packs) engine tests: a volume in memory, volumes of
// compressible and random blocks, a store that counts (and fails) pack reads, and a repository
// of small packs over a fault-injecting memory store.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <random>

#include "core/bytes.h"
#include "core/ids.h"
#include "engine/engine_test_util.h"
#include "engine/snapshot_engine.h"
#include "store/block_map.h"
#include "store/fault_store.h"
#include "store/gc.h"
#include "store/memory_store.h"
#include "store/stored_object_test_util.h"
#include "store/verify.h"

namespace snapvol::packed_store_testing {


constexpr uint32_t kBs = 64 * 1024;
constexpr uint64_t kPack = 1ull << 20;

using testing_util::MemoryTarget;
using testing_util::VectorSource;

// Half text, half random, in runs of a few blocks: compressible and not.
inline std::vector<uint8_t> Volume(size_t blocks, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> v(blocks * kBs);
  for (size_t b = 0; b < blocks; ++b)
    for (size_t i = 0; i < kBs; ++i)
      v[b * kBs + i] = (b / 3) % 2 ? static_cast<uint8_t>(rng()) : "pack test line 0123456789\n"[(b * kBs + i) % 26];
  return v;
}

// Changes share of the blocks (a different random byte in each).
inline void Change(std::vector<uint8_t>* v, double share, uint32_t seed) {
  std::mt19937_64 rng(seed);
  const size_t blocks = v->size() / kBs;
  for (size_t n = 0; n < std::max<size_t>(1, size_t(blocks * share)); ++n) {
    size_t b = rng() % blocks;
    for (int k = 0; k < 64; ++k) (*v)[b * kBs + rng() % kBs] = static_cast<uint8_t>(rng());
  }
}

// Counts the reads of packs (whole or ranged); reads of chosen packs fail with a retryable
// IoError (a store that is down), for verify's per-chunk outcomes.
class PackReadCountingStore : public testing_util::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  Result<std::vector<uint8_t>> Get(const std::string& key) override {
    if (auto st = Count(key); !st) return std::unexpected(st.error());
    return ForwardingStore::Get(key);
  }
  Result<std::vector<uint8_t>> GetRange(const std::string& key, uint64_t offset, uint64_t length) override {
    if (auto st = Count(key); !st) return std::unexpected(st.error());
    return base()->GetRange(key, offset, length);
  }
  std::atomic<uint64_t> pack_reads{0};
  std::string failing_pack;  // set before reads start

 private:
  Status Count(const std::string& key) {
    if (key.rfind(kPackPrefix, 0) != 0) return OkStatus();
    ++pack_reads;
    if (key == failing_pack) return MakeError(ErrorCode::kIoError, "the test's store is down", /*retryable=*/true);
    return OkStatus();
  }
};

class PackedStoreTest : public testing::Test {
 protected:
  void SetUp() override {
    auto base = std::make_unique<MemoryStore>();
    memory_ = base.get();
    auto faulty = std::make_unique<FaultInjectingStore>(memory_);
    fault_ = faulty.get();
    owned_base_ = std::move(base);
    RepositoryOptions opt;
    opt.block_size = kBs;
    opt.format = 2;
    opt.pack_size = kPack;
    auto repo = Repository::Create(std::move(faulty), opt);
    ASSERT_TRUE(repo) << repo.error().ToString();
    repo_ = std::move(*repo);
  }

  // Another process's view of the same store.
  std::unique_ptr<Repository> OpenAgain() {
    RepositoryOptions opt;
    auto repo = Repository::Open(std::make_unique<FaultInjectingStore>(memory_), opt);
    EXPECT_TRUE(repo) << repo.error().ToString();
    return repo ? std::move(*repo) : nullptr;
  }

  Result<SnapshotOutcome> Snap(Repository* repo, BlockSource* src, const std::string& parent = "") {
    SnapshotEngine engine(repo, &pool_);
    SnapshotRequest req;
    req.snapshot_id = NewSnapshotId();
    req.volume_id = "vol-00000000000000001";
    req.parent_id = parent;
    req.start_time_ms = 1;
    return engine.Create(src, req);
  }
  Result<SnapshotOutcome> Snap(BlockSource* src, const std::string& parent = "") { return Snap(repo_.get(), src, parent); }

  std::vector<uint8_t> Restore(Repository* repo, const std::string& id, uint64_t size) {
    SnapshotEngine engine(repo, &pool_);
    MemoryTarget t(size);
    auto r = engine.Restore(id, &t);
    EXPECT_TRUE(r) << r.error().ToString();
    return t.data;
  }

  Result<GcReport> Gc(Repository* repo = nullptr) {
    GcOptions o;
    o.grace_ms = 0;
    o.clock = &far_future_;
    return CollectGarbage(repo ? repo : repo_.get(), o);
  }

  uint64_t Bytes(const std::string& prefix) {
    uint64_t n = 0;
    for (const auto& o : *memory_->List(prefix)) n += o.size;
    return n;
  }
  size_t Count(const std::string& prefix) { return memory_->List(prefix)->size(); }

  // The stored bytes of every chunk and page the given snapshots reach, counted once.
  uint64_t LiveBytes(const std::vector<std::string>& ids) {
    DigestSet chunks, pages;
    uint64_t bytes = 0;
    for (const auto& id : ids) {
      auto meta = repo_->GetManifest(id);
      EXPECT_TRUE(meta);
      BlockMapReader reader(repo_.get(), *meta);
      auto st = reader.Walk(
          [&](uint32_t, const Digest& page) -> Result<bool> {
            if (!pages.insert(page).second) return false;
            bytes += *repo_->StoredSize(ObjectKind::kIndexPage, page);
            return true;
          },
          [&](uint64_t, const Digest& chunk) -> Status {
            if (chunks.insert(chunk).second) bytes += *repo_->StoredSize(ObjectKind::kChunk, chunk);
            return OkStatus();
          });
      EXPECT_TRUE(st);
    }
    return bytes;
  }

  ThreadPool pool_{3};
  std::unique_ptr<ObjectStore> owned_base_;
  MemoryStore* memory_ = nullptr;
  FaultInjectingStore* fault_ = nullptr;
  std::unique_ptr<Repository> repo_;
  FakeClock far_future_{INT64_MAX / 4};
};

}  // namespace snapvol::packed_store_testing
