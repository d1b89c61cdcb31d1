// Tests of tags on every taggable resource (snapshots, volumes, instances), the tag limit
// error, RemoveAllTags and the instance name that follows its Name tag.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/catalog_postgres.h"
#include "catalog/catalog_sqlite.h"
#include "catalog/catalog_test_util.h"
#include "core/ids.h"

namespace snapvol {
namespace {

constexpr int64_t kT0 = 1'700'000'000'000;

class CatalogTagsTest : public testing_util::FreshCatalogTest {
 protected:
  VolumeRecord AddVolume(std::vector<Tag> tags = {}, const std::string& name = "") {
    VolumeRecord v;
    v.volume_id = NewVolumeId();
    v.account_id = kDefaultAccountId;
    v.name = name;
    v.path = "/dev/vdb";
    v.size_bytes = 1 << 20;
    v.block_size = 4096;
    v.created_ms = kT0;
    v.tags = std::move(tags);
    EXPECT_TRUE(cat_->InsertVolume(v));
    return v;
  }
  SnapshotRecord AddSnapshot(std::vector<Tag> tags = {}) {
    SnapshotRecord s;
    s.snapshot_id = NewSnapshotId();
    s.volume_id = NewVolumeId();
    s.account_id = kDefaultAccountId;
    s.start_time_ms = kT0;
    s.block_size = 4096;
    s.tags = std::move(tags);
    EXPECT_TRUE(cat_->InsertSnapshot(s));
    return s;
  }
  InstanceRecord AddInstance(const std::string& name, std::vector<Tag> tags = {}) {
    InstanceRecord i{NewInstanceId(), kDefaultAccountId, name, kT0, std::move(tags)};
    auto st = cat_->InsertInstance(i);
    EXPECT_TRUE(st) << st.error().ToString();
    return i;
  }
};

std::vector<Tag> ManyTags(int n, const std::string& prefix = "k") {
  std::vector<Tag> tags;
  for (int i = 0; i < n; ++i) tags.push_back({prefix + std::to_string(i), "v"});
  return tags;
}

TEST_F(CatalogTagsTest, SetAndRemoveTagsOfVolumesAndInstances) {
  VolumeRecord v = AddVolume({{"Owner", "ann"}});
  ASSERT_TRUE(cat_->SetTags(v.volume_id, {{"Team", "storage"}, {"Owner", "bob"}}));
  EXPECT_EQ(cat_->GetVolume(v.volume_id)->tags, (std::vector<Tag>{{"Owner", "bob"}, {"Team", "storage"}}));
  ASSERT_TRUE(cat_->RemoveTags(v.volume_id, {"Owner", "not-set"}));
  EXPECT_EQ(cat_->GetVolume(v.volume_id)->tags, (std::vector<Tag>{{"Team", "storage"}}));

  InstanceRecord i = AddInstance("web-1");
  ASSERT_TRUE(cat_->SetTags(i.instance_id, {{"Role", "web"}, {"Env", "prod"}}));
  auto got = cat_->GetInstance(i.instance_id);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->tags, (std::vector<Tag>{{"Env", "prod"}, {"Name", "web-1"}, {"Role", "web"}}));
  EXPECT_EQ(got->name, "web-1");  // untouched: no Name tag was set or removed
  ASSERT_TRUE(cat_->RemoveTags(i.instance_id, {"Env"}));
  EXPECT_EQ(cat_->GetInstance(i.instance_id)->tags, (std::vector<Tag>{{"Name", "web-1"}, {"Role", "web"}}));

