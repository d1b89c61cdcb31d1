// Tests of the deletions of volumes another host holds (docs/multi-host.md part 3): queued only
// while the volume's host is up and by DeleteVolume's rules, claimed by that host only, once,
// put back at that host's start, and a detach waking the hosts on PostgreSQL. Both backends.
#include <gtest/gtest.h>

#include <algorithm>
#include <latch>
#include <string>
#include <thread>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/catalog_test_util.h"
#include "core/ids.h"

namespace snapvol {
namespace {

constexpr int64_t kT0 = 1'700'000'000'000;
constexpr int64_t kTimeout = 30'000;
constexpr char kB[] = "host-bbbbbbbbbbbbbbbbb";
constexpr char kC[] = "host-ccccccccccccccccc";

class VolumeDeletionsTest : public testing_util::FreshCatalogTest {
 protected:
  // A detached managed volume held by host.
  std::string AddVolumeOf(const std::string& host) {
    VolumeRecord v;
    v.volume_id = NewVolumeId();
    v.account_id = kDefaultAccountId;
    v.path = dir_ + "/" + v.volume_id + ".img";
    v.size_bytes = 1 << 20;
    v.block_size = 4096;
    v.created_ms = kT0;
    v.managed = true;
    v.host_id = host;
    EXPECT_TRUE(cat_->InsertVolume(v));
    return v.volume_id;
  }
  void Register(const std::string& host, int64_t heartbeat_ms) {
    ASSERT_TRUE(cat_->UpsertHost(HostRecord{host, "node-" + host.substr(5, 1), "http://b.example:8787",
                                            "unix:/d/nbd.sock", "0.1.0", kT0, heartbeat_ms}));
  }
  VolumeRecord Get(const std::string& id) { return *cat_->GetVolume(id); }
};

TEST_F(VolumeDeletionsTest, QueuedForAnUpHostAndClaimedByThatHostOnlyOnce) {
  Register(kB, kT0);
  Register(kC, kT0);
  const std::string b1 = AddVolumeOf(kB), b2 = AddVolumeOf(kB), c1 = AddVolumeOf(kC), b3 = AddVolumeOf(kB);
  for (const auto& id : {b1, b2, c1}) ASSERT_TRUE(cat_->QueueVolumeDeletion(id, kT0 + 1000, kTimeout));
  EXPECT_EQ(Get(b1).state, "deleting");
  EXPECT_EQ(Get(b1).state_message, QueuedRunner(kB));
  EXPECT_EQ(Get(b3).state, "available");  // not asked
  // Asked again: the same answer, nothing changes.
  ASSERT_TRUE(cat_->QueueVolumeDeletion(b1, kT0 + 1000, kTimeout));
  EXPECT_EQ(Get(b1).state_message, QueuedRunner(kB));

  EXPECT_EQ(cat_->ClaimVolumeDeletion("", "rb").error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(cat_->ClaimVolumeDeletion(kB, "").error().code(), ErrorCode::kInvalidArgument);
  std::vector<std::string> got;
  for (;;) {
    auto v = cat_->ClaimVolumeDeletion(kB, "pid:1@boot@" + std::string(kB));
    ASSERT_TRUE(v) << v.error().ToString();
    if (!v->has_value()) break;
    EXPECT_EQ((*v)->host_id, kB);
    EXPECT_EQ((*v)->state, "deleting");
    EXPECT_EQ((*v)->state_message, "pid:1@boot@" + std::string(kB));
    got.push_back((*v)->volume_id);
  }
  std::sort(got.begin(), got.end());
  std::vector<std::string> want = {b1, b2};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want);  // C's is never B's; b3 was never queued
  EXPECT_EQ(Get(c1).state_message, QueuedRunner(kC));
  auto c = cat_->ClaimVolumeDeletion(kC, "rc");
  ASSERT_TRUE(c && c->has_value());
  EXPECT_EQ((*c)->volume_id, c1);
}

// A host that is not up (unreachable, stopped, unregistered) gets nothing queued: a dead host's
// volume never shows `deleting` with nobody to finish it.
TEST_F(VolumeDeletionsTest, RefusedWhileTheHostIsNotUpChangingNothing) {
  Register(kB, kT0);
  const std::string v = AddVolumeOf(kB);
  // Exactly the timeout old is still up; one millisecond more is not.
  auto late = cat_->QueueVolumeDeletion(v, kT0 + kTimeout + 1, kTimeout);
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().code(), ErrorCode::kConflict);
  EXPECT_NE(late.error().message().find("node-b (host-bbbbbbbbbbbbbbbbb, API http://b.example:8787), which is unreachable"),
            std::string::npos)
      << late.error().message();
  EXPECT_EQ(Get(v).state, "available");
  EXPECT_EQ(Get(v).state_message, "");
  Register(kB, 0);  // a clean stop
  auto stopped = cat_->QueueVolumeDeletion(v, kT0, kTimeout);
  ASSERT_FALSE(stopped);
  EXPECT_NE(stopped.error().message().find("which is stopped"), std::string::npos) << stopped.error().message();
  const std::string c = AddVolumeOf(kC);  // never registered
  auto unregistered = cat_->QueueVolumeDeletion(c, kT0, kTimeout);
  ASSERT_FALSE(unregistered);
  EXPECT_NE(unregistered.error().message().find("which is unregistered"), std::string::npos);
  EXPECT_EQ(Get(c).state, "available");
  Register(kB, kT0);
  ASSERT_TRUE(cat_->QueueVolumeDeletion(v, kT0 + kTimeout, kTimeout));
  EXPECT_EQ(Get(v).state, "deleting");
}

TEST_F(VolumeDeletionsTest, DeleteVolumesRulesRefuseTheQueueToo) {
  Register(kB, kT0);
  const std::string attached = AddVolumeOf(kB);
  InstanceRecord i;
  i.instance_id = NewInstanceId();
  i.account_id = kDefaultAccountId;
  i.name = "web";
  i.created_ms = kT0;
  ASSERT_TRUE(cat_->InsertInstance(i));
  ASSERT_TRUE(cat_->SetVolumeAttachment(attached, i.instance_id, "/dev/sdf", kT0));
  auto refused = cat_->QueueVolumeDeletion(attached, kT0, kTimeout);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), ErrorCode::kConflict);
  EXPECT_NE(refused.error().message().find("attached"), std::string::npos);
  EXPECT_EQ(Get(attached).state, "available");
  const std::string creating = AddVolumeOf(kB);
  ASSERT_TRUE(cat_->SetVolumeState(creating, "creating"));
  EXPECT_EQ(cat_->QueueVolumeDeletion(creating, kT0, kTimeout).error().code(), ErrorCode::kConflict);
  EXPECT_EQ(Get(creating).state, "creating");
  EXPECT_EQ(cat_->QueueVolumeDeletion(NewVolumeId(), kT0, kTimeout).error().code(), ErrorCode::kNotFound);
  VolumeRecord ownerless;  // no host: nobody to route it to (a catalog without a local host)
  ownerless.volume_id = NewVolumeId();
  ownerless.account_id = kDefaultAccountId;
  ownerless.path = dir_ + "/x.img";
  ownerless.size_bytes = 1 << 20;
  ownerless.block_size = 4096;
  ASSERT_TRUE(cat_->InsertVolume(ownerless));
  EXPECT_EQ(cat_->QueueVolumeDeletion(ownerless.volume_id, kT0, kTimeout).error().code(),
            ErrorCode::kInvalidArgument);
}

