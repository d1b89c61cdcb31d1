// Test support: a fixture with a fresh catalog in a temporary directory of its own, removed
// after the test; on PostgreSQL when the environment names a server (catalog_test_db.h), in a
// database of its own. A derived fixture that sets up more calls FreshCatalogTest::SetUp() first.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

#include "catalog/catalog.h"
#include "catalog/catalog_test_db.h"
#include "core/ids.h"

namespace snapvol::testing_util {

class FreshCatalogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "snapvol_catalog.XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    db_ = std::make_unique<catalog_testing::TestCatalogDb>(dir_);
    path_ = db_->location();
    ASSERT_FALSE(path_.empty());
    auto c = Catalog::Open(path_);
    ASSERT_TRUE(c) << c.error().ToString();
    cat_ = std::move(*c);
  }
  void TearDown() override {
    cat_.reset();
    db_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // Inserts a managed volume of 1 MiB (its file named in dir_, not created) of the default
  // account, attached at `device` of `instance_id` when given, restored from `snapshot_id`
  // when given; returns its id.
  std::string AddManagedVolume(const std::string& instance_id = "", const std::string& device = "", bool boot = false,
                               const std::string& snapshot_id = "") {
    VolumeRecord v;
    v.volume_id = NewVolumeId();
    v.account_id = kDefaultAccountId;
    v.path = dir_ + "/" + v.volume_id + ".img";
    v.size_bytes = 1 << 20;
    v.block_size = 4096;
    v.created_ms = 1'700'000'000'000;
    v.managed = true;
    v.instance_id = instance_id;
    v.device = device;
    v.boot = boot;
    v.snapshot_id = snapshot_id;
    EXPECT_TRUE(cat_->InsertVolume(v));
    return v.volume_id;
  }

  std::unique_ptr<catalog_testing::TestCatalogDb> db_;
  std::string dir_, path_;  // the directory, and where the catalog is (its file in dir_, or a URL)
  std::unique_ptr<Catalog> cat_;
};

}  // namespace snapvol::testing_util
