#include "api/ec2_shapes.h"

#include "api/xml_writer.h"

namespace snapvol::api {
namespace {

void TextIfSet(XmlWriter& w, std::string_view name, std::string_view value) {
  if (!value.empty()) w.Text(name, value);
}

// Sent even when empty: clients read Tags from every snapshot, volume and instance (Ansible's
// ec2_snapshot fails with KeyError 'Tags' on a CreateSnapshot answer without it).
void WriteTagSet(XmlWriter& w, std::span<const Ec2Tag> tags) {
  w.Open("tagSet");
  for (const Ec2Tag& t : tags) {
    w.Open("item");
    w.Text("key", t.key);
    w.Text("value", t.value);
    w.Close();
  }
  w.Close();
}

void WriteNextToken(XmlWriter& w, std::string_view next_token) {
  TextIfSet(w, "nextToken", next_token);
}

// The members of the Snapshot shape (DescribeSnapshots items and CreateSnapshot's result).
void WriteSnapshotFields(XmlWriter& w, const Ec2Snapshot& s) {
  w.Text("snapshotId", s.snapshot_id);
  w.Text("volumeId", s.volume_id);
  w.Text("status", s.state);
  TextIfSet(w, "statusMessage", s.state_message);
  w.Timestamp("startTime", s.start_time_ms);
  w.Text("progress", s.progress);
  w.Text("ownerId", s.owner_id);
  TextIfSet(w, "ownerAlias", s.owner_alias);
  w.Int("volumeSize", s.volume_size_gib);
  w.Text("description", s.description);
  w.Bool("encrypted", s.encrypted);
  TextIfSet(w, "kmsKeyId", s.kms_key_id);
  TextIfSet(w, "dataEncryptionKeyId", s.data_encryption_key_id);
  TextIfSet(w, "storageTier", s.storage_tier);
  WriteTagSet(w, s.tags);
  TextIfSet(w, "consistency", s.consistency);
  TextIfSet(w, "changedBlocks", s.changed_blocks);
}

// The members of the Volume shape. CreateVolume's answer carries no attachmentSet.
void WriteVolumeFields(XmlWriter& w, const Ec2Volume& v, bool with_attachments) {
  w.Text("volumeId", v.volume_id);
  w.Int("size", v.size_gib);
  w.Text("snapshotId", v.snapshot_id);
  w.Text("availabilityZone", v.availability_zone);
  w.Text("status", v.state);
  w.Timestamp("createTime", v.create_time_ms);
  if (with_attachments) {
    w.Open("attachmentSet");
    for (const Ec2VolumeAttachment& a : v.attachments) {
      w.Open("item");
      w.Text("volumeId", a.volume_id);
      w.Text("instanceId", a.instance_id);
      w.Text("device", a.device);
      w.Text("status", a.state);
      w.Timestamp("attachTime", a.attach_time_ms);
      w.Bool("deleteOnTermination", a.delete_on_termination);
      w.Close();
    }
    w.Close();
  }
  w.Text("volumeType", v.volume_type);
  if (v.iops > 0) w.Int("iops", v.iops);
  w.Bool("encrypted", v.encrypted);
  TextIfSet(w, "kmsKeyId", v.kms_key_id);
  w.Bool("multiAttachEnabled", v.multi_attach_enabled);
  WriteTagSet(w, v.tags);
}

void WriteInstance(XmlWriter& w, const Ec2Instance& inst) {
  w.Open("item");
  w.Text("instanceId", inst.instance_id);
  w.Open("instanceState");
  w.Int("code", InstanceStateCode(inst.state));
  w.Text("name", inst.state);
  w.Close();
  TextIfSet(w, "instanceType", inst.instance_type);
  if (inst.launch_time_ms) w.Timestamp("launchTime", inst.launch_time_ms);
  w.Open("placement");
  w.Text("availabilityZone", inst.availability_zone);
  w.Text("tenancy", "default");
  w.Close();
  TextIfSet(w, "rootDeviceName", inst.root_device_name);
  w.Text("rootDeviceType", "ebs");
  w.Open("blockDeviceMapping");
  for (const Ec2InstanceBlockDevice& d : inst.block_devices) {
    w.Open("item");
    w.Text("deviceName", d.device_name);
    w.Open("ebs");
    w.Text("volumeId", d.volume_id);
    w.Text("status", d.status);
    w.Timestamp("attachTime", d.attach_time_ms);
    w.Bool("deleteOnTermination", d.delete_on_termination);
    w.Close();
    w.Close();
  }
  w.Close();
  WriteTagSet(w, inst.tags);
  w.Close();
}

}  // namespace

int InstanceStateCode(std::string_view state_name) {
  if (state_name == "pending") return 0;
  if (state_name == "running") return 16;
  if (state_name == "shutting-down") return 32;
  if (state_name == "terminated") return 48;
  if (state_name == "stopping") return 64;
  if (state_name == "stopped") return 80;
  return -1;
}

std::string RenderDescribeSnapshots(std::string_view request_id,
                                    std::span<const Ec2Snapshot> snapshots,
                                    std::string_view next_token) {
  XmlWriter w = BeginEc2Response("DescribeSnapshots", request_id);
  w.Open("snapshotSet");
  for (const Ec2Snapshot& s : snapshots) {
    w.Open("item");
    WriteSnapshotFields(w, s);
    w.Close();
  }
  w.Close();
  WriteNextToken(w, next_token);
  return std::move(w).Finish();
}

std::string RenderCreateSnapshot(std::string_view request_id, const Ec2Snapshot& snapshot) {
  XmlWriter w = BeginEc2Response("CreateSnapshot", request_id);
  WriteSnapshotFields(w, snapshot);
  return std::move(w).Finish();
}

std::string RenderCreateSnapshots(std::string_view request_id,
                                  std::span<const Ec2Snapshot> snapshots) {
  XmlWriter w = BeginEc2Response("CreateSnapshots", request_id);
  w.Open("snapshotSet");
  for (const Ec2Snapshot& s : snapshots) {  // SnapshotInfo: <state>, not <status>
    w.Open("item");
    w.Text("snapshotId", s.snapshot_id);
    w.Text("volumeId", s.volume_id);
    w.Text("state", s.state);
    w.Timestamp("startTime", s.start_time_ms);
    w.Text("progress", s.progress);
    w.Text("ownerId", s.owner_id);
    w.Int("volumeSize", s.volume_size_gib);
    w.Text("description", s.description);
    w.Bool("encrypted", s.encrypted);
    WriteTagSet(w, s.tags);
    w.Close();
  }
  w.Close();
  return std::move(w).Finish();
}

std::string RenderCopySnapshot(std::string_view request_id, std::string_view snapshot_id,
                               std::span<const Ec2Tag> tags) {
  XmlWriter w = BeginEc2Response("CopySnapshot", request_id);
  w.Text("snapshotId", snapshot_id);
  WriteTagSet(w, tags);
  return std::move(w).Finish();
}

std::string RenderReturnTrue(std::string_view action, std::string_view request_id) {
  XmlWriter w = BeginEc2Response(action, request_id);
  w.Bool("return", true);
  return std::move(w).Finish();
}

std::string RenderDescribeTags(std::string_view request_id, std::span<const Ec2TagDescription> tags,
                               std::string_view next_token) {
  XmlWriter w = BeginEc2Response("DescribeTags", request_id);
  w.Open("tagSet");
  for (const Ec2TagDescription& t : tags) {
    w.Open("item");
    w.Text("resourceId", t.resource_id);
    w.Text("resourceType", t.resource_type);
    w.Text("key", t.key);
    w.Text("value", t.value);
    w.Close();
  }
  w.Close();
  WriteNextToken(w, next_token);
  return std::move(w).Finish();
}

std::string RenderDescribeVolumes(std::string_view request_id, std::span<const Ec2Volume> volumes,
                                  std::string_view next_token) {
  XmlWriter w = BeginEc2Response("DescribeVolumes", request_id);
  w.Open("volumeSet");
  for (const Ec2Volume& v : volumes) {
    w.Open("item");
    WriteVolumeFields(w, v, /*with_attachments=*/true);
    w.Close();
  }
  w.Close();
  WriteNextToken(w, next_token);
  return std::move(w).Finish();
}

std::string RenderCreateVolume(std::string_view request_id, const Ec2Volume& volume) {
  XmlWriter w = BeginEc2Response("CreateVolume", request_id);
  WriteVolumeFields(w, volume, /*with_attachments=*/false);
  return std::move(w).Finish();
}

std::string RenderDescribeInstances(std::string_view request_id,
                                    std::span<const Ec2Reservation> reservations,
                                    std::string_view next_token) {
  XmlWriter w = BeginEc2Response("DescribeInstances", request_id);
  w.Open("reservationSet");
  for (const Ec2Reservation& r : reservations) {
    w.Open("item");
    w.Text("reservationId", r.reservation_id);
    w.Text("ownerId", r.owner_id);
    w.Open("groupSet");
    w.Close();
    w.Open("instancesSet");
    for (const Ec2Instance& inst : r.instances) WriteInstance(w, inst);
    w.Close();
    w.Close();
  }
  w.Close();
  WriteNextToken(w, next_token);
  return std::move(w).Finish();
}

}  // namespace snapvol::api
