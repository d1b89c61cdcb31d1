// Restoring a volume to a snapshot, as tasks: EC2's CreateReplaceRootVolumeTask (the root
// volume of an instance) and DescribeReplaceRootVolumeTasks, and snapvol's own
// RestoreVolumeFromSnapshot for any volume, root or data, registered or managed (a managed one
// rolled back in place with its changed-block tracking). A REGISTERED root is
// rolled back in place by RollbackTasks (engine/rollback_tasks.h), which checks the rules and
// runs the task. A MANAGED root is replaced as EC2 does it: a new volume restored lazily from
// a snapshot of the root's lineage takes its place at the instance's root device
// (engine/managed_root_replacement.h); the task's volumeId stays the old volume and
// replacementVolumeId names the new one.
// Restoring is an administrator's act: the member policy denies the two creating actions.
// Not offered: ImageId (snapvol has no images): refused by name.
#include <algorithm>

#include "api/ec2_context.h"
#include "api/xml_writer.h"
#include "core/clock.h"
#include "core/ids.h"
#include "engine/managed_root_replacement.h"
#include "engine/rollback_tasks.h"
#include "managed/volume_files.h"

namespace snapvol::api {
namespace {

constexpr char kTaskNotFound[] = "InvalidReplaceRootVolumeTask.NotFound";

void WriteTask(XmlWriter& w, const ReplaceRootVolumeTaskRecord& t) {
  w.Text("replaceRootVolumeTaskId", t.task_id);
  w.Text("instanceId", t.instance_id);
  w.Text("taskState", t.state);
  w.Text("startTime", FormatIso8601(t.start_ms));
  if (t.complete_ms) w.Text("completeTime", FormatIso8601(t.complete_ms));
  w.Open("tagSet");
  for (const Tag& tag : t.tags) {
    w.Open("item");
    w.Text("key", tag.key);
    w.Text("value", tag.value);
    w.Close();
  }
  w.Close();
  w.Text("snapshotId", t.snapshot_id);
  w.Bool("deleteReplacedRootVolume", t.delete_replaced);
  // snapvol's own members (SDKs skip what their model does not name). volumeId: the volume
  // rolled back in place, or the replaced (old) root; replacementVolumeId: the new root.
  w.Text("volumeId", t.volume_id);
  if (!t.replacement_volume_id.empty()) w.Text("replacementVolumeId", t.replacement_volume_id);
  w.Text("progress", std::to_string(t.progress) + "%");
  w.Int("blocksCompared", static_cast<int64_t>(t.blocks_compared));
  w.Int("bytesRead", static_cast<int64_t>(t.bytes_read));
  w.Int("bytesWritten", static_cast<int64_t>(t.bytes_written));
  if (!t.safety_snapshot_id.empty()) w.Text("safetySnapshotId", t.safety_snapshot_id);
  if (!t.reason.empty()) w.Text("stateReason", t.reason);
  w.Bool("forced", t.force);
}

std::string RenderTask(const char* action, const std::string& rid, const ReplaceRootVolumeTaskRecord& t) {
  XmlWriter w = BeginEc2Response(action, rid);
  w.Open("replaceRootVolumeTask");
  WriteTask(w, t);
  w.Close();
  return std::move(w).Finish();
}

ApiResult<std::string> ClientToken(const QueryParams& p) {
  std::string token = p.GetOptionalString("ClientToken").value_or("");
  if (token.size() > 64) return std::unexpected(InvalidParameterValue("ClientToken", token, "At most 64 characters."));
  return token;
}

// The task an earlier call with this ClientToken made, if it asked for the same thing.
ApiResult<std::optional<ReplaceRootVolumeTaskRecord>> Earlier(Ec2Context& x, const std::string& account_id,
                                                              const std::string& token, const std::string& volume_id,
                                                              const std::string& snapshot_id) {
  if (token.empty()) return std::nullopt;
  auto found = x.catalog->FindReplaceRootVolumeTaskByToken(account_id, token);
  if (!found) return std::unexpected(FromError(found.error()));
  if (*found && ((*found)->volume_id != volume_id || (*found)->snapshot_id != snapshot_id))
    return Fail("IdempotentParameterMismatch",
                "The ClientToken was used before with other parameters; use a new token for a new request.");
  return *found;
}

// Starts the task; the rules' refusals become EC2 errors (in_use_code for a volume in use).
ApiResult<ReplaceRootVolumeTaskRecord> StartTask(Ec2Context& x, const Caller& c, const RollbackTaskRequest& r,
                                                 std::string_view in_use_code) {
  if (!x.options.rollbacks) return Fail(ec2::kUnsupportedOperation, "In-place rollback does not run in this process.");
  auto t = x.options.rollbacks->Start(r);
  if (!t) {
    const Error& e = t.error();
    if (e.code() == ErrorCode::kConflict) return Fail(in_use_code, e.message());
    if (e.code() == ErrorCode::kInvalidArgument) return Fail(ec2::kInvalidParameterValue, e.message());
    // snapvold itself may not write the volume's file or device (its permissions): say so,
    // rather than an UnauthorizedOperation that would blame the caller.
    if (e.code() == ErrorCode::kUnauthorized) return Fail(ec2::kIncorrectState, e.message());
    return std::unexpected(FromError(e));
  }
  // The audit log line of this request says who forced a rollback of a volume in use, and why.
  if (t->force) c.record->detail = "forced in-place rollback of " + t->volume_id + " (" + t->task_id + "): " + t->reason;
  return *t;
}

// Removes a replacement volume no task took: its row, then its files.
void DiscardVolume(Ec2Context& x, const VolumeRecord& v) {
  (void)x.catalog->DeleteVolume(v.volume_id);
  if (x.options.on_volume_deleted) x.options.on_volume_deleted(v.volume_id);
  RemoveVolumeFiles(v.path);
}

// A managed root: a new volume restored lazily from the snapshot (CreateVolume's path, the old
// root's type and tags), queued to take the old one's place at the root device.
ApiResult<std::string> ReplaceManagedRoot(Ec2Context& x, const Caller& c, const InstanceRecord& inst,
                                          const VolumeRecord& root, const SnapshotRecord& snap, bool delete_replaced,
                                          const std::vector<Tag>& tags, const std::string& token,
                                          const std::string& rid) {
  if (!x.options.rollbacks || !x.options.rollbacks->managed_roots)
    return Fail(ec2::kUnsupportedOperation, "Replacing a managed root volume does not run in this process.");
  // A retry with the task's ClientToken answers with the task, even once the root it replaced
  // is no longer the root.
  if (!token.empty()) {
    auto found = x.catalog->FindReplaceRootVolumeTaskByToken(inst.account_id, token);
    if (!found) return std::unexpected(FromError(found.error()));
    if (*found) {
      const auto& t = **found;
      if (t.instance_id != inst.instance_id || t.snapshot_id != snap.snapshot_id || t.delete_replaced != delete_replaced)
        return Fail("IdempotentParameterMismatch",
                    "The ClientToken was used before with other parameters; use a new token for a new request.");
      return RenderTask("CreateReplaceRootVolumeTask", rid, t);
    }
  }
  // The replacement is a new managed volume made on the host that runs the task and served by
  // its NBD server in the old one's place: only the root's own host can do that. (A retry with
  // the task's ClientToken is answered above, wherever it is sent.)
  if (std::string there = x.catalog->HostElsewhere(root.host_id); !there.empty())
    return Fail(ec2::kIncorrectState, "The root volume '" + root.volume_id + "' of instance '" + inst.instance_id +
                                          "' is a managed volume on host " + x.catalog->DescribeHost(there) +
                                          "; send CreateReplaceRootVolumeTask to that host.");
  if (snap.account_id != inst.account_id) return std::unexpected(NotFoundSnapshot(snap.snapshot_id));
  auto lineage = ManagedRootReplacement::InLineage(x.catalog, root, snap);
  if (!lineage) return std::unexpected(FromError(lineage.error()));
  if (!*lineage)
    return Fail(ec2::kInvalidParameterValue,
                "Snapshot '" + snap.snapshot_id + "' was not created from the root volume " + root.volume_id + " of " +
                    inst.instance_id + " (nor from a volume it was restored from).");
  if (snap.state != SnapshotState::kCompleted)
    return Fail(ec2::kIncorrectState, "Snapshot '" + snap.snapshot_id + "' is not completed.");
  API_ASSIGN_OR_RETURN(VolumeRecord fresh, x.RestoreToNewVolume(snap, NewVolumeId(), root.volume_type, root.tags));
  ReplaceRootVolumeTaskRecord t;
  t.task_id = NewReplaceRootVolumeTaskId();
  t.account_id = inst.account_id;
  t.instance_id = inst.instance_id;
  t.volume_id = root.volume_id;
  t.snapshot_id = snap.snapshot_id;
  t.replacement_volume_id = fresh.volume_id;
  t.client_token = token;
  t.delete_replaced = delete_replaced;
  t.requested_by = c.user + " (" + c.account_id + ")";
  t.start_ms = x.clock->NowMillis();
  t.tags = tags;
  auto started = x.options.rollbacks->StartReplacement(t);
  if (!started) {
    DiscardVolume(x, fresh);
    if (started.error().code() == ErrorCode::kConflict) return Fail("IncorrectInstanceState", started.error().message());
    return std::unexpected(FromError(started.error()));
  }
  c.record->detail = "replacing managed root volume " + root.volume_id + " of " + inst.instance_id + " with " +
                     fresh.volume_id + " restored from " + snap.snapshot_id + " (" + t.task_id + ")";
  return RenderTask("CreateReplaceRootVolumeTask", rid, *started);
}

ApiResult<std::string> CreateReplaceRootVolumeTask(Ec2Context& x, const Caller& c, const QueryParams& p,
                                                   const std::string& rid) {
  if (p.Has("ImageId"))
    return Fail(ec2::kUnsupportedOperation,
                "ImageId is not supported: snapvol has no images (AMIs); give SnapshotId, a snapshot of the root volume.");
  API_ASSIGN_OR_RETURN(std::string instance_id, p.GetString("InstanceId"));
  if (!IsInstanceId(instance_id)) return std::unexpected(MalformedId("InvalidInstanceID.Malformed", instance_id, "i-"));
  auto snapshot_id = p.GetOptionalString("SnapshotId");
  if (!snapshot_id)
    return Fail(ec2::kMissingParameter,
                "The request must contain the parameter SnapshotId (restoring to the launch state needs an image, "
                "which snapvol does not have).");
  API_ASSIGN_OR_RETURN(auto delete_replaced, p.GetOptionalBool("DeleteReplacedRootVolume"));
  API_ASSIGN_OR_RETURN(std::vector<Tag> tags, x.TagsFromSpecifications(p, "replace-root-volume-task"));
  API_ASSIGN_OR_RETURN(std::string token, ClientToken(p));
  API_ASSIGN_OR_RETURN(InstanceRecord inst, x.VisibleInstance(c, instance_id));
  API_ASSIGN_OR_RETURN(SnapshotRecord snap, x.VisibleSnapshot(c, *snapshot_id));
  auto vols = x.catalog->ListVolumes(inst.account_id);
  if (!vols) return std::unexpected(FromError(vols.error()));
  auto root = std::find_if(vols->begin(), vols->end(), [&](const VolumeRecord& v) {
    return v.instance_id == instance_id && v.boot;
  });
  API_RETURN_IF_ERROR(x.Authorize(c, "CreateReplaceRootVolumeTask",
                                  {x.Arn(c, "instance", instance_id), x.Arn(c, "snapshot", *snapshot_id)}, snap.tags));
  API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
  if (dry) return DryRunOk();
  if (root == vols->end())
    return Fail(ec2::kIncorrectState, "Instance '" + instance_id + "' has no root volume attached (at its root "
                                      "device " + inst.root_device + ").");
  if (root->managed)
    return ReplaceManagedRoot(x, c, inst, *root, snap, delete_replaced.value_or(false), tags, token, rid);
  if (snap.volume_id != root->volume_id)
    return Fail(ec2::kInvalidParameterValue, "Snapshot '" + snap.snapshot_id + "' is not a snapshot of the root volume " +
                                                 root->volume_id + " of " + instance_id + ".");
  API_ASSIGN_OR_RETURN(auto earlier, Earlier(x, inst.account_id, token, root->volume_id, snap.snapshot_id));
  if (earlier) return RenderTask("CreateReplaceRootVolumeTask", rid, *earlier);
  RollbackTaskRequest r;
  r.account_id = inst.account_id;
  r.volume_id = root->volume_id;
  r.snapshot_id = snap.snapshot_id;
  r.instance_id = instance_id;
  r.delete_replaced = delete_replaced.value_or(false);
  r.client_token = token;
  r.requested_by = c.user + " (" + c.account_id + ")";
  r.tags = tags;
  API_ASSIGN_OR_RETURN(auto t, StartTask(x, c, r, "IncorrectInstanceState"));
  return RenderTask("CreateReplaceRootVolumeTask", rid, t);
}

ApiResult<std::string> RestoreVolumeFromSnapshot(Ec2Context& x, const Caller& c, const QueryParams& p,
                                                 const std::string& rid) {
  API_ASSIGN_OR_RETURN(std::string volume_id, p.GetString("VolumeId"));
  API_ASSIGN_OR_RETURN(std::string snapshot_id, p.GetString("SnapshotId"));
  API_ASSIGN_OR_RETURN(auto force, p.GetOptionalBool("Force"));
  API_ASSIGN_OR_RETURN(auto safety, p.GetOptionalBool("SafetySnapshot"));
  std::string reason = p.GetOptionalString("Reason").value_or("");
  if (Chars(reason) > 1024)
    return Fail(ec2::kInvalidParameterValue, "Value for parameter Reason is too long (max 1024 characters).");
  API_ASSIGN_OR_RETURN(std::vector<Tag> tags, x.TagsFromSpecifications(p, "replace-root-volume-task"));
  API_ASSIGN_OR_RETURN(std::string token, ClientToken(p));
  API_ASSIGN_OR_RETURN(VolumeRecord vol, x.VisibleVolume(c, volume_id));
  API_ASSIGN_OR_RETURN(SnapshotRecord snap, x.VisibleSnapshot(c, snapshot_id));
  if (snap.account_id != vol.account_id) return std::unexpected(NotFoundSnapshot(snapshot_id));
  API_RETURN_IF_ERROR(x.Authorize(c, "RestoreVolumeFromSnapshot",
                                  {x.Arn(c, "volume", volume_id), x.Arn(c, "snapshot", snapshot_id)}, snap.tags));
  API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
  if (dry) return DryRunOk();
  if (vol.managed && (!x.options.rollbacks || !x.options.rollbacks->managed.open))
    return Fail(ec2::kUnsupportedOperation,
                "In-place rollback of managed volumes does not run in this process; restore the snapshot into a "
                "new volume (CreateVolume).");
  API_ASSIGN_OR_RETURN(auto earlier, Earlier(x, vol.account_id, token, volume_id, snapshot_id));
  if (earlier) return RenderTask("RestoreVolumeFromSnapshot", rid, *earlier);
  RollbackTaskRequest r;
  r.account_id = vol.account_id;
  r.volume_id = volume_id;
  r.snapshot_id = snapshot_id;
  r.safety_snapshot = safety.value_or(true);
  r.force = force.value_or(false);
  r.reason = reason;
  r.client_token = token;
  r.requested_by = c.user + " (" + c.account_id + ")";
  r.tags = tags;
  API_ASSIGN_OR_RETURN(auto t, StartTask(x, c, r, ec2::kIncorrectState));
  return RenderTask("RestoreVolumeFromSnapshot", rid, t);
}

// What the instance-id filter reads.
constexpr FilterField<ReplaceRootVolumeTaskRecord> kTaskFields[] = {
    {"instance-id", [](const ReplaceRootVolumeTaskRecord& t, std::vector<std::string>& o) { o.push_back(t.instance_id); }},
};

ApiResult<std::string> DescribeReplaceRootVolumeTasks(Ec2Context& x, const Caller& c, const QueryParams& p,
                                                      const std::string& rid) {
  API_ASSIGN_OR_RETURN(std::vector<std::string> ids, p.GetList("ReplaceRootVolumeTaskId"));
  for (const auto& id : ids)
    if (!IsReplaceRootVolumeTaskId(id))
      return std::unexpected(MalformedId("InvalidReplaceRootVolumeTaskId.Malformed", id, "replacevol-"));
  API_ASSIGN_OR_RETURN(std::vector<QueryFilter> filters, p.GetFilters());
  API_ASSIGN_OR_RETURN(auto matcher, ResourceMatcher<ReplaceRootVolumeTaskRecord>::Create(filters, kTaskFields, nullptr));
  const PageBounds bounds{1, 50};
  API_ASSIGN_OR_RETURN(PageRequest page_req, ParsePageRequest(p, bounds));
  API_RETURN_IF_ERROR(x.Authorize(c, "DescribeReplaceRootVolumeTasks", {}));
  API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
  if (dry) return DryRunOk();
  std::optional<std::string> scope = c.account_id;
  if (c.admin) scope.reset();  // administrators run restores for every team and follow them
  auto rows = x.catalog->ListReplaceRootVolumeTasks(scope);
  if (!rows) return std::unexpected(FromError(rows.error()));
  for (const auto& id : ids)
    if (std::none_of(rows->begin(), rows->end(), [&](const auto& t) { return t.task_id == id; }))
      return Fail(kTaskNotFound, "The replace root volume task '" + id + "' does not exist.");
  std::vector<ReplaceRootVolumeTaskRecord> tasks;
  for (auto& t : *rows)
    if (ids.empty() || std::find(ids.begin(), ids.end(), t.task_id) != ids.end()) tasks.push_back(std::move(t));
  KeepMatching(tasks, matcher);
  API_ASSIGN_OR_RETURN(auto page,
                       Paginate(std::move(tasks), [](const ReplaceRootVolumeTaskRecord& t) -> const std::string& {
                         return t.task_id;
                       }, page_req, *x.tokens, "DescribeReplaceRootVolumeTasks:" + c.account_id, bounds));
  XmlWriter w = BeginEc2Response("DescribeReplaceRootVolumeTasks", rid);
  w.Open("replaceRootVolumeTaskSet");
  for (const auto& t : page.items) {
    w.Open("item");
    WriteTask(w, t);
    w.Close();
  }
  w.Close();
  if (!page.next_token.empty()) w.Text("nextToken", page.next_token);
  return std::move(w).Finish();
}

}  // namespace

std::span<const Ec2Action> ReplaceRootVolumeActions() {
  static constexpr std::string_view kCreate[] = {"InstanceId", "SnapshotId", "ImageId", "DeleteReplacedRootVolume",
                                                 "TagSpecification.", "ClientToken", "DryRun"};
  static constexpr std::string_view kRestore[] = {"VolumeId", "SnapshotId", "Force", "Reason", "SafetySnapshot",
                                                  "TagSpecification.", "ClientToken", "DryRun"};
  static constexpr std::string_view kDescribe[] = {"ReplaceRootVolumeTaskId.", "Filter.", "MaxResults", "NextToken",
                                                   "DryRun"};
  static constexpr Ec2Action kActions[] = {
      {"CreateReplaceRootVolumeTask", kCreate, &CreateReplaceRootVolumeTask},
      {"RestoreVolumeFromSnapshot", kRestore, &RestoreVolumeFromSnapshot},
      {"DescribeReplaceRootVolumeTasks", kDescribe, &DescribeReplaceRootVolumeTasks},
  };
  return kActions;
}

}  // namespace snapvol::api
