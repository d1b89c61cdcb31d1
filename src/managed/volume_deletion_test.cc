// The one volume deletion path (managed/volume_deletion.h): each rule refuses with kConflict
// naming the reason and changes nothing (row, tags, files, connections), and a deletion that
// passes removes the row and tags and snapvol's own files, never a registered volume's disk,
// and keeps the volume's snapshots.
#include "managed/volume_deletion.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <vector>

#include "catalog/catalog_test_db.h"
#include "core/clock.h"
#include "core/file_util.h"
#include "core/hash.h"
#include "core/ids.h"
#include "engine/registered_sources.h"
#include "managed/volume_files.h"

namespace snapvol {
namespace {

class VolumeDeletionTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir() + "/volume-deletion-" + NewVolumeId();
    volume_dir_ = dir_ + "/volumes";
    ASSERT_TRUE(MakeDirs(volume_dir_));
    catalog_db_ = std::make_unique<catalog_testing::TestCatalogDb>(dir_);
    catalog_ = std::move(*Catalog::Open(catalog_db_->location()));
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A volume with an image file and a tag: managed/restored ones in volume_dir_ under the
  // name snapvol gives them, a registered one wherever path says.
  VolumeRecord Volume(bool managed, const std::string& snapshot_id = "", std::string path = "") {
    VolumeRecord v;
    v.volume_id = NewVolumeId();
    v.account_id = kDefaultAccountId;
    v.path = path.empty() ? VolumeImagePath(volume_dir_, v.volume_id) : path;
    v.size_bytes = 4096;
    v.block_size = 4096;
    v.created_ms = 1;
    v.managed = managed;
    v.snapshot_id = snapshot_id;
    v.tags = {Tag{"team", "web"}};
    EXPECT_TRUE(WriteFileAtomic(v.path, AsBytes(std::string(4096, 'd')), 0600));
    if (managed) EXPECT_TRUE(WriteFileAtomic(CbtPath(v.path), AsBytes(std::string("c")), 0600));
    EXPECT_TRUE(catalog_->InsertVolume(v));
    return v;
  }

  VolumeDeletion With() {
    return VolumeDeletion{.catalog = catalog_.get(),
                          .volume_dir = volume_dir_,
                          .end_connections = [this](const std::string& id) -> Status {
                            ended_.push_back(id);
                            return end_result_;
                          },
                          .on_deleted = [this](const std::string& id) { forgotten_.push_back(id); }};
  }

  // Deletes and expects a refusal for why, naming what, with row, tag and file intact.
  void ExpectRefused(const VolumeRecord& v, VolumeDeletionRefusal why, const std::string& what) {
    VolumeDeletionRefusal refusal = VolumeDeletionRefusal::kNone;
    auto st = DeleteVolume(With(), v.volume_id, nullptr, &refusal);
    ASSERT_FALSE(st) << "deleted despite: " << what;
    EXPECT_EQ(st.error().code(), ErrorCode::kConflict) << st.error().ToString();
    EXPECT_NE(st.error().message().find(what), std::string::npos) << st.error().message();
    EXPECT_EQ(refusal, why) << st.error().message();
    EXPECT_TRUE(catalog_->GetVolume(v.volume_id)) << "the row went despite: " << what;
    EXPECT_TRUE(PathExists(v.path)) << "the file went despite: " << what;
    EXPECT_TRUE(forgotten_.empty());
  }

  std::string dir_, volume_dir_;
  std::unique_ptr<catalog_testing::TestCatalogDb> catalog_db_;  // outlives catalog_
  std::unique_ptr<Catalog> catalog_;
  std::vector<std::string> ended_, forgotten_;
  Status end_result_ = OkStatus();
};

TEST_F(VolumeDeletionTest, AnAttachedVolumeIsRefusedAndItsConnectionsKept) {
  VolumeRecord v = Volume(/*managed=*/true);
  const std::string inst = NewInstanceId();
  ASSERT_TRUE(catalog_->InsertInstance(InstanceRecord{.instance_id = inst, .account_id = kDefaultAccountId}));
  ASSERT_TRUE(catalog_->SetVolumeAttachment(v.volume_id, inst, "/dev/xvdf", 5));
  ExpectRefused(v, VolumeDeletionRefusal::kAttached, "attached to " + inst);
  EXPECT_TRUE(ended_.empty()) << "an attached volume's writers were cut off";
  EXPECT_TRUE(PathExists(CbtPath(v.path)));
}

TEST_F(VolumeDeletionTest, TheCatalogRefusesAnAttachedVolumeInItsOwnTransaction) {
  // An AttachVolume that lands after the operation's own check (while connections are being
  // ended) is caught by the catalog: the row stays.
  VolumeRecord v = Volume(/*managed=*/true);
  const std::string inst = NewInstanceId();
  ASSERT_TRUE(catalog_->InsertInstance(InstanceRecord{.instance_id = inst, .account_id = kDefaultAccountId}));
  VolumeDeletion with = With();
  with.end_connections = [&](const std::string& id) -> Status {
    return catalog_->SetVolumeAttachment(id, inst, "/dev/xvdf", 5);
  };
  VolumeDeletionRefusal refusal = VolumeDeletionRefusal::kNone;
  auto st = DeleteVolume(with, v.volume_id, nullptr, &refusal);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), ErrorCode::kConflict);
  EXPECT_EQ(refusal, VolumeDeletionRefusal::kAttached) << st.error().message();
  EXPECT_TRUE(catalog_->GetVolume(v.volume_id));
  EXPECT_TRUE(PathExists(v.path));
  EXPECT_EQ(catalog_->DeleteVolume(v.volume_id).error().code(), ErrorCode::kConflict);
}

