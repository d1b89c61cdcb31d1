// `snapvol host leases` (cli/host_commands.h): every cluster lease with its generation, its
// holder and that host's name when it is registered, its expiry and state, as a table and as
// JSON.
#include "cli/host_commands.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "core/clock.h"

namespace snapvol {
namespace {

constexpr int64_t kT0 = 1'700'000'000'000;
constexpr char kA[] = "host-aaaaaaaaaaaaaaaaa";

class HostLeasesCommandTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "snapvol_leases.XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    auto c = Catalog::Open(dir_ + "/catalog.db");
    ASSERT_TRUE(c) << c.error().ToString();
    cat_ = std::move(*c);
    ASSERT_TRUE(cat_->UpsertHost(HostRecord{kA, "rack7-a", "http://127.0.0.1:8787", "", "0.1.0", kT0, kT0}));
    ASSERT_TRUE(cat_->AcquireClusterLease("gc", kA, kT0, 60'000));
    // An unregistered holder took "verify" and let it go; "lifecycle" lapsed.
    ASSERT_TRUE(cat_->AcquireClusterLease("verify", "host-bbbbbbbbbbbbbbbbb", kT0, 60'000));
    ASSERT_TRUE(cat_->ReleaseClusterLease("verify", "host-bbbbbbbbbbbbbbbbb"));
    ASSERT_TRUE(cat_->AcquireClusterLease("lifecycle", kA, kT0 - 120'000, 60'000));
  }
  void TearDown() override {
    cat_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::string dir_;
  std::unique_ptr<Catalog> cat_;
};

TEST_F(HostLeasesCommandTest, TableNamesTheHoldingHostAndEachState) {
  std::ostringstream out;
  ASSERT_TRUE(HostLeasesCommand(cat_.get(), kT0 + 1, false, out));
  std::istringstream lines(out.str());
  std::string header, gc, lifecycle, verify, extra;
  std::getline(lines, header);
  std::getline(lines, gc);
  std::getline(lines, lifecycle);
  std::getline(lines, verify);
  EXPECT_FALSE(std::getline(lines, extra)) << out.str();
  EXPECT_EQ(header.find("LEASE"), 0u) << header;
  for (const char* col : {"GENERATION", "HOLDER", "NAME", "EXPIRES", "STATE"})
    EXPECT_NE(header.find(col), std::string::npos) << header;
  EXPECT_EQ(gc.find("gc "), 0u) << gc;
  EXPECT_NE(gc.find(kA), std::string::npos) << gc;
  EXPECT_NE(gc.find("rack7-a"), std::string::npos) << gc;
  EXPECT_NE(gc.find(FormatIso8601(kT0 + 60'000)), std::string::npos) << gc;
  EXPECT_TRUE(gc.ends_with(" held")) << gc;
  EXPECT_TRUE(lifecycle.ends_with(" expired")) << lifecycle;
  EXPECT_TRUE(verify.ends_with(" released")) << verify;
}

TEST_F(HostLeasesCommandTest, JsonCarriesEveryField) {
  std::ostringstream out;
  ASSERT_TRUE(HostLeasesCommand(cat_.get(), kT0 + 1, true, out));
  const nlohmann::json doc = nlohmann::json::parse(out.str());
  const nlohmann::json& leases = doc.at("Leases");
  ASSERT_EQ(leases.size(), 3u) << out.str();
  EXPECT_EQ(leases[0], (nlohmann::json{{"Name", "gc"},
                                       {"Generation", 1},
                                       {"Holder", kA},
                                       {"HolderName", "rack7-a"},
                                       {"Expires", FormatIso8601(kT0 + 60'000)},
                                       {"ExpiresMillis", kT0 + 60'000},
                                       {"State", "held"}}));
  EXPECT_EQ(leases[1].at("State"), "expired");
  EXPECT_EQ(leases[2].at("Name"), "verify");
  EXPECT_EQ(leases[2].at("HolderName"), "");
  EXPECT_TRUE(leases[2].at("Expires").is_null());
  EXPECT_EQ(leases[2].at("ExpiresMillis"), 0);
  EXPECT_EQ(leases[2].at("State"), "released");
}

}  // namespace
}  // namespace snapvol