  // Tags of one resource never show up on another.
  EXPECT_TRUE(AddVolume().tags.empty());
  EXPECT_TRUE(cat_->GetVolume(AddVolume().volume_id)->tags.empty());
  auto all = cat_->ListInstances(kDefaultAccountId);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ(all->front().tags, (std::vector<Tag>{{"Name", "web-1"}, {"Role", "web"}}));
}

TEST_F(CatalogTagsTest, AbsentOrUnknownResources) {
  for (const std::string& id : {NewSnapshotId(), NewVolumeId(), NewInstanceId()}) {
    EXPECT_EQ(cat_->SetTags(id, {{"a", "b"}}).error().code(), ErrorCode::kNotFound) << id;
    EXPECT_EQ(cat_->RemoveTags(id, {"a"}).error().code(), ErrorCode::kNotFound) << id;
    EXPECT_EQ(cat_->RemoveAllTags(id).error().code(), ErrorCode::kNotFound) << id;
  }
  for (const std::string& id : {std::string("ami-12345678"), std::string("100000000001"), std::string()}) {
    EXPECT_EQ(cat_->SetTags(id, {{"a", "b"}}).error().code(), ErrorCode::kInvalidArgument) << id;
    EXPECT_EQ(cat_->RemoveTags(id, {"a"}).error().code(), ErrorCode::kInvalidArgument) << id;
    EXPECT_EQ(cat_->RemoveAllTags(id).error().code(), ErrorCode::kInvalidArgument) << id;
  }
}

TEST_F(CatalogTagsTest, TagLimitIsADistinctErrorOnEveryResourceType) {
  VolumeRecord v = AddVolume(ManyTags(49));
  SnapshotRecord s = AddSnapshot(ManyTags(49));
  InstanceRecord i = AddInstance("", ManyTags(49));
  std::string over_limit_message;
  for (const std::string& id : {v.volume_id, s.snapshot_id, i.instance_id}) {
    auto over = cat_->SetTags(id, {{"k0", "changed"}, {"fiftieth", "v"}, {"fifty-first", "v"}});
    ASSERT_FALSE(over) << id;
    EXPECT_EQ(over.error().code(), ErrorCode::kInvalidArgument) << id;
    EXPECT_TRUE(over.error().message().starts_with("TagLimitExceeded:")) << over.error().message();
    EXPECT_TRUE(IsTagLimitExceeded(over.error()));
    EXPECT_TRUE(IsTagLimitExceeded(over.error().WithContext("CreateTags")));
    EXPECT_TRUE(IsTagLimitExceeded(over.error().WithContext("b: c").WithContext("a")));
    over_limit_message = over.error().message();
    ASSERT_TRUE(cat_->SetTags(id, {{"fiftieth", "v"}})) << id;  // exactly 50 is fine
  }
  // Nothing of the refused calls landed.
  EXPECT_EQ(cat_->GetVolume(v.volume_id)->tags.front(), (Tag{"fiftieth", "v"}));
  for (const Tag& t : cat_->GetSnapshot(s.snapshot_id)->tags) EXPECT_NE(t.value, "changed");
  EXPECT_EQ(cat_->GetInstance(i.instance_id)->tags.size(), 50u);

  // Too many in one call is the same error; other invalid tags are not.
  auto many = cat_->SetTags(AddVolume().volume_id, ManyTags(51));
  ASSERT_FALSE(many);
  EXPECT_TRUE(IsTagLimitExceeded(many.error())) << many.error().message();
  auto dup = cat_->SetTags(v.volume_id, {{"a", "1"}, {"a", "2"}});
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_FALSE(IsTagLimitExceeded(dup.error()));
  auto reserved = cat_->SetTags(i.instance_id, {{"aws:x", "1"}});
  ASSERT_FALSE(reserved);
  EXPECT_FALSE(IsTagLimitExceeded(reserved.error()));
  // A key that holds the marker does not make another error look like the limit, with or
  // without context added.
  for (const std::string& key :
       {std::string(kTagLimitExceeded) + " x", "a: " + std::string(kTagLimitExceeded) + " x",
        "a: " + std::string(kTagLimitExceeded) + " x: 51 tags; the limit is 50 tags per resource"}) {
    auto spoof = cat_->SetTags(v.volume_id, {{key, "1"}, {key, "2"}});
    ASSERT_FALSE(spoof) << key;
    EXPECT_EQ(spoof.error().code(), ErrorCode::kInvalidArgument) << key;
    EXPECT_NE(spoof.error().message().find("more than once"), std::string::npos) << spoof.error().message();
    EXPECT_FALSE(IsTagLimitExceeded(spoof.error())) << spoof.error().message();
    EXPECT_FALSE(IsTagLimitExceeded(spoof.error().WithContext("CreateTags"))) << key;
  }
  EXPECT_FALSE(IsTagLimitExceeded(Error(ErrorCode::kNotFound, over_limit_message)));
  InstanceRecord crowded{NewInstanceId(), kDefaultAccountId, "c", kT0, ManyTags(51)};
  auto ins = cat_->InsertInstance(crowded);
  ASSERT_FALSE(ins);
  EXPECT_TRUE(IsTagLimitExceeded(ins.error()));
  EXPECT_EQ(cat_->GetInstance(crowded.instance_id).error().code(), ErrorCode::kNotFound);
}

TEST_F(CatalogTagsTest, CutTagsDoNotCountTowardsTheLimit) {
  // A snapshot says how it was cut in two tags of its own; the user still has 50.
  std::vector<Tag> tags = {{kConsistencyTag, "point-in-time (reflink)"}, {kChangedBlocksTag, "full snapshot (no parent)"}};
  for (int i = 0; i < 50; ++i) tags.push_back({"k" + std::to_string(i), "v"});
  SnapshotRecord s = AddSnapshot(tags);
  EXPECT_EQ(cat_->GetSnapshot(s.snapshot_id)->tags.size(), 52u);
  auto more = cat_->SetTags(s.snapshot_id, {{"one-more", "x"}});
  ASSERT_FALSE(more);
  EXPECT_TRUE(IsTagLimitExceeded(more.error())) << more.error().ToString();
  tags.push_back({"k50", "v"});
  SnapshotRecord over;
  over.snapshot_id = NewSnapshotId();
  over.volume_id = NewVolumeId();
  over.account_id = kDefaultAccountId;
  over.start_time_ms = kT0;
  over.block_size = 4096;
  over.tags = tags;
  auto st = cat_->InsertSnapshot(over);
  ASSERT_FALSE(st);
  EXPECT_TRUE(IsTagLimitExceeded(st.error())) << st.error().ToString();
}

TEST_F(CatalogTagsTest, InstanceAndVolumeNameFollowItsNameTag) {
  // InsertInstance: the Name tag wins over name.
  InstanceRecord i = AddInstance("from-cli", {{"Name", "from-tag"}, {"Env", "dev"}});
  auto got = cat_->GetInstance(i.instance_id);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->name, "from-tag");
  EXPECT_EQ(got->tags, (std::vector<Tag>{{"Env", "dev"}, {"Name", "from-tag"}}));

