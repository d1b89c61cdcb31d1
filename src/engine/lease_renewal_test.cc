// A snapshot whose lease cannot be renewed stops: GC trusts only live leases, so a job that
// went on without one could publish a manifest whose chunks GC has meanwhile swept. The job
// fails with the renewal's error, publishes nothing, and leaves no lease behind.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <string>
#include <vector>

#include "core/ids.h"
#include "engine/snapshot_engine.h"
#include "store/memory_store.h"

namespace snapvol {
namespace {

constexpr uint32_t kBs = 64 * 1024;

// Forwards to a MemoryStore; every Put of a lease after the first (the renewals) fails.
class LeaseRenewalFails : public ObjectStore {
 public:
  Status Put(const std::string& key, std::span<const uint8_t> data) override {
    if (key.rfind("leases/", 0) == 0 && lease_puts_++ > 0)
      return MakeError(ErrorCode::kIoError, "injected: the store refuses the lease renewal", true);
    return base_.Put(key, data);
  }
  Result<std::vector<uint8_t>> Get(const std::string& key) override { return base_.Get(key); }
  Result<bool> Exists(const std::string& key) override { return base_.Exists(key); }
  Status Delete(const std::string& key) override { return base_.Delete(key); }
  Result<std::vector<ObjectInfo>> List(const std::string& prefix) override { return base_.List(prefix); }
  Status Touch(const std::string& key) override { return base_.Touch(key); }
  std::string Describe() const override { return "lease-renewal-fails(memory)"; }
  int lease_puts() const { return lease_puts_.load(); }

 private:
  MemoryStore base_;
  std::atomic<int> lease_puts_{0};
};

// Random data (every block stored); each read moves the clock a minute on, so every batch
// after the first is due a heartbeat.
class SlowClockSource : public BlockSource {
 public:
  SlowClockSource(size_t size, FakeClock* clock) : data_(size), clock_(clock) {
    uint64_t x = 88172645463325252ull;
    for (auto& b : data_) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      b = static_cast<uint8_t>(x);
    }
  }
  uint64_t size() const override { return data_.size(); }
  Status ReadAt(uint64_t off, std::span<uint8_t> out) override {
    clock_->Advance(60 * 1000);
    std::memset(out.data(), 0, out.size());
    if (off < data_.size()) std::memcpy(out.data(), data_.data() + off, std::min<size_t>(out.size(), data_.size() - off));
    return OkStatus();
  }
  std::string Describe() const override { return "slow-clock memory volume"; }

 private:
  std::vector<uint8_t> data_;
  FakeClock* clock_;
};

TEST(LeaseRenewal, AFailedRenewalFailsTheSnapshotAndPublishesNothing) {
  auto owned = std::make_unique<LeaseRenewalFails>();
  LeaseRenewalFails* store = owned.get();
  RepositoryOptions ro;
  ro.block_size = kBs;
  auto repo = Repository::Create(std::move(owned), ro);
  ASSERT_TRUE(repo) << repo.error().ToString();
  FakeClock clock(1'000'000);
  ThreadPool pool(2);
  EngineOptions opt;
  opt.blocks_per_batch = 1;  // a batch per block: many chances to renew
  opt.lease_heartbeat_ms = 60 * 1000;
  opt.clock = &clock;
  SnapshotEngine engine(repo->get(), &pool, opt);
  SlowClockSource src(8 * kBs, &clock);
  SnapshotRequest req;
  req.snapshot_id = NewSnapshotId();
  req.volume_id = "vol-00000000000000001";
  req.start_time_ms = clock.NowMillis();

  auto out = engine.Create(&src, req);
  ASSERT_FALSE(out) << "the snapshot went on without a lease";
  EXPECT_EQ(out.error().code(), ErrorCode::kIoError) << out.error().ToString();
  EXPECT_NE(out.error().ToString().find("renewing the snapshot lease"), std::string::npos) << out.error().ToString();
  EXPECT_GE(store->lease_puts(), 2) << "no renewal was attempted";
  // Nothing published: no manifest root, the snapshot is unknown to the store.
  auto meta = (*repo)->GetManifest(req.snapshot_id);
  ASSERT_FALSE(meta);
  EXPECT_EQ(meta.error().code(), ErrorCode::kNotFound) << meta.error().ToString();
  EXPECT_TRUE((*repo)->store()->List("manifests/")->empty());
  // And the lease is gone with the job (a stale one would hold GC back for half an hour).
  EXPECT_TRUE((*repo)->ListLeases()->empty());
}

// The same volume with renewals that succeed completes: the failure above is the renewal's.
TEST(LeaseRenewal, RenewalsThatSucceedLetTheSnapshotComplete) {
  RepositoryOptions ro;
  ro.block_size = kBs;
  auto repo = Repository::Create(std::make_unique<MemoryStore>(), ro);
  ASSERT_TRUE(repo);
  FakeClock clock(1'000'000);
  ThreadPool pool(2);
  EngineOptions opt;
  opt.blocks_per_batch = 1;
  opt.clock = &clock;
  SnapshotEngine engine(repo->get(), &pool, opt);
  SlowClockSource src(8 * kBs, &clock);
  SnapshotRequest req;
  req.snapshot_id = NewSnapshotId();
  req.volume_id = "vol-00000000000000001";
  auto out = engine.Create(&src, req);
  ASSERT_TRUE(out) << out.error().ToString();
  EXPECT_TRUE((*repo)->GetManifest(req.snapshot_id));
  EXPECT_TRUE((*repo)->ListLeases()->empty());
}

}  // namespace
}  // namespace snapvol
