// Where a new volume goes (docs/multi-host.md part 3): CreateVolume's aws:snapvol:host names a
// host by name or id; this host's is made here as before; an unknown (or ambiguous) host is
// InvalidParameterValue naming it; a host that is not up is IncorrectState naming it and its
// state. A volume placed on another host is written `creating` there with no file here, and that
// host makes it once it claimed it. Two Ec2Contexts, hosts A and B, on one catalog database (its
// two Catalog objects as two snapvold would have); both backends.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <tuple>

#include "api/ec2_context.h"
#include "catalog/catalog_test_db.h"
#include "core/ids.h"
#include "managed/volume_files.h"

namespace snapvol::api {
namespace {

constexpr int64_t kT0 = 1'800'000'000'000;
constexpr int64_t kTimeout = 30'000;
constexpr char kA[] = "host-aaaaaaaaaaaaaaaaa";
constexpr char kB[] = "host-bbbbbbbbbbbbbbbbb";

class VolumePlacementTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "volume_placement_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    catalog_db_ = std::make_unique<catalog_testing::TestCatalogDb>(dir_);
    for (auto [cat, host, ctx, sub] : {std::tuple{&cat_a_, kA, &a_, "a"}, std::tuple{&cat_b_, kB, &b_, "b"}}) {
      auto c = Catalog::Open(catalog_db_->location(), &clock_);
      ASSERT_TRUE(c) << c.error().ToString();
      *cat = std::move(*c);
      (*cat)->SetLocalHost(host);
      ctx->catalog = cat->get();
      ctx->clock = &clock_;
      ctx->options.host_timeout_ms = kTimeout;
      ctx->options.restore_dir = dir_ + "/" + sub;
      std::filesystem::create_directories(ctx->options.restore_dir);
    }
    ASSERT_TRUE(cat_a_->UpsertHost({kA, "rack-a", "http://a", "unix:/a", "0", kT0, kT0}));
    ASSERT_TRUE(cat_a_->UpsertHost({kB, "rack-b", "http://b", "unix:/b", "0", kT0, kT0}));
  }
  void TearDown() override {
    cat_a_.reset();
    cat_b_.reset();
    std::filesystem::remove_all(dir_);
  }
  VolumeRecord Empty() {
    VolumeRecord v;
    v.volume_id = NewVolumeId();
    v.account_id = kDefaultAccountId;
    v.size_bytes = 1 << 20;
    v.block_size = 512 * 1024;
    v.created_ms = kT0;
    v.tags = {{"Name", "db"}};
    return v;
  }

  std::string dir_;
  FakeClock clock_{kT0};
  std::unique_ptr<catalog_testing::TestCatalogDb> catalog_db_;  // outlives the catalogs
  std::unique_ptr<Catalog> cat_a_, cat_b_;
  Ec2Context a_, b_;
};

template <typename T>
std::string CodeOf(const ApiResult<T>& r) {
  return r ? "ok" : r.error().code;
}

TEST_F(VolumePlacementTest, AHostIsNamedByItsNameOrIdAndThisHostIsHere) {
  auto by_name = a_.PlaceVolume("rack-b");
  ASSERT_TRUE(by_name) << by_name.error().message;
  EXPECT_EQ(*by_name, kB);
  auto by_id = a_.PlaceVolume(kB);
  ASSERT_TRUE(by_id);
  EXPECT_EQ(*by_id, kB);
  // The host asked: made here, as without the tag.
  auto here = a_.PlaceVolume("rack-a");
  ASSERT_TRUE(here);
  EXPECT_EQ(*here, "");
  EXPECT_EQ(*b_.PlaceVolume("rack-b"), "");
  EXPECT_EQ(*b_.PlaceVolume(kA), kA);
}

TEST_F(VolumePlacementTest, AnUnknownOrAmbiguousHostIsInvalid) {
  auto unknown = a_.PlaceVolume("rack-z");
  ASSERT_EQ(CodeOf(unknown), "InvalidParameterValue");
  EXPECT_NE(unknown.error().message.find("rack-z"), std::string::npos) << unknown.error().message;
  const std::string kC = "host-ccccccccccccccccc";
  ASSERT_TRUE(cat_a_->UpsertHost({kC, "rack-b", "http://c", "unix:/c", "0", kT0, kT0}));
  auto twice = a_.PlaceVolume("rack-b");
  ASSERT_EQ(CodeOf(twice), "InvalidParameterValue");
  EXPECT_NE(twice.error().message.find(kC), std::string::npos) << twice.error().message;
  EXPECT_EQ(*a_.PlaceVolume(kC), kC);  // its id still says which
}