  ASSERT_TRUE(cat_->SetTags(i.instance_id, {{"Name", "renamed"}}));
  EXPECT_EQ(cat_->GetInstance(i.instance_id)->name, "renamed");
  ASSERT_TRUE(cat_->RemoveTags(i.instance_id, {"Name"}));
  got = cat_->GetInstance(i.instance_id);
  EXPECT_EQ(got->name, "");
  EXPECT_EQ(got->tags, (std::vector<Tag>{{"Env", "dev"}}));

  // A name given without a Name tag (as the CLI registers it) is stored as one, and removing
  // the tag removes the name.
  InstanceRecord plain = AddInstance("web-1");
  InstanceRecord want = plain;
  want.tags = {{"Name", "web-1"}};
  EXPECT_EQ(*cat_->GetInstance(plain.instance_id), want);
  ASSERT_TRUE(cat_->RemoveTags(plain.instance_id, {"Name"}));
  EXPECT_EQ(cat_->GetInstance(plain.instance_id)->name, "");

  // A SetTags refused inside its transaction (at the tag limit, after its Name tag was
  // written) leaves the name alone. i has Env and Name; 47 more make 49.
  ASSERT_TRUE(cat_->SetTags(i.instance_id, {{"Name", "kept"}}));
  ASSERT_TRUE(cat_->SetTags(i.instance_id, ManyTags(47)));
  auto over = cat_->SetTags(i.instance_id, {{"Name", "lost"}, {"x", "1"}, {"y", "1"}});
  ASSERT_FALSE(over);
  EXPECT_TRUE(IsTagLimitExceeded(over.error())) << over.error().message();
  got = cat_->GetInstance(i.instance_id);
  EXPECT_EQ(got->name, "kept");
  EXPECT_EQ(NameFromTags(got->tags), "kept");
  EXPECT_EQ(got->tags.size(), 49u);

