// The EC2 volume actions that change volumes: CreateVolume (an empty managed volume, or a
// restore of a snapshot, which is an administrator's act), AttachVolume, DetachVolume and
// DeleteVolume. DescribeVolumes and DescribeVolumeStatus are in ec2_volumes_describe.cc.
// Every parameter CreateVolume accepts is applied or refused by name: snapvol has one
// availability zone (REGION + "a"), gp2 (the default) and standard volumes, no KMS, no
// provisioned IOPS or throughput, no multi-attach and no Outposts.
#include <algorithm>
#include <cstdlib>

#include "api/ec2_context.h"
#include "api/xml_writer.h"
#include "core/hash.h"
#include "core/ids.h"
#include "managed/volume_deletion.h"
#include "managed/volume_files.h"

namespace snapvol::api {
namespace {

constexpr int64_t kMaxVolumeGib = 16384;

// What CreateVolume was asked for, checked.
struct CreateVolumeRequest {
  std::optional<int64_t> size_gib;
  std::optional<std::string> snapshot_id;
  std::string volume_type = "gp2";
  std::optional<bool> encrypted;
  std::vector<Tag> tags;
  std::string client_token;
  std::optional<std::string> placement;  // TagSpecification's aws:snapvol:host, as given
  std::string host;  // PlaceVolume's answer to it: '' is this host
};

ApiResult<CreateVolumeRequest> ParseCreateVolume(Ec2Context& x, const QueryParams& p) {
  CreateVolumeRequest r;
  API_ASSIGN_OR_RETURN(r.size_gib, p.GetOptionalInt("Size", 1, kMaxVolumeGib));
  r.snapshot_id = p.GetOptionalString("SnapshotId");
  if (!r.size_gib && !r.snapshot_id) return std::unexpected(MissingParameter("Size"));
  if (auto zone = p.GetOptionalString("AvailabilityZone"); zone && *zone != x.AvailabilityZone())
    return Fail(ec2::kInvalidParameterValue, "Invalid availability zone: [" + *zone + "] (this service has one: " +
                                                 x.AvailabilityZone() + ")");
  if (p.Has("AvailabilityZoneId"))
    return Fail(ec2::kInvalidParameterValue, "AvailabilityZoneId is not supported; use AvailabilityZone " + x.AvailabilityZone() + ".");
  if (auto type = p.GetOptionalString("VolumeType")) {
    if (*type != "gp2" && *type != "standard")
      return Fail(ec2::kInvalidParameterValue, "Value (" + *type + ") for parameter volumeType is invalid: this service offers gp2 and standard.");
    r.volume_type = *type;
  }
  if (p.Has("Iops"))
    return Fail(ec2::kInvalidParameterCombination, "The parameter iops is not supported for " + r.volume_type + " volumes.");
  if (p.Has("Throughput"))
    return Fail(ec2::kInvalidParameterCombination, "The parameter throughput is not supported for " + r.volume_type + " volumes.");
  API_ASSIGN_OR_RETURN(auto multi, p.GetOptionalBool("MultiAttachEnabled"));
  if (multi && *multi) return Fail(ec2::kUnsupportedOperation, "Multi-attach is not supported (MultiAttachEnabled).");
  if (p.Has("KmsKeyId"))
    return Fail(ec2::kUnsupportedOperation, "KmsKeyId is not supported: the snapshot store's own key encrypts, when it is encrypted.");
  if (p.Has("OutpostArn")) return Fail(ec2::kUnsupportedOperation, "Outposts are not supported (OutpostArn).");
  API_ASSIGN_OR_RETURN(r.encrypted, p.GetOptionalBool("Encrypted"));
  API_ASSIGN_OR_RETURN(r.tags, x.TagsFromSpecifications(p, "volume", &r.placement));
  r.client_token = p.GetOptionalString("ClientToken").value_or("");
  if (r.client_token.size() > 64)
    return std::unexpected(InvalidParameterValue("ClientToken", r.client_token, "At most 64 characters."));
  return r;
}

// A fingerprint of the request, so that a retry with the same ClientToken but other
// parameters is told apart (IdempotentParameterMismatch).
std::string Fingerprint(const QueryParams& p) {
  std::vector<std::pair<std::string, std::string>> sorted(p.entries().begin(), p.entries().end());
  std::sort(sorted.begin(), sorted.end());
  std::string all;
  for (const auto& [k, v] : sorted)
    if (k != "ClientToken" && k != "DryRun") all += k + '\x1f' + v + '\x1e';
  return ToHex(Sha256(AsBytes(all)));
}

ApiResult<VolumeRecord> CreateEmptyVolume(Ec2Context& x, const Caller& c, const CreateVolumeRequest& r) {
  if (r.encrypted && *r.encrypted)
    return Fail(ec2::kInvalidParameterValue, "Encrypted=true is not possible for an empty volume: volume files are not encrypted at rest.");
  VolumeRecord v;
  v.volume_id = NewVolumeId();
  v.account_id = c.account_id;
  v.size_bytes = static_cast<uint64_t>(*r.size_gib) * kGiB;
  v.block_size = kDefaultBlockSize;
  v.created_ms = x.clock->NowMillis();
  v.tags = r.tags;
  v.managed = true;
  v.volume_type = r.volume_type;
  // Placed on another host: that host makes the file (Ec2Context::MakeClaimedVolume).
  if (!x.catalog->HostElsewhere(r.host).empty()) return x.QueueVolumeOn(std::move(v), r.host);
  if (x.options.restore_dir.empty()) return Fail(ec2::kUnsupportedOperation, "No volume directory is configured.");
  v.path = VolumeImagePath(x.options.restore_dir, v.volume_id);
  // The quota before any file: a volume the account may not have is never made. InsertVolume
  // decides again where concurrent creates cannot both pass.
  if (auto room = x.catalog->CheckVolumeQuota(v.account_id, v.size_bytes); !room)
    return std::unexpected(FromErrorWithLimit(room.error(), ec2::kVolumeLimitExceeded));
  // The file first (sparse, all zeroes), then the row: a crash between them leaves an
  // orphan file, never a volume without its data.
  if (auto made = CreateVolumeImage(v.path, v.size_bytes); !made) {
    if (made.error().code() == ErrorCode::kNoSpace)
      return Fail(ec2::kInvalidParameterValue, "Value (" + std::to_string(*r.size_gib) + ") for parameter size is invalid: " +
                                                   made.error().message() + ".");
    return std::unexpected(FromError(made.error()));
  }
  auto ins = x.catalog->InsertVolume(v);
  if (!ins) {
    RemoveVolumeFiles(v.path);
    return std::unexpected(FromErrorWithLimit(ins.error(), ec2::kVolumeLimitExceeded));
  }
  return v;
}

ApiResult<VolumeRecord> RestoreVolume(Ec2Context& x, const CreateVolumeRequest& r, const SnapshotRecord& s) {
  if (r.encrypted && *r.encrypted && !s.encrypted)
    return Fail(ec2::kInvalidParameterValue, "Encrypted=true is not possible: snapshot '" + s.snapshot_id + "' is not encrypted.");
  if (r.size_gib && *r.size_gib != SizeGib(s.volume_size_bytes))
    return Fail(ec2::kInvalidParameterValue, "Value (" + std::to_string(*r.size_gib) + ") for parameter size is invalid: a volume restored from " +
                                                 s.snapshot_id + " has the snapshot's size, " + std::to_string(SizeGib(s.volume_size_bytes)) + " GiB.");
  if (s.state != SnapshotState::kCompleted)
    return Fail(ec2::kIncorrectState, "Snapshot '" + s.snapshot_id + "' is not completed.");
  return x.RestoreToNewVolume(s, NewVolumeId(), r.volume_type, r.tags, r.host);
}

ApiResult<std::string> CreateVolume(Ec2Context& x, const Caller& c, const QueryParams& p, const std::string& rid) {
  API_ASSIGN_OR_RETURN(CreateVolumeRequest r, ParseCreateVolume(x, p));
  std::optional<SnapshotRecord> snap;
  if (r.snapshot_id) {
    API_ASSIGN_OR_RETURN(snap, x.ReadableSnapshot(c, *r.snapshot_id));
    // Restoring is the privileged action: members are refused here, before anything happens,
    // whether the snapshot is their own or shared with them.
    API_RETURN_IF_ERROR(x.Authorize(c, "CreateVolume", {x.Arn(c, "volume", "*"), x.Arn(c, "snapshot", *r.snapshot_id)}, snap->tags));
  } else {
    API_RETURN_IF_ERROR(x.Authorize(c, "CreateVolume", {x.Arn(c, "volume", "*")}));
  }
  API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
  if (dry) return DryRunOk();
  // Where it goes: asked by aws:snapvol:host, else here. Decided before anything is written.
  if (r.placement) {
    API_ASSIGN_OR_RETURN(r.host, x.PlaceVolume(*r.placement));
  }
  // ClientToken: a retry with the same token answers with the volume the first call made.
  const std::string token_key = c.account_id + "/" + r.client_token;
  const std::string fingerprint = r.client_token.empty() ? "" : Fingerprint(p);
  std::unique_lock<std::mutex> token_lock;
  if (!r.client_token.empty()) {
    API_ASSIGN_OR_RETURN(auto earlier, x.idempotency.Begin(token_key, fingerprint, &token_lock));
    if (earlier) {
      auto v = x.catalog->GetVolume(*earlier);
      if (v) return RenderCreateVolume(rid, x.ToEc2(*v));
    }
  }
  API_ASSIGN_OR_RETURN(VolumeRecord v, snap ? RestoreVolume(x, r, *snap) : CreateEmptyVolume(x, c, r));
  if (!r.client_token.empty()) x.idempotency.Finish(token_key, fingerprint, v.volume_id);
  return RenderCreateVolume(rid, x.ToEc2(v));
}

ApiResult<std::string> RenderAttachment(const char* action, const std::string& rid, const VolumeRecord& v,
                                        const std::string& status) {
  XmlWriter w = BeginEc2Response(action, rid);
  w.Text("volumeId", v.volume_id);
  w.Text("instanceId", v.instance_id);
  w.Text("device", v.device);
  w.Text("status", status);
  w.Timestamp("attachTime", v.attach_ms ? v.attach_ms : v.created_ms);
  w.Bool("deleteOnTermination", false);
  return std::move(w).Finish();
}

ApiResult<std::string> AttachVolume(Ec2Context& x, const Caller& c, const QueryParams& p, const std::string& rid) {
  API_ASSIGN_OR_RETURN(std::string volume_id, p.GetString("VolumeId"));
  API_ASSIGN_OR_RETURN(std::string instance_id, p.GetString("InstanceId"));
  API_ASSIGN_OR_RETURN(std::string device, p.GetString("Device"));
  if (!IsDeviceName(device))
    return std::unexpected(InvalidParameterValue("Device", device, "Expecting a device name like /dev/sdf."));
  API_ASSIGN_OR_RETURN(VolumeRecord v, x.VisibleVolume(c, volume_id));
  API_ASSIGN_OR_RETURN(InstanceRecord inst, x.VisibleInstance(c, instance_id));
  if (inst.account_id != v.account_id)
    return Fail(ec2::kInvalidParameterValue, "Volume '" + volume_id + "' and instance '" + instance_id + "' belong to different accounts.");
  API_RETURN_IF_ERROR(x.Authorize(c, "AttachVolume", {x.Arn(c, "volume", volume_id), x.Arn(c, "instance", instance_id)}, v.tags));
  API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
  if (dry) return DryRunOk();
  if (v.state != "available")
    return Fail(ec2::kIncorrectState, "vol '" + volume_id + "' is " + v.state + ".");
  auto vols = x.catalog->ListVolumes(v.account_id);
  if (!vols) return std::unexpected(FromError(vols.error()));
  for (const auto& other : *vols)
    if (other.instance_id == instance_id && other.device == device)
      return Fail("InvalidParameterValue", "Attachment point " + device + " is already in use");
  // At the root device the volume becomes the instance's root (the catalog sets boot), which
  // EC2 allows only while the instance is stopped.
  if (device == inst.root_device && inst.state != "stopped")
    return Fail("IncorrectInstanceState", "The instance '" + instance_id + "' is not 'stopped'.");
  const int64_t now = x.clock->NowMillis();
  auto st = x.catalog->SetVolumeAttachment(volume_id, instance_id, device, now);
  if (!st) {
    if (st.error().code() == ErrorCode::kConflict)
      return Fail("VolumeInUse", "vol '" + volume_id + "' is already attached to an instance");
    return std::unexpected(FromError(st.error()));
  }
  v.instance_id = instance_id;
  v.device = device;
  v.attach_ms = now;
  return RenderAttachment("AttachVolume", rid, v, "attached");
}

ApiResult<std::string> DetachVolume(Ec2Context& x, const Caller& c, const QueryParams& p, const std::string& rid) {
  API_ASSIGN_OR_RETURN(std::string volume_id, p.GetString("VolumeId"));
  API_ASSIGN_OR_RETURN(VolumeRecord v, x.VisibleVolume(c, volume_id));
  API_RETURN_IF_ERROR(x.Authorize(c, "DetachVolume", {x.Arn(c, "volume", volume_id)}, v.tags));
  API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
  if (dry) return DryRunOk();
  if (v.instance_id.empty())
    return Fail("IncorrectState", "Volume '" + volume_id + "' is in the 'available' state.");
  if (auto want = p.GetOptionalString("InstanceId"); want && *want != v.instance_id)
    return Fail("InvalidAttachment.NotFound", "The volume '" + volume_id + "' is not attached to instance '" + *want + "'.");
  if (auto want = p.GetOptionalString("Device"); want && *want != v.device)
    return Fail("InvalidAttachment.NotFound", "The volume '" + volume_id + "' is not attached at device '" + *want + "'.");
  // Force: NBD connections end at once whether or not it is given, so a forced detach and a
  // plain one are the same here.
  API_RETURN_IF_ERROR(p.GetOptionalBool("Force"));
  auto st = x.catalog->SetVolumeAttachment(volume_id, "", "", 0);
  if (!st && st.error().code() != ErrorCode::kConflict) return std::unexpected(FromError(st.error()));
  // The volume is no longer exported; connections already open end here, like a device
  // taken from a machine.
  if (x.options.on_volume_detached) {
    if (auto ended = x.options.on_volume_detached(volume_id); !ended)
      return Fail(ec2::kInternalError, "Volume '" + volume_id + "' is detached, but " + ended.error().message() +
                                                "; it cannot be deleted until they do.");
  }
  return RenderAttachment("DetachVolume", rid, v, "detached");
}

ApiResult<std::string> DeleteVolume(Ec2Context& x, const Caller& c, const QueryParams& p, const std::string& rid) {
  API_ASSIGN_OR_RETURN(std::string volume_id, p.GetString("VolumeId"));
  API_ASSIGN_OR_RETURN(VolumeRecord v, x.VisibleVolume(c, volume_id));
  API_RETURN_IF_ERROR(x.Authorize(c, "DeleteVolume", {x.Arn(c, "volume", volume_id)}, v.tags));
  API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
  if (dry) return DryRunOk();
  // managed/volume_deletion.h: the rules, the NBD connections, the row and snapvol's own files
  // (a registered volume's disk is never touched), shared with the CLI and replace-root. A
  // volume another host holds is checked here and queued for that host (route), which deletes
  // it: the answer is the same, and the volume shows `deleting` until then.
  VolumeDeletionRefusal refusal = VolumeDeletionRefusal::kNone;
  VolumeDeletionResult result;
  auto del = snapvol::DeleteVolume({.catalog = x.catalog,
                                    .volume_dir = x.options.restore_dir,
                                    .end_connections = x.options.on_volume_detached,
                                    .on_deleted = x.options.on_volume_deleted,
                                    .route = true,
                                    .host_timeout_ms = x.options.host_timeout_ms,
                                    .clock = x.clock},
                                   volume_id, &result, &refusal);
  if (del && !result.queued_for.empty()) c.record->detail = "queued for host " + result.queued_for;
  // The volume is gone either way; what snapvol could not clean up beside a registered disk
  // (base clones, QEMU bitmaps) goes to the audit log line of this request.
  if (del && !result.left_behind.empty()) c.record->detail = "left behind: " + result.left_behind;
  if (!del) {
    switch (refusal) {
      case VolumeDeletionRefusal::kAttached:
        return Fail("VolumeInUse", "Volume " + volume_id + " is currently attached: " + del.error().message());
      case VolumeDeletionRefusal::kConnections:
        return Fail("VolumeInUse", "Volume " + volume_id + ": " + del.error().message());
      case VolumeDeletionRefusal::kCreating:
      case VolumeDeletionRefusal::kRollingBack:
      case VolumeDeletionRefusal::kOtherHost:
      case VolumeDeletionRefusal::kHostNotUp:
        return Fail(ec2::kIncorrectState, "The volume '" + volume_id + "' cannot be deleted now: " +
                                              del.error().message() + ".");
      case VolumeDeletionRefusal::kNone: break;
    }
    return std::unexpected(FromError(del.error()));
  }
  return RenderReturnTrue("DeleteVolume", rid);
}

}  // namespace

std::span<const Ec2Action> VolumeActions() {
  static constexpr std::string_view kCreate[] = {"AvailabilityZone", "AvailabilityZoneId", "Size", "SnapshotId",
                                                 "VolumeType", "Iops", "Throughput", "Encrypted", "KmsKeyId",
                                                 "MultiAttachEnabled", "OutpostArn", "TagSpecification.",
                                                 "ClientToken", "DryRun"};
  static constexpr std::string_view kAttach[] = {"VolumeId", "InstanceId", "Device", "DryRun"};
  static constexpr std::string_view kDetach[] = {"VolumeId", "InstanceId", "Device", "Force", "DryRun"};
  static constexpr std::string_view kDelete[] = {"VolumeId", "DryRun"};
  static constexpr Ec2Action kActions[] = {
      {"CreateVolume", kCreate, &CreateVolume},
      {"AttachVolume", kAttach, &AttachVolume},
      {"DetachVolume", kDetach, &DetachVolume},
      {"DeleteVolume", kDelete, &DeleteVolume},
  };
  return kActions;
}

}  // namespace snapvol::api