TEST_F(VolumeDeletionTest, AVolumeStillBeingRestoredIsRefused) {
  VolumeRecord v = Volume(/*managed=*/false, NewSnapshotId());
  ASSERT_TRUE(catalog_->SetVolumeState(v.volume_id, "creating"));
  ExpectRefused(v, VolumeDeletionRefusal::kCreating, "creating");
  EXPECT_EQ(catalog_->DeleteVolume(v.volume_id).error().code(), ErrorCode::kConflict);
}

TEST_F(VolumeDeletionTest, AVolumeWithAnUnfinishedRollbackIsRefusedUntilItEnds) {
  VolumeRecord v = Volume(/*managed=*/false, "", dir_ + "/disk.raw");
  ReplaceRootVolumeTaskRecord t;
  t.task_id = NewReplaceRootVolumeTaskId();
  t.account_id = kDefaultAccountId;
  t.volume_id = v.volume_id;
  t.snapshot_id = NewSnapshotId();
  for (const char* state : {"pending", "in-progress"}) {
    t.state = state;
    if (t.state == "pending") ASSERT_TRUE(catalog_->InsertReplaceRootVolumeTask(t));
    else ASSERT_TRUE(catalog_->UpdateReplaceRootVolumeTask(t));
    ExpectRefused(v, VolumeDeletionRefusal::kRollingBack, t.task_id);
    EXPECT_EQ(catalog_->DeleteVolume(v.volume_id).error().code(), ErrorCode::kConflict) << state;
  }
  t.state = "succeeded";
  ASSERT_TRUE(catalog_->UpdateReplaceRootVolumeTask(t));
  EXPECT_TRUE(DeleteVolume(With(), v.volume_id));
}

TEST_F(VolumeDeletionTest, TheReplaceRootTaskDeletesTheVolumeItReplacedButNoOtherTaskDoes) {
  // DeleteReplacedRootVolume: the task still in progress deletes the old root; another
  // unfinished task of the same volume still refuses it.
  VolumeRecord v = Volume(/*managed=*/true);
  ReplaceRootVolumeTaskRecord mine;
  mine.task_id = NewReplaceRootVolumeTaskId();
  mine.account_id = kDefaultAccountId;
  mine.volume_id = v.volume_id;
  mine.snapshot_id = NewSnapshotId();
  mine.state = "in-progress";
  ASSERT_TRUE(catalog_->InsertReplaceRootVolumeTask(mine));
  ReplaceRootVolumeTaskRecord other = mine;
  other.task_id = NewReplaceRootVolumeTaskId();
  other.state = "pending";
  ASSERT_TRUE(catalog_->InsertReplaceRootVolumeTask(other));
  VolumeDeletion with = With();
  with.by_task = mine.task_id;
  VolumeDeletionRefusal refusal = VolumeDeletionRefusal::kNone;
  auto st = DeleteVolume(with, v.volume_id, nullptr, &refusal);
  ASSERT_FALSE(st);
  EXPECT_EQ(refusal, VolumeDeletionRefusal::kRollingBack);
  EXPECT_NE(st.error().message().find(other.task_id), std::string::npos) << st.error().message();
  EXPECT_EQ(catalog_->DeleteVolume(v.volume_id, mine.task_id).error().code(), ErrorCode::kConflict);
  other.state = "failed";
  ASSERT_TRUE(catalog_->UpdateReplaceRootVolumeTask(other));
  EXPECT_EQ(DeleteVolume(With(), v.volume_id).error().code(), ErrorCode::kConflict) << "without by_task";
  VolumeDeletionResult result;
  ASSERT_TRUE(DeleteVolume(with, v.volume_id, &result));
  EXPECT_TRUE(result.files_removed);
  EXPECT_FALSE(PathExists(v.path));
}