  // A volume's name follows its Name tag the same way, and touches no instance.
  VolumeRecord v = AddVolume();
  ASSERT_TRUE(cat_->SetTags(v.volume_id, {{"Name", "vol"}}));
  EXPECT_EQ(cat_->GetVolume(v.volume_id)->name, "vol");
  EXPECT_EQ(cat_->GetInstance(i.instance_id)->name, "kept");
  ASSERT_TRUE(cat_->RemoveTags(v.volume_id, {"Name"}));
  EXPECT_EQ(cat_->GetVolume(v.volume_id)->name, "");
}

// A resource's name is its Name tag from the moment it is inserted.
TEST_F(CatalogTagsTest, InsertMakesNameAndNameTagEqual) {
  struct Case {
    std::string name;
    std::vector<Tag> tags;
    std::string want_name;
    std::vector<Tag> want_tags;
  };
  const Case cases[] = {
      {"web", {{"Env", "dev"}}, "web", {{"Env", "dev"}, {"Name", "web"}}},     // name → Name tag
      {"web", {{"Name", "tagged"}}, "tagged", {{"Name", "tagged"}}},           // the tag wins
      {"", {{"Name", "tagged"}}, "tagged", {{"Name", "tagged"}}},
      {"", {{"Name", ""}}, "", {{"Name", ""}}},                                // empty, but a tag
      {"", {{"Env", "dev"}}, "", {{"Env", "dev"}}},                            // no name, no tag
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name + " with " + std::to_string(c.tags.size()) + " tags");
    auto i = cat_->GetInstance(AddInstance(c.name, c.tags).instance_id);
    ASSERT_TRUE(i);
    EXPECT_EQ(i->name, c.want_name);
    EXPECT_EQ(i->tags, c.want_tags);
    auto v = cat_->GetVolume(AddVolume(c.tags, c.name).volume_id);
    ASSERT_TRUE(v);
    EXPECT_EQ(v->name, c.want_name);
    EXPECT_EQ(v->tags, c.want_tags);
  }
  // The name counts as a tag: 50 tags and a name without a Name tag are one too many.
  InstanceRecord crowded{NewInstanceId(), kDefaultAccountId, "web", kT0, ManyTags(50)};
  auto ins = cat_->InsertInstance(crowded);
  ASSERT_FALSE(ins);
  EXPECT_TRUE(IsTagLimitExceeded(ins.error())) << ins.error().message();
}

TEST_F(CatalogTagsTest, RemoveAllTagsKeepsSystemTags) {
  SnapshotRecord s = AddSnapshot({{"Name", "n"}, {kPolicyIdTag, "policy-1"}, {"snapvol:policy-id", "user"},
                                  {"Aws", "user"}, {"awsx:y", "user"}, {"Owner", "o"}});
  ASSERT_TRUE(cat_->RemoveAllTags(s.snapshot_id));
  EXPECT_EQ(cat_->GetSnapshot(s.snapshot_id)->tags, (std::vector<Tag>{{kPolicyIdTag, "policy-1"}}));

  VolumeRecord v = AddVolume({{"a", "1"}, {"b", "2"}});
  ASSERT_TRUE(cat_->RemoveAllTags(v.volume_id));
  EXPECT_TRUE(cat_->GetVolume(v.volume_id)->tags.empty());
  ASSERT_TRUE(cat_->RemoveAllTags(v.volume_id));  // nothing left: still fine

  InstanceRecord i = AddInstance("x", {{"Name", "web"}, {"Env", "dev"}});
  ASSERT_TRUE(cat_->RemoveAllTags(i.instance_id));
  auto got = cat_->GetInstance(i.instance_id);
  EXPECT_TRUE(got->tags.empty());
  EXPECT_EQ(got->name, "");
}

