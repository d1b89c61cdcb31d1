// Which host owns each volume and instance (docs/multi-host.md part 3): new rows get the
// catalog's local host, rows without one are claimed once and never taken from another host,
// and the system tags aws:snapvol:host and aws:snapvol:nbd say where a volume lives, kept in step when
// its host registers again. Runs on SQLite (label unit) and again on the PostgreSQL fixture's
// server (pg.*, label pg).
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>

#include "catalog/catalog.h"
#include "catalog/catalog_test_fixture.h"
#include "core/ids.h"

namespace snapvol {
namespace {

using catalog_testing::kT0;

constexpr char kHostA[] = "host-aaaaaaaaaaaaaaaaa";
constexpr char kHostB[] = "host-bbbbbbbbbbbbbbbbb";

class CatalogOwnershipTest : public catalog_testing::OpenCatalogTest {
 protected:
  // Inserts a volume (managed or registered) owned by host ('' : the catalog's local host).
  std::string AddVolume(bool managed, const std::string& host = "", std::vector<Tag> tags = {}) {
    VolumeRecord v;
    v.volume_id = NewVolumeId();
    v.account_id = kDefaultAccountId;
    v.path = "/data/" + v.volume_id;
    v.size_bytes = 1 << 20;
    v.block_size = 512 * 1024;
    v.created_ms = kT0;
    v.managed = managed;
    v.host_id = host;
    v.tags = std::move(tags);
    auto st = cat_->InsertVolume(v);
    EXPECT_TRUE(st) << st.error().ToString();
    return v.volume_id;
  }
  VolumeRecord Get(const std::string& id) { return *cat_->GetVolume(id); }
  std::optional<std::string> TagOf(const std::string& id, const char* key) {
    for (const auto& t : Get(id).tags)
      if (t.key == key) return t.value;
    return std::nullopt;
  }
  void Register(const char* id, const std::string& name, const std::string& nbd) {
    ASSERT_TRUE(cat_->UpsertHost(HostRecord{id, name, "http://127.0.0.1:8787", nbd, "0.1.0", kT0, kT0}));
  }

};

TEST(NbdExportUri, TcpIsPreferredThenTheUnixSocket) {
  EXPECT_EQ(NbdExportUri("unix:/d/nbd.sock tcp:10.0.0.1:10809", "vol-1"), "nbds://10.0.0.1:10809/vol-1");
  EXPECT_EQ(NbdExportUri("unix:/d/nbd.sock", "vol-1"), "nbd+unix:///vol-1?socket=/d/nbd.sock");
  EXPECT_EQ(NbdExportUri("", "vol-1"), "");
}

TEST_F(CatalogOwnershipTest, NewRowsBelongToTheLocalHostAndTheirTagsSayWhere) {
  // No local host (a catalog opened outside a data dir): no owner, and no tag says otherwise
  // (one copied from another volume is dropped).
  const std::string loose = AddVolume(false, "", {{kHostTag, "forged"}, {kNbdTag, "nbd://x/y"}});
  EXPECT_EQ(Get(loose).host_id, "");
  EXPECT_EQ(TagOf(loose, kHostTag), std::nullopt);
  EXPECT_EQ(TagOf(loose, kNbdTag), std::nullopt);

  cat_->SetLocalHost(kHostA);
  const std::string managed = AddVolume(true);
  const std::string registered = AddVolume(false);
  ASSERT_TRUE(cat_->InsertInstance({NewInstanceId(), kDefaultAccountId, "i", kT0, {}}));
  EXPECT_EQ(Get(managed).host_id, kHostA);
  EXPECT_EQ(cat_->ListInstances(std::nullopt)->front().host_id, kHostA);
  // A host with no row yet (a CLI process before its snapvold registered) is named by its id,
  // and has no NBD endpoint to give.
  EXPECT_EQ(TagOf(managed, kHostTag), kHostA);
  EXPECT_EQ(TagOf(managed, kNbdTag), std::nullopt);

  // Registering names the host on its volumes, and gives managed ones their export's URI.
  Register(kHostA, "alpha", "unix:/d/nbd.sock tcp:10.0.0.1:10809");
  EXPECT_EQ(TagOf(managed, kHostTag), "alpha");
  EXPECT_EQ(TagOf(managed, kNbdTag), "nbds://10.0.0.1:10809/" + managed);
  EXPECT_EQ(TagOf(registered, kHostTag), "alpha");
  EXPECT_EQ(TagOf(registered, kNbdTag), std::nullopt) << "a registered volume has no export";
  EXPECT_EQ(TagOf(loose, kHostTag), std::nullopt) << "not this host's";

  // Registering again (renamed, NBD on the socket only, then none) keeps them in step.
  Register(kHostA, "alpha-2", "unix:/d/nbd.sock");
  EXPECT_EQ(TagOf(managed, kHostTag), "alpha-2");
  EXPECT_EQ(TagOf(managed, kNbdTag), "nbd+unix:///" + managed + "?socket=/d/nbd.sock");
  Register(kHostA, "alpha-2", "");
  EXPECT_EQ(TagOf(managed, kNbdTag), std::nullopt);

  // A volume created on another host's behalf is that host's; a copied tag is not believed.
  const std::string elsewhere = AddVolume(true, kHostB, {{kHostTag, "forged"}, {kNbdTag, "nbd://x/y"}});
  EXPECT_EQ(Get(elsewhere).host_id, kHostB);
  EXPECT_EQ(TagOf(elsewhere, kHostTag), kHostB);
  EXPECT_EQ(TagOf(elsewhere, kNbdTag), std::nullopt);

  // They are system tags: "delete all tags" keeps them.
  ASSERT_TRUE(cat_->RemoveAllTags(managed));
  EXPECT_EQ(TagOf(managed, kHostTag), "alpha-2");
}

TEST_F(CatalogOwnershipTest, OwnerlessRowsAreClaimedOnceAndAnotherHostsRowsNeverChange) {
  const std::string old_vol = AddVolume(true);
  ASSERT_TRUE(cat_->InsertInstance({NewInstanceId(), kDefaultAccountId, "old", kT0, {}}));
  const std::string b_vol = AddVolume(false, kHostB);
  Register(kHostB, "beta", "unix:/b/nbd.sock");
  Register(kHostA, "alpha", "unix:/a/nbd.sock");

  auto claimed = cat_->ClaimOwnerless(kHostA);
  ASSERT_TRUE(claimed) << claimed.error().ToString();
  EXPECT_EQ(*claimed, 2u);  // the volume and the instance
  EXPECT_EQ(Get(old_vol).host_id, kHostA);
  EXPECT_EQ(cat_->ListInstances(std::nullopt)->front().host_id, kHostA);
  EXPECT_EQ(TagOf(old_vol, kHostTag), "alpha");
  EXPECT_EQ(TagOf(old_vol, kNbdTag), "nbd+unix:///" + old_vol + "?socket=/a/nbd.sock");
  EXPECT_EQ(Get(b_vol).host_id, kHostB) << "another host's volume was taken";
  EXPECT_EQ(TagOf(b_vol, kHostTag), "beta");

  // Nothing left to claim: nothing is written, and B's claim takes nothing of A's.
  EXPECT_EQ(*cat_->ClaimOwnerless(kHostA), 0u);
  EXPECT_EQ(*cat_->ClaimOwnerless(kHostB), 0u);
  EXPECT_EQ(Get(old_vol).host_id, kHostA);
  EXPECT_EQ(cat_->ClaimOwnerless("").error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(CatalogOwnershipTest, WhereAVolumeLivesDoesNotCountTowardItsFiftyTags) {
  cat_->SetLocalHost(kHostA);
  Register(kHostA, "alpha", "unix:/a/nbd.sock");
  std::vector<Tag> fifty;
  for (int i = 0; i < static_cast<int>(kMaxTagsPerResource); ++i) fifty.push_back({"k" + std::to_string(i), "v"});
  const std::string full = AddVolume(true, "", fifty);
  EXPECT_EQ(Get(full).tags.size(), kMaxTagsPerResource + 2);
  // One more user tag is still one too many.
  auto over = cat_->SetTags(full, {{"one-more", "v"}});
  ASSERT_FALSE(over);
  EXPECT_TRUE(IsTagLimitExceeded(over.error())) << over.error().ToString();
}

}  // namespace
}  // namespace snapvol