// A snapvold starting puts back what its earlier process claimed and did not finish; other
// hosts' claims and queued rows stay as they are.
TEST_F(VolumeDeletionsTest, AHostsStartPutsBackItsOwnClaimsOnly) {
  Register(kB, kT0);
  Register(kC, kT0);
  const std::string b = AddVolumeOf(kB), c = AddVolumeOf(kC);
  ASSERT_TRUE(cat_->QueueVolumeDeletion(b, kT0, kTimeout));
  ASSERT_TRUE(cat_->QueueVolumeDeletion(c, kT0, kTimeout));
  ASSERT_TRUE(cat_->ClaimVolumeDeletion(kB, "old-b"));
  ASSERT_TRUE(cat_->ClaimVolumeDeletion(kC, "old-c"));
  auto none = cat_->ClaimVolumeDeletion(kB, "new-b");
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
  auto back = cat_->UnclaimVolumeDeletions(kB);
  ASSERT_TRUE(back) << back.error().ToString();
  EXPECT_EQ(*back, 1u);
  EXPECT_EQ(Get(b).state_message, QueuedRunner(kB));
  EXPECT_EQ(Get(c).state_message, "old-c");
  EXPECT_EQ(*cat_->UnclaimVolumeDeletions(kB), 0u);
  auto again = cat_->ClaimVolumeDeletion(kB, "new-b");
  ASSERT_TRUE(again && again->has_value());
  EXPECT_EQ((*again)->volume_id, b);
}

