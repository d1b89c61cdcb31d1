// Test support: a fixture with a fresh catalog in a temporary directory of its own, removed
// after the test. A derived fixture that sets up more calls FreshCatalogTest::SetUp() first.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

#include "catalog/catalog.h"

namespace snapvol::testing_util {

class FreshCatalogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "snapvol_catalog.XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/catalog.db";
    auto c = Catalog::Open(path_);
    ASSERT_TRUE(c) << c.error().ToString();
    cat_ = std::move(*c);
  }
  void TearDown() override {
    cat_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  std::string dir_, path_;  // the directory, and the catalog's file in it
  std::unique_ptr<Catalog> cat_;
};

}  // namespace snapvol::testing_util