TEST_F(VolumePlacementTest, AStoppedOrUnreachableHostIsRefusedNamingItsState) {
  clock_.Advance(kTimeout);  // exactly the timeout old: still up
  ASSERT_TRUE(cat_a_->Heartbeat(kA, clock_.NowMillis()));
  EXPECT_EQ(*a_.PlaceVolume("rack-b"), kB);
  clock_.Advance(1);
  auto gone = a_.PlaceVolume("rack-b");
  ASSERT_EQ(CodeOf(gone), "IncorrectState");
  EXPECT_NE(gone.error().message.find("rack-b"), std::string::npos) << gone.error().message;
  EXPECT_NE(gone.error().message.find("unreachable"), std::string::npos) << gone.error().message;
  ASSERT_TRUE(cat_a_->Heartbeat(kB, 0));
  auto stopped = a_.PlaceVolume(kB);
  ASSERT_EQ(CodeOf(stopped), "IncorrectState");
  EXPECT_NE(stopped.error().message.find("stopped"), std::string::npos) << stopped.error().message;
  EXPECT_NE(stopped.error().message.find(kB), std::string::npos) << stopped.error().message;
}

TEST_F(VolumePlacementTest, AVolumePlacedOnBIsCreatingThereAndBMakesIt) {
  auto queued = a_.QueueVolumeOn(Empty(), kB);
  ASSERT_TRUE(queued) << queued.error().message;
  const std::string id = queued->volume_id;
  EXPECT_EQ(queued->state, "creating");
  EXPECT_EQ(queued->host_id, kB);
  bool tagged = false;
  for (const Tag& t : queued->tags) tagged |= t.key == kHostTag && t.value == "rack-b";
  EXPECT_TRUE(tagged);  // the tag read back is the host it was placed on
  EXPECT_TRUE(std::filesystem::is_empty(a_.options.restore_dir));
  // A never claims it; B does, and makes its file in B's directory.
  auto none = cat_a_->ClaimVolumeCreation(kA, "ra", kT0);
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
  auto claimed = cat_b_->ClaimVolumeCreation(kB, "rb", kT0);
  ASSERT_TRUE(claimed && claimed->has_value());
  ASSERT_TRUE(b_.MakeClaimedVolume(**claimed, "rb"));
  auto made = cat_a_->GetVolume(id);
  ASSERT_TRUE(made);
  EXPECT_EQ(made->state, "available");
  EXPECT_EQ(made->path, VolumeImagePath(b_.options.restore_dir, id));
  EXPECT_EQ(std::filesystem::file_size(made->path), 1u << 20);
  EXPECT_TRUE(std::filesystem::is_empty(a_.options.restore_dir));
  EXPECT_TRUE(cat_a_->ListVolumeCreations()->empty());
}

TEST_F(VolumePlacementTest, ACreationThatCannotBeMadeEndsErrorWithTheReasonAndLeavesNoFile) {
  VolumeRecord v = Empty();
  v.snapshot_id = NewSnapshotId();  // a snapshot nobody has
  ASSERT_TRUE(a_.QueueVolumeOn(v, kB));
  auto claimed = cat_b_->ClaimVolumeCreation(kB, "rb", kT0);
  ASSERT_TRUE(claimed && claimed->has_value());
  EXPECT_FALSE(b_.MakeClaimedVolume(**claimed, "rb"));
  auto ended = cat_a_->GetVolume(v.volume_id);
  EXPECT_EQ(ended->state, "error");
  EXPECT_NE(ended->state_message.find(v.snapshot_id), std::string::npos) << ended->state_message;
  EXPECT_TRUE(std::filesystem::is_empty(b_.options.restore_dir));
  // One the sweep ended while B was making it: B's finish is refused and its file goes.
  ASSERT_TRUE(a_.QueueVolumeOn(Empty(), kB));
  auto second = cat_b_->ClaimVolumeCreation(kB, "rb", kT0);
  ASSERT_TRUE(second && second->has_value());
  ASSERT_TRUE(cat_a_->SetVolumeState((*second)->volume_id, "error", "swept"));
  EXPECT_FALSE(b_.MakeClaimedVolume(**second, "rb"));
  EXPECT_EQ(cat_a_->GetVolume((*second)->volume_id)->state_message, "swept");
  EXPECT_TRUE(std::filesystem::is_empty(b_.options.restore_dir));
}

}  // namespace
}  // namespace snapvol::api