TEST_F(CatalogTagsTest, DeleteVolumeRemovesItsTags) {
  VolumeRecord v = AddVolume({{"Name", "gone"}, {"Owner", "ann"}});
  ASSERT_TRUE(cat_->DeleteVolume(v.volume_id));
  // A volume re-registered under the same id starts without the old tags.
  VolumeRecord again = v;
  again.tags.clear();
  ASSERT_TRUE(cat_->InsertVolume(again));
  EXPECT_TRUE(cat_->GetVolume(v.volume_id)->tags.empty());
  EXPECT_EQ(cat_->SetTags(NewVolumeId(), {{"a", "b"}}).error().code(), ErrorCode::kNotFound);
}

TEST_F(CatalogTagsTest, SystemTagsAreTheCatalogsOwnAndDoNotCount) {
  // 50 user tags and every system tag: the system's do not count (EC2 does not count aws:).
  std::vector<Tag> tags = ManyTags(50);
  for (const auto& [old_key, key] : kLegacySystemTags) tags.push_back({std::string(key), "v"});
  SnapshotRecord s = AddSnapshot(tags);
  EXPECT_EQ(cat_->GetSnapshot(s.snapshot_id)->tags.size(), 50 + std::size(kLegacySystemTags));
  ASSERT_TRUE(cat_->SetTags(s.snapshot_id, {{kDamagedTag, "now"}}));
  auto one_more = cat_->SetTags(s.snapshot_id, {{"fifty-first", "v"}});
  ASSERT_FALSE(one_more);
  EXPECT_TRUE(IsTagLimitExceeded(one_more.error())) << one_more.error().message();
  // Any other aws: key, in any case, is nobody's to write.
  for (const std::string key : {"aws:snapvol:other", "AWS:snapvol:consistency", "aws:dlm:x", "Aws:Name"}) {
    auto st = cat_->SetTags(s.snapshot_id, {{key, "v"}});
    ASSERT_FALSE(st) << key;
    EXPECT_NE(st.error().message().find("reserved prefix 'aws:'"), std::string::npos) << st.error().message();
  }
  // The old names are ordinary keys now.
  VolumeRecord v = AddVolume({{"snapvol:host", "mine"}});
  EXPECT_EQ(cat_->GetVolume(v.volume_id)->tags, (std::vector<Tag>{{"snapvol:host", "mine"}}));
}

