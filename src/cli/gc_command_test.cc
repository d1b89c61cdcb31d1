// ReleaseEndedLeases (cli/gc_command.h): the leases `snapvol gc` and `catalog rebuild` remove
// first are exactly those of snapshots this catalog records as ended; a pending snapshot's, one
// the catalog does not know (another host's) and the upgrade's stay. End to end, with RGW
// stopped under a failing snapshot: tests/s3/test_outage.py.
#include "cli/gc_command.h"

#include <gtest/gtest.h>

#include <set>
#include <sstream>

#include "catalog/catalog_test_util.h"
#include "core/ids.h"
#include "store/memory_store.h"

namespace snapvol {
namespace {

class ReleaseEndedLeasesTest : public testing_util::FreshCatalogTest {
 protected:
  void SetUp() override {
    FreshCatalogTest::SetUp();
    RepositoryOptions opt;
    opt.format = 1;
    auto repo = Repository::Create(std::make_unique<MemoryStore>(), opt);
    ASSERT_TRUE(repo) << repo.error().ToString();
    repo_ = std::move(*repo);
  }

  // A snapshot in the catalog, pending and then moved to state, with a lease in the store.
  std::string Snapshot(SnapshotState state) {
    SnapshotRecord s;
    s.snapshot_id = NewSnapshotId();
    s.volume_id = NewVolumeId();
    s.account_id = kDefaultAccountId;
    s.start_time_ms = 1;
    s.block_size = 4096;
    s.volume_size_bytes = 4096;
    s.runner = "pid:1@boot";
    EXPECT_TRUE(cat_->InsertSnapshot(s));
    if (state == SnapshotState::kError) EXPECT_TRUE(cat_->MarkError(s.snapshot_id, "S3 unreachable"));
    if (state == SnapshotState::kCompleted) EXPECT_TRUE(cat_->MarkCompleted(s.snapshot_id, 2, 0, 0, 1));
    Lease(s.snapshot_id);
    return s.snapshot_id;
  }
  void Lease(const std::string& id) {
    EXPECT_TRUE(repo_->PutLease(LeaseInfo{id, "", "elsewhere:1", 1, 1}));
  }
  std::set<std::string> Leased() {
    std::set<std::string> ids;
    auto leases = repo_->ListLeases();
    EXPECT_TRUE(leases) << leases.error().ToString();
    if (leases)
      for (const auto& l : *leases) ids.insert(l.snapshot_id);
    return ids;
  }

  std::unique_ptr<Repository> repo_;
};

TEST_F(ReleaseEndedLeasesTest, RemovesOnlyTheLeasesOfSnapshotsTheCatalogSaysEnded) {
  const std::string failed = Snapshot(SnapshotState::kError);
  const std::string completed = Snapshot(SnapshotState::kCompleted);
  const std::string running = Snapshot(SnapshotState::kPending);
  const std::string other_host = NewSnapshotId();
  Lease(other_host);
  Lease(Repository::kUpgradeLeaseId);
  ASSERT_EQ(Leased().size(), 5u);

  std::ostringstream warnings;
  ASSERT_TRUE(ReleaseEndedLeases(cat_.get(), repo_.get(), warnings));
  EXPECT_EQ(Leased(), (std::set<std::string>{running, other_host, Repository::kUpgradeLeaseId}));
  EXPECT_NE(warnings.str().find("snapshot " + failed + " left when it ended (error)"), std::string::npos)
      << warnings.str();
  EXPECT_NE(warnings.str().find("snapshot " + completed + " left when it ended (completed)"), std::string::npos)
      << warnings.str();

  // Nothing more to release: a second run removes and says nothing.
  std::ostringstream again;
  ASSERT_TRUE(ReleaseEndedLeases(cat_.get(), repo_.get(), again));
  EXPECT_EQ(again.str(), "");
  EXPECT_EQ(Leased().size(), 3u);
}

}  // namespace
}  // namespace snapvol
