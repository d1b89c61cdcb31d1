// Account isolation where every handler finds its resource: another account's volume,
// snapshot or instance is *.NotFound (never "exists but forbidden"), an administrator reaches
// all of them, and a snapshot is readable by another account only when shared with it or
// with everyone.
#include "api/ec2_context.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "catalog/catalog_test_db.h"
#include "core/ids.h"

namespace snapvol::api {
namespace {

constexpr int64_t kT0 = 1'800'000'000'000;

class Ec2ContextIsolationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "ec2_context_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    catalog_db_ = std::make_unique<catalog_testing::TestCatalogDb>(dir_);
    auto c = Catalog::Open(catalog_db_->location(), &clock_);
    ASSERT_TRUE(c) << c.error().ToString();
    catalog_ = std::move(*c);
    ctx_.catalog = catalog_.get();
    for (auto* caller : {&a_, &b_, &c_}) {
      auto acct = catalog_->CreateAccount("team-" + std::to_string(caller == &a_ ? 1 : caller == &b_ ? 2 : 3));
      ASSERT_TRUE(acct) << acct.error().ToString();
      caller->account_id = acct->account_id;
    }
    admin_.account_id = kDefaultAccountId;
    admin_.admin = true;

    VolumeRecord v;
    v.volume_id = NewVolumeId();
    v.account_id = a_.account_id;
    v.path = dir_ + "/vol.img";
    v.size_bytes = 1 << 30;
    v.block_size = 512 * 1024;
    v.created_ms = kT0;
    ASSERT_TRUE(catalog_->InsertVolume(v));
    volume_id_ = v.volume_id;

    SnapshotRecord s;
    s.snapshot_id = NewSnapshotId();
    s.volume_id = v.volume_id;
    s.account_id = a_.account_id;
    s.state = SnapshotState::kCompleted;
    s.progress = "100%";
    s.start_time_ms = kT0;
    s.completed_time_ms = kT0 + 1000;
    s.volume_size_bytes = 1 << 30;
    s.block_size = 512 * 1024;
    ASSERT_TRUE(catalog_->InsertSnapshot(s));
    snapshot_id_ = s.snapshot_id;
  }
  void TearDown() override {
    catalog_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::string dir_, volume_id_, snapshot_id_;
  FakeClock clock_{kT0};
  std::unique_ptr<catalog_testing::TestCatalogDb> catalog_db_;  // outlives catalog_
  std::unique_ptr<Catalog> catalog_;
  Ec2Context ctx_;
  Caller a_, b_, c_, admin_;
};

template <typename T>
std::string CodeOf(const ApiResult<T>& r) {
  return r ? "ok" : r.error().code;
}

TEST_F(Ec2ContextIsolationTest, AnotherAccountsVolumeAndSnapshotAreNotFound) {
  EXPECT_EQ(CodeOf(ctx_.VisibleVolume(a_, volume_id_)), "ok");
  EXPECT_EQ(CodeOf(ctx_.VisibleVolume(b_, volume_id_)), "InvalidVolume.NotFound");
  EXPECT_EQ(CodeOf(ctx_.VisibleVolume(admin_, volume_id_)), "ok");
  EXPECT_EQ(CodeOf(ctx_.VisibleSnapshot(a_, snapshot_id_)), "ok");
  EXPECT_EQ(CodeOf(ctx_.VisibleSnapshot(b_, snapshot_id_)), "InvalidSnapshot.NotFound");
  EXPECT_EQ(CodeOf(ctx_.VisibleSnapshot(admin_, snapshot_id_)), "ok");
  // Not found reads the same as an id that does not exist at all.
  auto absent = ctx_.VisibleSnapshot(b_, NewSnapshotId());
  ASSERT_FALSE(absent);
  auto foreign = ctx_.VisibleSnapshot(b_, snapshot_id_);
  ASSERT_FALSE(foreign);
  EXPECT_EQ(foreign.error().http_status, absent.error().http_status);
}

TEST_F(Ec2ContextIsolationTest, ASnapshotIsReadableByAnotherAccountOnlyWhenSharedWithIt) {
  EXPECT_EQ(CodeOf(ctx_.ReadableSnapshot(a_, snapshot_id_)), "ok");
  EXPECT_EQ(CodeOf(ctx_.ReadableSnapshot(b_, snapshot_id_)), "InvalidSnapshot.NotFound");
  EXPECT_EQ(CodeOf(ctx_.ReadableSnapshot(admin_, snapshot_id_)), "ok");
  ASSERT_TRUE(catalog_->AddSnapshotPermissions(snapshot_id_, {b_.account_id}));
  EXPECT_EQ(CodeOf(ctx_.ReadableSnapshot(b_, snapshot_id_)), "ok");
  EXPECT_EQ(CodeOf(ctx_.ReadableSnapshot(c_, snapshot_id_)), "InvalidSnapshot.NotFound");
  // Shared is not owned: the grantee still cannot act on it as its own.
  EXPECT_EQ(CodeOf(ctx_.VisibleSnapshot(b_, snapshot_id_)), "InvalidSnapshot.NotFound");
  ASSERT_TRUE(catalog_->AddSnapshotPermissions(snapshot_id_, {"all"}));
  EXPECT_EQ(CodeOf(ctx_.ReadableSnapshot(c_, snapshot_id_)), "ok");
}

// Nobody sets a system tag through EC2: every aws: key, in any case, snapvol's own included
// (which the catalog accepts from snapvol itself), is refused with EC2's words; snapvol: is an
// ordinary prefix.
TEST(Ec2CheckTags, RefusesEveryAwsKeyAndOnlyThose) {
  for (const std::string& key : std::vector<std::string>{"aws:x", "AWS:x", std::string(kConsistencyTag), std::string(kPolicyIdTag),
                                std::string(kHostTag)}) {
    auto st = CheckTags({{key, "v"}}, "Tag");
    ASSERT_FALSE(st) << key;
    EXPECT_EQ(st.error().code, "InvalidParameterValue") << key;
    EXPECT_EQ(st.error().message, "Value ( " + key +
                                      " ) for parameter key is invalid. Tag keys starting with 'aws:' are reserved "
                                      "for internal use");
  }
  EXPECT_TRUE(CheckTags({{"snapvol:policy-id", "v"}, {"awsx", "v"}, {"Name", "n"}}, "Tag"));
}

}  // namespace
}  // namespace snapvol::api