// A catalog from before migration 27 holds snapvol's system tags under snapvol:…; opening it
// renames every one, on snapshots and volumes, and the Recycle Bin rules that name one, and
// nothing else.
TEST_F(CatalogTagsTest, MigrationMovesTheOldSystemTagsUnderAws) {
  SnapshotRecord s = AddSnapshot({{"Name", "n"}});
  VolumeRecord v = AddVolume({{"Owner", "o"}});
  RbinRuleRecord rule;
  rule.rule_id = "abcdefghijk";
  rule.account_id = kDefaultAccountId;
  rule.retention_days = 7;
  rule.created_ms = kT0;
  // As rbin_api.cc writes them (nlohmann's dump: sorted members, no spaces).
  rule.resource_tags = R"([{"ResourceTagKey":"snapvol:policy-id","ResourceTagValue":"snapvol:run"},)"
                       R"({"ResourceTagKey":"snapvol:policy-idx"}])";
  RbinRuleRecord other = rule;
  other.rule_id = "abcdefghijl";
  other.resource_tags = "[]";
  other.exclude_tags = R"([{"ResourceTagKey":"snapvol:schedule","ResourceTagValue":"daily"}])";
  ASSERT_TRUE(cat_->InsertRbinRule(rule));
  ASSERT_TRUE(cat_->InsertRbinRule(other));
  cat_.reset();
  std::string sql;
  for (const auto& [old_key, key] : kLegacySystemTags)
    sql += "INSERT INTO tags (resource_id, key, value) VALUES ('" + s.snapshot_id + "', '" + std::string(old_key) +
           "', 'x');";
  sql += "INSERT INTO tags (resource_id, key, value) VALUES ('" + v.volume_id + "', 'snapvol:host', 'h');";
  sql += "INSERT INTO tags (resource_id, key, value) VALUES ('" + v.volume_id + "', 'snapvol:hostname', 'kept');";
  {
    auto db = Catalog::IsPostgresUrl(path_) ? catalog_internal::OpenPostgres(path_)
                                            : catalog_internal::OpenSqlite(path_, false, "test");
    ASSERT_TRUE(db) << db.error().ToString();
    ASSERT_TRUE((*db)->Exec(sql, "old tags"));
    // Back to 26: without 28's maintenance run hosts, 29's snapshot queue, 30's lifecycle run
    // hosts and 31's volume queue, which come after it.
    ASSERT_TRUE((*db)->Exec("DROP TABLE volume_queue", "back to 26"));
    ASSERT_TRUE((*db)->Exec("ALTER TABLE lifecycle_runs DROP COLUMN host_id", "back to 26"));
    ASSERT_TRUE((*db)->Exec("ALTER TABLE lifecycle_runs DROP COLUMN lease_generation", "back to 26"));
    ASSERT_TRUE((*db)->Exec("DROP TABLE snapshot_queue", "back to 26"));
    ASSERT_TRUE((*db)->Exec("ALTER TABLE maintenance_runs DROP COLUMN host_id", "back to 26"));
    ASSERT_TRUE((*db)->Exec("ALTER TABLE maintenance_runs DROP COLUMN lease_generation", "back to 26"));
    ASSERT_TRUE((*db)->Exec(Catalog::IsPostgresUrl(path_) ? "UPDATE snapvol_schema SET version = 26"
                                                          : "PRAGMA user_version = 26",
                            "back to 26"));
  }
  auto c = Catalog::Open(path_);
  ASSERT_TRUE(c) << c.error().ToString();
  cat_ = std::move(*c);
  std::vector<Tag> want = {{"Name", "n"}};
  for (const auto& [old_key, key] : kLegacySystemTags) want.push_back({std::string(key), "x"});
  std::vector<Tag> got = cat_->GetSnapshot(s.snapshot_id)->tags;
  std::sort(got.begin(), got.end(), [](const Tag& a, const Tag& b) { return a.key < b.key; });
  std::sort(want.begin(), want.end(), [](const Tag& a, const Tag& b) { return a.key < b.key; });
  EXPECT_EQ(got, want);
  std::vector<Tag> vol = cat_->GetVolume(v.volume_id)->tags;
  EXPECT_NE(std::find(vol.begin(), vol.end(), Tag{kHostTag, "h"}), vol.end());
  EXPECT_NE(std::find(vol.begin(), vol.end(), Tag{"snapvol:hostname", "kept"}), vol.end());
  EXPECT_NE(std::find(vol.begin(), vol.end(), Tag{"Owner", "o"}), vol.end());
  EXPECT_EQ(cat_->GetRbinRule(rule.rule_id)->resource_tags,
            R"([{"ResourceTagKey":"aws:dlm:lifecycle-policy-id","ResourceTagValue":"snapvol:run"},)"
            R"({"ResourceTagKey":"snapvol:policy-idx"}])");
  EXPECT_EQ(cat_->GetRbinRule(other.rule_id)->exclude_tags,
            R"([{"ResourceTagKey":"aws:dlm:lifecycle-schedule-name","ResourceTagValue":"daily"}])");
}

}  // namespace
}  // namespace snapvol
