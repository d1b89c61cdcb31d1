// Each response shape is compared byte for byte with a golden file in testdata/; the same
// files are parsed by botocore's EC2 parser in testdata/botocore_parse.py.
#include "api/ec2_shapes.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "api/xml_writer.h"

namespace snapvol::api {
namespace {

constexpr int64_t kMar1 = 1772330400123;   // 2026-03-01T02:00:00.123Z
constexpr int64_t kNov26 = 1795658400000;  // 2026-11-26T02:00:00.000Z
constexpr int64_t kJan15 = 1768469400000;  // 2026-01-15T09:30:00.000Z
constexpr int64_t kFeb1 = 1769904005000;   // 2026-02-01T00:00:05.000Z

std::string Golden(const std::string& name) {
  std::ifstream in(std::string(SNAPVOL_API_TESTDATA) + "/" + name, std::ios::binary);
  EXPECT_TRUE(in) << name;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Ec2Snapshot TaggedSnapshot() {
  Ec2Snapshot s;
  s.snapshot_id = "snap-0123456789abcdef0";
  s.volume_id = "vol-0123456789abcdef0";
  s.volume_size_gib = 8;
  s.state = "completed";
  s.start_time_ms = kMar1;
  s.progress = "100%";
  s.owner_id = "123456789012";
  s.owner_alias = "team-a";
  s.description = "Nightly <root> & \"home\" it's";
  s.encrypted = true;
  s.kms_key_id = "arn:snapvol:kms::123456789012:key/k1";
  s.data_encryption_key_id = "dek-0001";
  s.storage_tier = "standard";
  s.tags = {{"Name", "web-1 root"}, {"Owner", "team-a"}};
  return s;
}

TEST(Ec2Shapes, DescribeSnapshotsGolden) {
  Ec2Snapshot failed;
  failed.snapshot_id = "snap-0123456789abcdef1";
  failed.volume_id = "vol-0123456789abcdef0";
  failed.volume_size_gib = 16;
  failed.state = "error";
  failed.state_message = "source volume unreadable";
  failed.start_time_ms = kNov26;
  failed.progress = "42%";
  failed.owner_id = "123456789012";
  const std::vector<Ec2Snapshot> snapshots = {TaggedSnapshot(), failed};
  EXPECT_EQ(RenderDescribeSnapshots("59dbff89-35bd-4eac-99ed-be587EXAMPLE", snapshots, "AXRva2Vu"),
            Golden("describe_snapshots.xml"));
}

TEST(Ec2Shapes, DescribeSnapshotsEmpty) {
  EXPECT_EQ(RenderDescribeSnapshots("r", {}, ""),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<DescribeSnapshotsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">"
            "<requestId>r</requestId><snapshotSet></snapshotSet></DescribeSnapshotsResponse>");
}

TEST(Ec2Shapes, CreateSnapshotGolden) {
  Ec2Snapshot s;
  s.snapshot_id = "snap-0123456789abcdef2";
  s.volume_id = "vol-0123456789abcdef0";
  s.volume_size_gib = 8;
  s.start_time_ms = kNov26;
  s.owner_id = "123456789012";
  s.description = "by hand";
  s.tags = {{"Name", "before upgrade"}};
  EXPECT_EQ(RenderCreateSnapshot("req-create", s), Golden("create_snapshot.xml"));
}

TEST(Ec2Shapes, CreateSnapshotsGolden) {
  Ec2Snapshot a;
  a.snapshot_id = "snap-0123456789abcdef3";
  a.volume_id = "vol-0123456789abcdef0";
  a.volume_size_gib = 8;
  a.start_time_ms = kNov26;
  a.owner_id = "123456789012";
  a.description = "instance i-1";
  a.tags = {{"Owner", "team-a"}};
  Ec2Snapshot b = a;
  b.snapshot_id = "snap-0123456789abcdef4";
  b.volume_id = "vol-0123456789abcdef1";
  b.volume_size_gib = 100;
  b.encrypted = true;
  b.tags.clear();
  b.owner_alias = "not sent in SnapshotInfo";
  const std::vector<Ec2Snapshot> snapshots = {a, b};
  EXPECT_EQ(RenderCreateSnapshots("req-multi", snapshots), Golden("create_snapshots.xml"));
}

TEST(Ec2Shapes, ReturnTrueAndCopyGolden) {
  EXPECT_EQ(RenderReturnTrue("DeleteSnapshot", "req-del"), Golden("delete_snapshot.xml"));
  EXPECT_EQ(RenderCopySnapshot("req-copy", "snap-0123456789abcdef6"), Golden("copy_snapshot.xml"));
  EXPECT_NE(RenderReturnTrue("CreateTags", "r").find("<CreateTagsResponse xmlns="),
            std::string::npos);
}

TEST(Ec2Shapes, DescribeTagsGolden) {
  const std::vector<Ec2TagDescription> tags = {
      {"snap-0123456789abcdef0", "snapshot", "Name", "web-1 root"},
      {"vol-0123456789abcdef0", "volume", "Owner", ""},
  };
  EXPECT_EQ(RenderDescribeTags("req-tags", tags, "next"), Golden("describe_tags.xml"));
}

Ec2Volume RootVolume() {
  Ec2Volume v;
  v.volume_id = "vol-0123456789abcdef0";
  v.size_gib = 8;
  v.snapshot_id = "snap-0123456789abcdef0";
  v.availability_zone = "local-1a";
  v.state = "in-use";
  v.create_time_ms = kJan15;
  v.attachments = {
      {"vol-0123456789abcdef0", "i-0123456789abcdef0", "/dev/xvda", "attached", kFeb1, true}};
  v.tags = {{"Name", "root"}};
  return v;
}

TEST(Ec2Shapes, DescribeVolumesGolden) {
  Ec2Volume data;
  data.volume_id = "vol-0123456789abcdef1";
  data.size_gib = 100;
  data.availability_zone = "local-1a";
  data.create_time_ms = kJan15;
  data.encrypted = true;
  data.kms_key_id = "k1";
  const std::vector<Ec2Volume> volumes = {RootVolume(), data};
  EXPECT_EQ(RenderDescribeVolumes("req-vols", volumes, ""), Golden("describe_volumes.xml"));
}

TEST(Ec2Shapes, CreateVolumeGolden) {
  Ec2Volume v;
  v.volume_id = "vol-0123456789abcdef5";
  v.size_gib = 8;
  v.snapshot_id = "snap-0123456789abcdef0";
  v.availability_zone = "local-1a";
  v.state = "creating";
  v.create_time_ms = kNov26;
  EXPECT_EQ(RenderCreateVolume("req-cv", v), Golden("create_volume.xml"));
}

TEST(Ec2Shapes, DescribeInstancesGolden) {
  Ec2Instance inst;
  inst.instance_id = "i-0123456789abcdef0";
  inst.state = "running";
  inst.instance_type = "bare-metal";
  inst.root_device_name = "/dev/xvda";
  inst.availability_zone = "local-1a";
  inst.block_devices = {{"/dev/xvda", "vol-0123456789abcdef0", "attached", kFeb1, true}};
  inst.tags = {{"Name", "web-1"}};
  const std::vector<Ec2Reservation> reservations = {
      {"r-0123456789abcdef0", "123456789012", {inst}}};
  EXPECT_EQ(RenderDescribeInstances("req-inst", reservations, ""),
            Golden("describe_instances.xml"));
}

TEST(Ec2Shapes, InstanceStateCodes) {
  EXPECT_EQ(InstanceStateCode("pending"), 0);
  EXPECT_EQ(InstanceStateCode("running"), 16);
  EXPECT_EQ(InstanceStateCode("shutting-down"), 32);
  EXPECT_EQ(InstanceStateCode("terminated"), 48);
  EXPECT_EQ(InstanceStateCode("stopping"), 64);
  EXPECT_EQ(InstanceStateCode("stopped"), 80);
  EXPECT_EQ(InstanceStateCode("weird"), -1);
}

TEST(Ec2Shapes, ErrorGolden) {
  XmlResponse r =
      RenderErrorResponse(MakeApiError(ec2::kInvalidSnapshotNotFound,
                                       "The snapshot 'snap-0123456789abcdef9' does not exist."),
                          "req-err");
  EXPECT_EQ(r.http_status, 400);
  EXPECT_EQ(r.body, Golden("error.xml"));
}

}  // namespace
}  // namespace snapvol::api