TEST_F(VolumeDeletionTest, ConnectionsThatDoNotEndRefuseAndChangeNothing) {
  VolumeRecord v = Volume(/*managed=*/true);
  end_result_ = Internal("1 connection did not close within 5 s");
  ExpectRefused(v, VolumeDeletionRefusal::kConnections, "did not close");
  EXPECT_EQ(ended_, std::vector<std::string>{v.volume_id});
}

TEST_F(VolumeDeletionTest, AManagedVolumeGoesWithItsFilesAfterItsConnectionsEnd) {
  VolumeRecord v = Volume(/*managed=*/true);
  VolumeRecord other = Volume(/*managed=*/true);
  VolumeDeletionResult result;
  ASSERT_TRUE(DeleteVolume(With(), v.volume_id, &result));
  EXPECT_TRUE(result.files_removed);
  EXPECT_EQ(result.volume.volume_id, v.volume_id);
  EXPECT_EQ(ended_, std::vector<std::string>{v.volume_id});
  EXPECT_EQ(forgotten_, std::vector<std::string>{v.volume_id});
  EXPECT_EQ(catalog_->GetVolume(v.volume_id).error().code(), ErrorCode::kNotFound);
  VolumeRecord again = v;  // re-registered under the same id: starts without the old tags
  again.tags.clear();
  ASSERT_TRUE(catalog_->InsertVolume(again));
  EXPECT_TRUE(catalog_->GetVolume(v.volume_id)->tags.empty()) << "its tags stayed";
  ASSERT_TRUE(catalog_->DeleteVolume(v.volume_id));
  EXPECT_FALSE(PathExists(v.path));
  EXPECT_FALSE(PathExists(CbtPath(v.path)));
  EXPECT_TRUE(PathExists(other.path)) << "another volume's image went too";
  EXPECT_TRUE(catalog_->GetVolume(other.volume_id));
  // Gone is gone.
  EXPECT_EQ(DeleteVolume(With(), v.volume_id).error().code(), ErrorCode::kNotFound);
}

TEST_F(VolumeDeletionTest, ARestoredVolumeGoesWithItsImageAndItsSnapshotStays) {
  SnapshotRecord s;
  s.snapshot_id = NewSnapshotId();
  s.account_id = kDefaultAccountId;
  s.state = SnapshotState::kCompleted;
  s.progress = "100%";
  s.block_size = 4096;
  VolumeRecord v = Volume(/*managed=*/false, s.snapshot_id);
  s.volume_id = v.volume_id;
  ASSERT_TRUE(catalog_->InsertSnapshot(s));
  VolumeDeletionResult result;
  ASSERT_TRUE(DeleteVolume(With(), v.volume_id, &result));
  EXPECT_TRUE(result.files_removed);
  EXPECT_FALSE(PathExists(v.path));
  auto kept = catalog_->GetSnapshot(s.snapshot_id);
  ASSERT_TRUE(kept) << "the volume's snapshot went with it";
  EXPECT_EQ(kept->volume_id, v.volume_id);
}

TEST_F(VolumeDeletionTest, ARegisteredVolumesDiskIsNeverTouched) {
  // Its row goes; its file stays, wherever it is: outside the volume dir, and even inside it
  // under the very name snapvol would have given it.
  VolumeRecord outside = Volume(/*managed=*/false, "", dir_ + "/disk.raw");
  VolumeRecord inside = Volume(/*managed=*/false);
  for (const VolumeRecord& v : {outside, inside}) {
    VolumeDeletionResult result;
    ASSERT_TRUE(DeleteVolume(With(), v.volume_id, &result));
    EXPECT_FALSE(result.files_removed) << v.path;
    EXPECT_EQ(catalog_->GetVolume(v.volume_id).error().code(), ErrorCode::kNotFound);
    ASSERT_TRUE(PathExists(v.path)) << "a registered volume's disk was removed: " << v.path;
    auto bytes = ReadWholeFile(v.path);
    ASSERT_TRUE(bytes);
    EXPECT_EQ(bytes->size(), 4096u);
  }
}

