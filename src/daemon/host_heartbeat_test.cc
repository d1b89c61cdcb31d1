// The addresses a host records for others (daemon/host_heartbeat.h): the advertise flags are
// checked before anything starts, recorded instead of the bound addresses, and a bound address
// on an unspecified IP recorded for want of them is warned about.
#include "daemon/host_heartbeat.h"

#include <gtest/gtest.h>

namespace snapvol {
namespace {

TEST(AdvertiseFlags, MalformedOnesAreRefusedNamingTheFlag) {
  EXPECT_TRUE(CheckAdvertiseFlags({}, ""));
  EXPECT_TRUE(CheckAdvertiseFlags({"https://snap1.example.net:8787", "snap1.example.net:10809"}, "0.0.0.0:10809"));
  EXPECT_TRUE(CheckAdvertiseFlags({"http://10.0.0.2", ""}, ""));
  EXPECT_TRUE(CheckAdvertiseFlags({"http://[fd00::2]:8787/", "[fd00::2]:10809"}, "0.0.0.0:0"));
  for (const char* bad : {"snap1:8787", "ftp://snap1", "http://", "http://0.0.0.0:8787", "http://snap1:0",
                          "http://snap1:99999", "http://sn ap1:8787", "http://snap1:x"}) {
    auto st = CheckAdvertiseFlags({bad, ""}, "");
    ASSERT_FALSE(st) << bad;
    EXPECT_EQ(st.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(st.error().message().find("--advertise-api"), std::string::npos) << st.error().message();
  }
  for (const char* bad : {"snap1", "snap1:", ":10809", "0.0.0.0:10809", "snap1:0", "snap1:65536", "fd00::2:10809"}) {
    auto st = CheckAdvertiseFlags({"", bad}, "0.0.0.0:10809");
    ASSERT_FALSE(st) << bad;
    EXPECT_NE(st.error().message().find("--advertise-nbd"), std::string::npos) << st.error().message();
  }
  // Without a TCP listener there is nothing others could reach.
  auto st = CheckAdvertiseFlags({"", "snap1:10809"}, "");
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message().find("needs --nbd-listen"), std::string::npos) << st.error().message();
}

TEST(AdvertisedAddresses, TheAdvertisedOnesAreRecordedInsteadOfTheBound) {
  auto both = AdvertisedAddresses({"https://snap1.example.net", "snap1.example.net:10809"}, "https://0.0.0.0:8787",
                                  "/d/nbd.sock", "0.0.0.0:0", 40123);
  EXPECT_EQ(both.api_url, "https://snap1.example.net");
  EXPECT_EQ(both.nbd_endpoint, "unix:/d/nbd.sock tcp:snap1.example.net:10809");
  EXPECT_TRUE(both.warnings.empty());
  EXPECT_EQ(NbdExportUri(both.nbd_endpoint, "vol-1"), "nbds://snap1.example.net:10809/vol-1");
  auto bound = AdvertisedAddresses({}, "http://127.0.0.1:8787", "/d/nbd.sock", "127.0.0.1:0", 40123);
  EXPECT_EQ(bound.api_url, "http://127.0.0.1:8787");
  EXPECT_EQ(bound.nbd_endpoint, "unix:/d/nbd.sock tcp:127.0.0.1:40123");
  EXPECT_TRUE(bound.warnings.empty());
  auto socket_only = AdvertisedAddresses({}, "http://127.0.0.1:8787", "/d/nbd.sock", "", 0);
  EXPECT_EQ(socket_only.nbd_endpoint, "unix:/d/nbd.sock");
  EXPECT_TRUE(socket_only.warnings.empty());
}

TEST(AdvertisedAddresses, AnUnspecifiedBindWithoutAdvertiseIsWarnedAboutOnce) {
  auto any = AdvertisedAddresses({}, "https://0.0.0.0:8787", "/d/nbd.sock", "0.0.0.0:10809", 10809);
  ASSERT_EQ(any.warnings.size(), 2u);
  EXPECT_NE(any.warnings[0].find("https://0.0.0.0:8787"), std::string::npos) << any.warnings[0];
  EXPECT_NE(any.warnings[0].find("--advertise-api"), std::string::npos);
  EXPECT_NE(any.warnings[1].find("0.0.0.0:10809"), std::string::npos) << any.warnings[1];
  EXPECT_NE(any.warnings[1].find("--advertise-nbd"), std::string::npos);
  auto v6 = AdvertisedAddresses({}, "https://[::]:8787", "/d/nbd.sock", "", 0);
  ASSERT_EQ(v6.warnings.size(), 1u);
  // Advertising one leaves the other's warning.
  auto api_only = AdvertisedAddresses({"https://snap1", ""}, "https://0.0.0.0:8787", "/d/nbd.sock", "0.0.0.0:0", 5);
  ASSERT_EQ(api_only.warnings.size(), 1u);
  EXPECT_NE(api_only.warnings[0].find("--advertise-nbd"), std::string::npos);
}

}  // namespace
}  // namespace snapvol
