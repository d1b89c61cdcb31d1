// The fixture of the direct snapshots' tests (direct_snapshots_test, direct_snapshots_restart_test):
// a catalog in a temporary dir, an in-memory store on a fake clock, and a DirectSnapshots of a
// named runner without its background thread; helpers to start, put and read back.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "core/file_util.h"
#include "core/ids.h"
#include "engine/direct_snapshots.h"
#include "engine/snapshot_engine.h"
#include "store/memory_store.h"

namespace snapvol::testing_util {

inline constexpr int64_t kDirectNow = 1'700'000'000'000;

inline std::vector<uint8_t> RandomDirectBlock(uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> b(kDirectBlockSize);
  for (auto& x : b) x = static_cast<uint8_t>(rng());
  return b;
}

class DirectSnapshotsFixture : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir() + "/direct-" + NewVolumeId();
    ASSERT_TRUE(MakeDirs(dir_));
    catalog_ = std::move(*Catalog::Open(dir_ + "/catalog.db"));
    repo_ = std::move(*Repository::Create(std::make_unique<MemoryStore>(&clock_), RepositoryOptions{}));
    direct_ = New("pid:1@boot");
  }
  void TearDown() override {
    direct_.reset();
    std::filesystem::remove_all(dir_);
  }
  // A DirectSnapshots of runner on this catalog and store (a new process, after a restart).
  std::unique_ptr<DirectSnapshots> New(const std::string& runner) {
    DirectOptions o;
    o.runner_id = runner;
    o.clock = &clock_;
    o.background = false;
    return std::make_unique<DirectSnapshots>(repo_.get(), catalog_.get(), o);
  }
  std::string Start(uint64_t blocks, const std::string& parent = "", int64_t timeout_ms = 3600'000) {
    DirectStart s;
    s.owner_id = kDefaultAccountId;
    s.volume_size = blocks * kDirectBlockSize;
    s.parent_id = parent;
    s.timeout_ms = timeout_ms;
    auto r = direct_->Start(s);
    EXPECT_TRUE(r) << r.error().ToString();
    return r ? r->snapshot_id : "";
  }
  Status Put(const std::string& id, uint64_t index, const std::vector<uint8_t>& data) {
    return direct_->PutBlock(id, index, data, Sha256(data));
  }
  // Block i of a completed snapshot; empty for a hole.
  std::vector<uint8_t> Read(const std::string& id, uint64_t i) {
    auto reader = SnapshotBlockReader::Open(repo_.get(), id);
    EXPECT_TRUE(reader);
    std::vector<uint8_t> out(kDirectBlockSize);
    auto data = (*reader)->Read(i, out);
    EXPECT_TRUE(data);
    return *data ? out : std::vector<uint8_t>();
  }

  std::string dir_;
  FakeClock clock_{kDirectNow};
  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<Repository> repo_;
  std::unique_ptr<DirectSnapshots> direct_;
};

}  // namespace snapvol::testing_util
