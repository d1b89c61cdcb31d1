// The catalog's freeze hooks of instances: set, replace, list, clear, and what it refuses.
#include <gtest/gtest.h>

#include <filesystem>

#include "catalog/catalog.h"
#include "catalog/catalog_test_db.h"
#include "core/ids.h"
#include "core/file_util.h"

namespace snapvol {
namespace {

class CatalogInstanceHooksTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir() + "/hooks-cat-" + NewVolumeId();
    ASSERT_TRUE(MakeDirs(dir_));
    db_ = std::make_unique<catalog_testing::TestCatalogDb>(dir_);
    auto c = Catalog::Open(db_->location());
    ASSERT_TRUE(c) << c.error().ToString();
    cat_ = std::move(*c);
    id_ = NewInstanceId();
    ASSERT_TRUE(cat_->InsertInstance({id_, kDefaultAccountId, "db", 1, {}}));
  }
  void TearDown() override {
    cat_.reset();
    db_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::string dir_, id_;
  std::unique_ptr<catalog_testing::TestCatalogDb> db_;
  std::unique_ptr<Catalog> cat_;
};

TEST_F(CatalogInstanceHooksTest, SetReplaceListAndClear) {
  EXPECT_EQ(cat_->GetInstanceHooks(id_).error().code(), ErrorCode::kNotFound);
  InstanceHooksRecord h{id_, "virsh domfsfreeze db", "virsh domfsthaw db", 30, "fail", 5};
  ASSERT_TRUE(cat_->SetInstanceHooks(h));
  EXPECT_EQ(*cat_->GetInstanceHooks(id_), h);
  h.pre_command = "";
  h.on_pre_failure = "crash-consistent";
  ASSERT_TRUE(cat_->SetInstanceHooks(h));
  EXPECT_EQ(*cat_->GetInstanceHooks(id_), h);
  EXPECT_EQ(*cat_->ListInstanceHooks(), std::vector<InstanceHooksRecord>{h});
  ASSERT_TRUE(cat_->ClearInstanceHooks(id_));
  EXPECT_EQ(cat_->GetInstanceHooks(id_).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(cat_->ClearInstanceHooks(id_).error().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(cat_->ListInstanceHooks()->empty());
}

TEST_F(CatalogInstanceHooksTest, RefusesWhatCouldNeverRun) {
  auto code = [&](InstanceHooksRecord h) -> std::string {
    auto st = cat_->SetInstanceHooks(h);
    if (st) return "ok";
    return st.error().code() == ErrorCode::kNotFound ? "not found"
           : st.error().code() == ErrorCode::kInvalidArgument ? "invalid" : st.error().ToString();
  };
  EXPECT_EQ(code({id_, "", "", 10, "fail", 1}), "invalid");
  EXPECT_EQ(code({id_, "sh -c 'open", "", 10, "fail", 1}), "invalid");
  EXPECT_EQ(code({id_, "", "thaw\\", 10, "fail", 1}), "invalid");
  EXPECT_EQ(code({id_, std::string(4097, 'x'), "", 10, "fail", 1}), "invalid");
  EXPECT_EQ(code({id_, "f", "", 0, "fail", 1}), "invalid");
  EXPECT_EQ(code({id_, "f", "", 3601, "fail", 1}), "invalid");
  EXPECT_EQ(code({id_, "f", "", 10, "ignore", 1}), "invalid");
  EXPECT_EQ(code({NewInstanceId(), "f", "", 10, "fail", 1}), "not found");
  EXPECT_EQ(code({id_, "f", "", 3600, "fail", 1}), "ok");
}

}  // namespace
}  // namespace snapvol
