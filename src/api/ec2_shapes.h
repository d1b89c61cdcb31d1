// The EC2 (API version 2016-11-15) response shapes snapvol returns, as plain structs, and
// their XML serializers. Element names and nesting follow the EC2 service model exactly
// (botocore/AWS CLI/SDKs parse them by name), e.g. a snapshot's state is <status> in
// DescribeSnapshots/CreateSnapshot but <state> in CreateSnapshots.
//
// Conventions: an empty optional string (state_message, owner_alias, kms_key_id, ...) omits
// its element; description, and a volume's snapshotId, are always sent (possibly empty) as
// EC2 does; tagSet is always sent (empty when there are no tags); top-level result sets are always sent, possibly
// empty; nextToken is sent only when non-empty.
// Thread-safety: pure functions over caller-owned values; safe from any thread.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace snapvol::api {

struct Ec2Tag {
  std::string key;
  std::string value;
  bool operator==(const Ec2Tag&) const = default;
};

struct Ec2Snapshot {
  std::string snapshot_id;
  std::string volume_id;
  int64_t volume_size_gib = 0;
  std::string state = "pending";  // pending | completed | error
  std::string state_message;      // optional; why it is in error
  // snapvol's members (SDKs skip what their model does not name): how it was cut and how its
  // changed blocks were found (the aws:snapvol:consistency / aws:snapvol:changed-blocks tags).
  std::string consistency, changed_blocks;
  int64_t start_time_ms = 0;
  std::string progress = "0%";
  std::string owner_id;     // 12-digit account id
  std::string owner_alias;  // optional
  std::string description;
  bool encrypted = false;
  std::string kms_key_id;              // optional
  std::string data_encryption_key_id;  // optional
  std::string storage_tier;            // optional: standard | archive
  std::vector<Ec2Tag> tags;
  bool operator==(const Ec2Snapshot&) const = default;
};

struct Ec2VolumeAttachment {
  std::string volume_id;
  std::string instance_id;
  std::string device;              // e.g. /dev/sdf
  std::string state = "attached";  // attaching | attached | detaching | detached | busy
  int64_t attach_time_ms = 0;
  bool delete_on_termination = false;
  bool operator==(const Ec2VolumeAttachment&) const = default;
};

struct Ec2Volume {
  std::string volume_id;
  int64_t size_gib = 0;
  std::string snapshot_id;  // the snapshot it was created from; may be empty
  std::string availability_zone;
  std::string state = "available";  // creating | available | in-use | deleting | deleted | error
  int64_t create_time_ms = 0;
  std::vector<Ec2VolumeAttachment> attachments;
  std::string volume_type = "standard";
  int64_t iops = 0;  // gp2's baseline; 0 omits it (standard)
  bool encrypted = false;
  std::string kms_key_id;  // optional
  bool multi_attach_enabled = false;
  std::vector<Ec2Tag> tags;
  bool operator==(const Ec2Volume&) const = default;
};

struct Ec2TagDescription {
  std::string resource_id;
  std::string resource_type;  // snapshot | volume | instance
  std::string key;
  std::string value;
  bool operator==(const Ec2TagDescription&) const = default;
};

struct Ec2InstanceBlockDevice {
  std::string device_name;  // e.g. /dev/xvda
  std::string volume_id;
  std::string status = "attached";  // attaching | attached | detaching | detached
  int64_t attach_time_ms = 0;
  bool delete_on_termination = false;
  bool operator==(const Ec2InstanceBlockDevice&) const = default;
};

struct Ec2Instance {
  std::string instance_id;
  // pending | running | shutting-down | terminated | stopping | stopped; the numeric
  // <code> EC2 pairs with each name is derived from it.
  std::string state = "running";
  std::string instance_type;     // optional
  std::string root_device_name;  // optional
  std::string availability_zone;  // placement
  int64_t launch_time_ms = 0;     // 0 omits it
  std::vector<Ec2InstanceBlockDevice> block_devices;
  std::vector<Ec2Tag> tags;
  bool operator==(const Ec2Instance&) const = default;
};

struct Ec2Reservation {
  std::string reservation_id;  // "r-..."
  std::string owner_id;
  std::vector<Ec2Instance> instances;
  bool operator==(const Ec2Reservation&) const = default;
};

// The numeric code EC2 sends with an instance state name (running → 16); -1 if unknown.
int InstanceStateCode(std::string_view state_name);

// Each Render* returns a complete XML document (with declaration) for HTTP 200.
std::string RenderDescribeSnapshots(std::string_view request_id,
                                    std::span<const Ec2Snapshot> snapshots,
                                    std::string_view next_token);
std::string RenderCreateSnapshot(std::string_view request_id, const Ec2Snapshot& snapshot);
std::string RenderCreateSnapshots(std::string_view request_id,
                                  std::span<const Ec2Snapshot> snapshots);
std::string RenderCopySnapshot(std::string_view request_id, std::string_view snapshot_id,
                               std::span<const Ec2Tag> tags = {});
// <{action}Response ...><requestId/><return>true</return></...>, for DeleteSnapshot,
// CreateTags and DeleteTags.
std::string RenderReturnTrue(std::string_view action, std::string_view request_id);
std::string RenderDescribeTags(std::string_view request_id, std::span<const Ec2TagDescription> tags,
                               std::string_view next_token);
std::string RenderDescribeVolumes(std::string_view request_id, std::span<const Ec2Volume> volumes,
                                  std::string_view next_token);
std::string RenderCreateVolume(std::string_view request_id, const Ec2Volume& volume);
std::string RenderDescribeInstances(std::string_view request_id,
                                    std::span<const Ec2Reservation> reservations,
                                    std::string_view next_token);

}  // namespace snapvol::api