TEST_F(VolumeDeletionTest, ARegisteredVolumesBaseClonesGoButNotAnotherVolumes) {
  VolumeRecord v = Volume(/*managed=*/false, "", dir_ + "/disk.raw");
  VolumeRecord other = Volume(/*managed=*/false, "", dir_ + "/other.raw");
  ASSERT_TRUE(MakeDirs(CloneDir(v.path)));
  const std::string mine = ClonePath(v.path, v.volume_id, NewSnapshotId());
  const std::string theirs = ClonePath(other.path, other.volume_id, NewSnapshotId());
  ASSERT_TRUE(WriteFileAtomic(mine, AsBytes(std::string(4096, 'c')), 0600));
  ASSERT_TRUE(WriteFileAtomic(theirs, AsBytes(std::string(4096, 'o')), 0600));
  VolumeDeletionResult result;
  ASSERT_TRUE(DeleteVolume(With(), v.volume_id, &result));
  EXPECT_EQ(result.left_behind, "");
  EXPECT_FALSE(PathExists(mine)) << "the deleted volume's base clone was left behind";
  EXPECT_TRUE(PathExists(theirs)) << "another volume's base clone was removed";
  EXPECT_TRUE(PathExists(v.path)) << "the image itself was removed";
}

TEST_F(VolumeDeletionTest, OnlyTheImageSnapvolNamedIsItsOwn) {
  VolumeRecord v;
  v.volume_id = NewVolumeId();
  v.managed = true;
  v.path = VolumeImagePath(volume_dir_, v.volume_id);
  EXPECT_TRUE(OwnsVolumeFiles(v, volume_dir_));
  EXPECT_TRUE(OwnsVolumeFiles(v, ""));  // the CLI: the name alone
  EXPECT_FALSE(OwnsVolumeFiles(v, dir_ + "/elsewhere"));
  v.path = volume_dir_ + "/other.img";
  EXPECT_FALSE(OwnsVolumeFiles(v, volume_dir_));
  v.path = VolumeImagePath(volume_dir_, NewVolumeId());  // another volume's image
  EXPECT_FALSE(OwnsVolumeFiles(v, ""));
  v.path = VolumeImagePath(volume_dir_, v.volume_id);
  v.managed = false;  // registered
  EXPECT_FALSE(OwnsVolumeFiles(v, volume_dir_));
}

TEST_F(VolumeDeletionTest, WithoutAConnectionCallbackTheCliDeletesByTheNameRule) {
  VolumeRecord v = Volume(/*managed=*/true);
  VolumeDeletionResult result;
  ASSERT_TRUE(DeleteVolume({.catalog = catalog_.get()}, v.volume_id, &result));
  EXPECT_TRUE(result.files_removed);
  EXPECT_FALSE(PathExists(v.path));
}

// A volume another host holds (docs/multi-host.md part 3) is refused before anything is done,
// managed or registered: its files and what snapvol keeps beside a registered disk are on that
// host. The message names the host; on the volume's own host the deletion goes through.
TEST_F(VolumeDeletionTest, AVolumeAnotherHostHoldsIsRefusedNamingTheHost) {
  const std::string a = "host-aaaaaaaaaaaaaaaaa", b = "host-bbbbbbbbbbbbbbbbb";
  ASSERT_TRUE(catalog_->UpsertHost(HostRecord{.host_id = b, .name = "hv-b", .api_url = "http://10.0.0.2:8080"}));
  catalog_->SetLocalHost(b);
  VolumeRecord managed = Volume(/*managed=*/true);
  VolumeRecord registered = Volume(/*managed=*/false, "", dir_ + "/registered.img");
  ASSERT_TRUE(MakeDirs(CloneDir(registered.path)));
  ASSERT_TRUE(WriteFileAtomic(ClonePath(registered.path, registered.volume_id, NewSnapshotId()),
                              AsBytes(std::string("clone")), 0600));
  catalog_->SetLocalHost(a);
  ExpectRefused(managed, VolumeDeletionRefusal::kOtherHost, "lives on host hv-b (" + b + ", API http://10.0.0.2:8080)");
  ExpectRefused(registered, VolumeDeletionRefusal::kOtherHost, "lives on host hv-b");
  EXPECT_TRUE(ended_.empty()) << "another host's volume had its connections ended here";
  EXPECT_TRUE(PathExists(CbtPath(managed.path)));
  EXPECT_EQ(ListClones(registered.path, registered.volume_id).size(), 1u);
  catalog_->SetLocalHost(b);
  ASSERT_TRUE(DeleteVolume(With(), managed.volume_id));
  EXPECT_FALSE(PathExists(managed.path));
}