// Two catalogs on one database, each on a thread of its own, claim from 20 deletions queued for
// one host: each is claimed exactly once, and its row names the claimer that got it.
TEST_F(VolumeDeletionsTest, TwoCatalogsRacingClaimEachDeletionExactlyOnce) {
  auto other = Catalog::Open(path_);
  ASSERT_TRUE(other) << other.error().ToString();
  Register(kB, kT0);
  constexpr int kVolumes = 20;
  for (int i = 0; i < kVolumes; ++i) ASSERT_TRUE(cat_->QueueVolumeDeletion(AddVolumeOf(kB), kT0, kTimeout));
  std::vector<std::string> got_a, got_b;
  std::string error;
  std::latch start(2);
  auto claim_all = [&](Catalog* cat, const std::string& runner, std::vector<std::string>* got) {
    start.arrive_and_wait();
    for (;;) {
      auto v = cat->ClaimVolumeDeletion(kB, runner);
      if (!v) {
        error = v.error().ToString();
        return;
      }
      if (!v->has_value()) return;
      got->push_back((*v)->volume_id);
    }
  };
  std::thread ta([&] { claim_all(cat_.get(), "ra", &got_a); });
  std::thread tb([&] { claim_all(other->get(), "rb", &got_b); });
  ta.join();
  tb.join();
  ASSERT_EQ(error, "");
  std::vector<std::string> all = got_a;
  all.insert(all.end(), got_b.begin(), got_b.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all.size(), static_cast<size_t>(kVolumes));
  EXPECT_EQ(std::unique(all.begin(), all.end()), all.end());
  for (const auto& id : got_a) EXPECT_EQ(Get(id).state_message, "ra");
  for (const auto& id : got_b) EXPECT_EQ(Get(id).state_message, "rb");
}

// On PostgreSQL a queued deletion and a detach wake the hosts waiting for queued work (their
// claimers); SQLite announces nothing.
TEST_F(VolumeDeletionsTest, AQueuedDeletionAndADetachWakeAWaitingHostOnPostgres) {
  auto other = Catalog::Open(path_);
  ASSERT_TRUE(other) << other.error().ToString();
  if (!cat_->NotifiesSnapshotJobs()) {
    EXPECT_FALSE((*other)->NotifiesSnapshotJobs());
    return;
  }
  Register(kB, kT0);
  const std::string v = AddVolumeOf(kB);
  auto idle = (*other)->WaitForSnapshotJobs(10);  // starts listening
  ASSERT_TRUE(idle) << idle.error().ToString();
  ASSERT_TRUE(cat_->QueueVolumeDeletion(v, kT0, kTimeout));
  auto woke = (*other)->WaitForSnapshotJobs(30'000);  // a bound, not a timing: true ends it at once
  ASSERT_TRUE(woke) << woke.error().ToString();
  EXPECT_TRUE(*woke);
  const std::string w = AddVolumeOf(kB);
  InstanceRecord i;
  i.instance_id = NewInstanceId();
  i.account_id = kDefaultAccountId;
  i.name = "web";
  i.created_ms = kT0;
  ASSERT_TRUE(cat_->InsertInstance(i));
  ASSERT_TRUE(cat_->SetVolumeAttachment(w, i.instance_id, "/dev/sdf", kT0));
  auto quiet = (*other)->WaitForSnapshotJobs(10);  // an attach announces nothing
  ASSERT_TRUE(quiet);
  EXPECT_FALSE(*quiet);
  ASSERT_TRUE(cat_->SetVolumeAttachment(w, "", "", 0));
  auto detached = (*other)->WaitForSnapshotJobs(30'000);
  ASSERT_TRUE(detached) << detached.error().ToString();
  EXPECT_TRUE(*detached);
}

}  // namespace
}  // namespace snapvol