// With route (snapvold), a volume another host holds is checked here and queued for that host,
// which deletes it with its own connections and files; nothing is done here. While that host is
// not up the request is refused naming it and its state, and nothing changes.
TEST_F(VolumeDeletionTest, AnotherHostsVolumeIsQueuedForItAndThatHostDeletesIt) {
  const std::string a = "host-aaaaaaaaaaaaaaaaa", b = "host-bbbbbbbbbbbbbbbbb";
  constexpr int64_t kNow = 1'700'000'000'000;
  FakeClock clock(kNow);
  ASSERT_TRUE(catalog_->UpsertHost(HostRecord{.host_id = b, .name = "hv-b", .api_url = "http://10.0.0.2:8080",
                                              .started_ms = kNow, .heartbeat_ms = kNow}));
  catalog_->SetLocalHost(b);
  VolumeRecord managed = Volume(/*managed=*/true);
  catalog_->SetLocalHost(a);
  VolumeDeletion routed = With();
  routed.route = true;
  routed.clock = &clock;
  routed.host_timeout_ms = 30'000;

  // B's heartbeat is too old: refused, nothing changed.
  clock.Advance(30'001);
  VolumeDeletionRefusal refusal = VolumeDeletionRefusal::kNone;
  auto down = DeleteVolume(routed, managed.volume_id, nullptr, &refusal);
  ASSERT_FALSE(down);
  EXPECT_EQ(refusal, VolumeDeletionRefusal::kHostNotUp);
  EXPECT_NE(down.error().message().find("hv-b (" + b + ", API http://10.0.0.2:8080), which is unreachable"),
            std::string::npos)
      << down.error().message();
  EXPECT_EQ(catalog_->GetVolume(managed.volume_id)->state, "available");

  // B up: queued, the answer is success, and nothing is done on A.
  ASSERT_TRUE(catalog_->Heartbeat(b, clock.NowMillis()));
  VolumeDeletionResult result;
  auto queued = DeleteVolume(routed, managed.volume_id, &result, &refusal);
  ASSERT_TRUE(queued) << queued.error().ToString();
  EXPECT_EQ(result.queued_for, b);
  EXPECT_FALSE(result.files_removed);
  EXPECT_EQ(catalog_->GetVolume(managed.volume_id)->state, "deleting");
  EXPECT_TRUE(ended_.empty()) << "A ended connections to B's volume";
  EXPECT_TRUE(forgotten_.empty());
  EXPECT_TRUE(PathExists(managed.path));
  // A never claims B's deletion.
  auto on_a = catalog_->ClaimVolumeDeletion(a, "runner-a");
  ASSERT_TRUE(on_a);
  EXPECT_FALSE(on_a->has_value());

  // B claims it and runs the one deletion path: connections, row, files.
  catalog_->SetLocalHost(b);
  auto claimed = catalog_->ClaimVolumeDeletion(b, "runner-b");
  ASSERT_TRUE(claimed && claimed->has_value());
  ASSERT_TRUE(RunClaimedVolumeDeletion(With(), **claimed));
  EXPECT_EQ(ended_, std::vector<std::string>{managed.volume_id});
  EXPECT_EQ(catalog_->GetVolume(managed.volume_id).error().code(), ErrorCode::kNotFound);
  EXPECT_FALSE(PathExists(managed.path));
  EXPECT_FALSE(PathExists(CbtPath(managed.path)));
}

// A claimed deletion its host cannot do ends `error` with the reason: never `deleting` for ever.
TEST_F(VolumeDeletionTest, AClaimedDeletionThatFailsMarksTheVolumeErrorWithTheReason) {
  const std::string b = "host-bbbbbbbbbbbbbbbbb";
  ASSERT_TRUE(catalog_->UpsertHost(HostRecord{.host_id = b, .name = "hv-b", .heartbeat_ms = 1000}));
  catalog_->SetLocalHost(b);
  VolumeRecord managed = Volume(/*managed=*/true);
  ASSERT_TRUE(catalog_->QueueVolumeDeletion(managed.volume_id, 1000, 30'000));
  auto claimed = catalog_->ClaimVolumeDeletion(b, "runner-b");
  ASSERT_TRUE(claimed && claimed->has_value());
  end_result_ = Conflict("a client would not let go");
  auto st = RunClaimedVolumeDeletion(With(), **claimed);
  ASSERT_FALSE(st);
  auto v = catalog_->GetVolume(managed.volume_id);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->state, "error");
  EXPECT_NE(v->state_message.find("a client would not let go"), std::string::npos) << v->state_message;
  EXPECT_TRUE(PathExists(managed.path));
}

}  // namespace
}  // namespace snapvol
