// Restore requests: a member asks for a restore of its snapshot, an administrator approves
// (which runs the restore into a new volume of the team) or rejects it. snapvol's own actions on
// the Query API (CreateRestoreRequest, DescribeRestoreRequests, Approve/RejectRestoreRequest),
// and the operations the JSON API shares with them.
#include "api/restore_requests.h"

#include <algorithm>

#include "api/xml_writer.h"
#include "core/ids.h"
#include "engine/rollback_tasks.h"
#include "managed/volume_files.h"

namespace snapvol::api {

ApiStatus CheckRestoreRequestState(const std::optional<std::string>& state) {
  if (state && *state != "pending" && *state != "approved" && *state != "rejected")
    return std::unexpected(InvalidParameterValue("State", *state, "Expecting pending, approved or rejected."));
  return {};
}

// ---- restore requests (snapvol's own actions on the same endpoint) ----

namespace {

void WriteRestoreRequest(XmlWriter& w, const RestoreRequestRecord& r, const std::optional<ReplaceRootVolumeTaskRecord>& task) {
  w.Text("restoreRequestId", r.request_id);
  w.Text("snapshotId", r.snapshot_id);
  w.Text("ownerId", r.account_id);
  w.Text("requestedBy", r.requested_by);
  w.Text("reason", r.reason);
  w.Text("state", r.state);
  w.Timestamp("createTime", r.created_ms);
  if (r.state != "pending") {
    w.Text("decidedBy", r.decided_by);
    w.Text("decisionReason", r.decision_reason);
    w.Timestamp("decideTime", r.decided_ms);
  }
  if (!r.volume_id.empty()) w.Text("volumeId", r.volume_id);
  w.Text("restoreType", r.restore_type);
  if (!r.task_id.empty()) w.Text("replaceRootVolumeTaskId", r.task_id);
  if (task) {
    w.Text("taskState", task->state);
    w.Text("taskProgress", std::to_string(task->progress) + "%");
    if (!task->safety_snapshot_id.empty()) w.Text("safetySnapshotId", task->safety_snapshot_id);
  }
}

std::string RenderRestoreRequest(Ec2Context& x, const char* action, const std::string& rid,
                                 const RestoreRequestRecord& r) {
  XmlWriter w = BeginEc2Response(action, rid);
  w.Open("restoreRequest");
  WriteRestoreRequest(w, r, RestoreRequestTask(x, r));
  w.Close();
  return std::move(w).Finish();
}

}  // namespace

std::optional<ReplaceRootVolumeTaskRecord> RestoreRequestTask(Ec2Context& x, const RestoreRequestRecord& r) {
  if (r.task_id.empty()) return std::nullopt;
  auto t = x.catalog->GetReplaceRootVolumeTask(r.task_id);
  if (!t) return std::nullopt;
  return *t;
}

namespace {

ApiResult<RestoreRequestRecord> FindRestoreRequest(Ec2Context& x, const Caller& c, const std::string& id) {
  auto r = x.catalog->GetRestoreRequest(id);
  if (!r || (r->account_id != c.account_id && !c.admin))
    return Fail("InvalidRestoreRequest.NotFound", "The restore request '" + id + "' does not exist.");
  return *r;
}

}  // namespace

ApiResult<RestoreRequestRecord> FileRestoreRequest(Ec2Context& x, const Caller& c, const RestoreAsk& ask, bool dry) {
  const std::string& snap_id = ask.snapshot_id;
  const std::string& reason = ask.reason;
  const std::string type = ask.restore_type.empty() ? "new-volume" : ask.restore_type;
  if (type != "new-volume" && type != "in-place")
    return std::unexpected(InvalidParameterValue("RestoreType", type, "Expecting new-volume or in-place."));
  if (type == "new-volume" && !ask.volume_id.empty())
    return Fail(ec2::kInvalidParameterCombination,
                "VolumeId names the volume an in-place restore rolls back; it is not allowed with RestoreType "
                "new-volume.");
  if (type == "in-place" && ask.volume_id.empty()) return std::unexpected(MissingParameter("VolumeId"));
  if (Chars(reason) > 1024)
    return Fail(ec2::kInvalidParameterValue, "Value for parameter Reason is too long (max 1024 characters).");
  API_ASSIGN_OR_RETURN(SnapshotRecord s, x.VisibleSnapshot(c, snap_id));
  if (s.account_id != c.account_id) return std::unexpected(NotFoundSnapshot(snap_id));  // one's own only
  std::optional<VolumeRecord> target;
  if (type == "in-place") {
    API_ASSIGN_OR_RETURN(VolumeRecord v, x.VisibleVolume(c, ask.volume_id));
    if (v.account_id != s.account_id) return std::unexpected(NotFoundVolume(ask.volume_id));  // one's own only
    target = std::move(v);
  }
  API_RETURN_IF_ERROR(x.Authorize(c, "CreateRestoreRequest", {x.Arn(c, "snapshot", snap_id)}, s.tags));
  if (dry) return DryRunOk();
  if (s.state != SnapshotState::kCompleted)
    return Fail(ec2::kIncorrectState, "Snapshot '" + snap_id + "' is not completed.");
  if (target && target->managed && (!x.options.rollbacks || !x.options.rollbacks->managed.open))
    return Fail(ec2::kUnsupportedOperation,
                "Volume " + target->volume_id + " is a managed volume and in-place rollback of managed volumes does "
                "not run in this process; ask for RestoreType new-volume instead.");
  if (target && s.volume_size_bytes > target->size_bytes)
    return Fail(ec2::kInvalidParameterValue, "Snapshot '" + snap_id + "' (" + std::to_string(s.volume_size_bytes) +
                                                 " bytes) is larger than volume " + target->volume_id + " (" +
                                                 std::to_string(target->size_bytes) + " bytes).");
  RestoreRequestRecord r;
  r.restore_type = type;
  if (target) r.volume_id = target->volume_id;
  r.request_id = "rr-" + NewSnapshotId().substr(5);
  r.account_id = c.account_id;
  r.snapshot_id = snap_id;
  r.requested_by = c.user;
  r.reason = reason;
  r.created_ms = x.clock->NowMillis();
  auto st = x.catalog->InsertRestoreRequest(r);
  if (!st) return std::unexpected(FromError(st.error()));
  return r;
}

ApiResult<std::vector<RestoreRequestRecord>> ListRestoreRequests(Ec2Context& x, const Caller& c,
                                                                 const std::vector<std::string>& ids,
                                                                 const std::optional<std::string>& state,
                                                                 bool dry) {
  API_RETURN_IF_ERROR(x.Authorize(c, "DescribeRestoreRequests", {}));
  if (dry) return DryRunOk();
  std::optional<std::string> scope;
  if (!c.admin) scope = c.account_id;  // administrators see every team's requests
  auto rows = x.catalog->ListRestoreRequests(scope);
  if (!rows) return std::unexpected(FromError(rows.error()));
  for (const auto& id : ids)
    if (std::none_of(rows->begin(), rows->end(), [&](const auto& r) { return r.request_id == id; }))
      return Fail("InvalidRestoreRequest.NotFound", "The restore request '" + id + "' does not exist.");
  std::vector<RestoreRequestRecord> out;
  for (auto& r : *rows) {
    if (!ids.empty() && std::find(ids.begin(), ids.end(), r.request_id) == ids.end()) continue;
    if (state && r.state != *state) continue;
    out.push_back(std::move(r));
  }
  return out;
}

ApiResult<RestoreRequestRecord> DecideRestoreRequest(Ec2Context& x, const Caller& c, const std::string& id, bool approve,
                                                     const std::string& reason, bool dry) {
  if (Chars(reason) > 1024)
    return Fail(ec2::kInvalidParameterValue, "Value for parameter Reason is too long (max 1024 characters).");
  API_ASSIGN_OR_RETURN(RestoreRequestRecord r, FindRestoreRequest(x, c, id));
  API_RETURN_IF_ERROR(x.Authorize(c, approve ? "ApproveRestoreRequest" : "RejectRestoreRequest", {}));
  if (dry) return DryRunOk();
  if (r.state != "pending")
    return Fail(ec2::kIncorrectState, "The restore request '" + id + "' is already " + r.state + ".");
  const bool in_place = r.restore_type == "in-place";
  std::string volume_id = r.volume_id;  // in-place: the volume named when the request was filed
  std::optional<SnapshotRecord> snap;
  std::string host;  // a new volume's host (Ec2Context::PlaceRestore); '' is this one
  std::string decision = reason;
  if (approve) {
    auto s = x.catalog->GetSnapshot(r.snapshot_id);
    if (!s) return std::unexpected(NotFoundSnapshot(r.snapshot_id));
    if (s->state != SnapshotState::kCompleted)
      return Fail(ec2::kIncorrectState, "Snapshot '" + r.snapshot_id + "' is not completed.");
    snap = *s;
    if (!in_place) {
      volume_id = NewVolumeId();
      std::string where;
      host = x.PlaceRestore(*s, &where);
      if (!where.empty()) decision += (decision.empty() ? "" : "; ") + where;
    }
    if (in_place && !x.options.rollbacks)
      return Fail(ec2::kUnsupportedOperation, "In-place rollback does not run in this process.");
  }
  // Decide first (atomically pending → decided), so two administrators never both restore.
  auto decided = x.catalog->DecideRestoreRequest(id, approve, c.user + " (" + c.account_id + ")", decision,
                                               volume_id, x.clock->NowMillis());
  if (!decided) {
    if (decided.error().code() == ErrorCode::kConflict)
      return Fail(ec2::kIncorrectState, decided.error().message());
    return std::unexpected(FromError(decided.error()));
  }
  if (approve && in_place) {
    // The rollback task's own rules (detached or instance stopped, the device free, sizes)
    // decide now; a refusal puts the request back to pending so it can be approved again once
    // the volume is free.
    RollbackTaskRequest t;
    t.account_id = r.account_id;
    t.volume_id = volume_id;
    t.snapshot_id = r.snapshot_id;
    t.reason = "restore request " + id + (reason.empty() ? "" : ": " + reason);
    t.requested_by = c.user + " (" + c.account_id + ")";
    auto task = x.options.rollbacks->Start(t);
    if (!task) {
      (void)x.catalog->ReopenRestoreRequest(id);
      const Error& e = task.error();
      if (e.code() == ErrorCode::kConflict || e.code() == ErrorCode::kInvalidArgument)
        return Fail(ec2::kIncorrectState, "The restore request '" + id + "' stays pending: " + e.message() + ".");
      if (e.code() == ErrorCode::kNotFound) return std::unexpected(NotFoundVolume(volume_id));
      return std::unexpected(FromError(e));
    }
    auto st = x.catalog->SetRestoreRequestTask(id, task->task_id);
    if (!st) return std::unexpected(FromError(st.error()));
  } else if (approve) {
    auto v = x.RestoreToNewVolume(*snap, volume_id, "gp2", {}, host);
    if (!v && !x.catalog->GetVolume(volume_id)) {  // (a restore that failed after its row was written ended it `error`)
      // The request is decided and names this volume: record why it has no data rather
      // than leave the id pointing at nothing.
      VolumeRecord failed;
      failed.volume_id = volume_id;
      failed.account_id = snap->account_id;
      failed.name = "restore of " + snap->snapshot_id + " (failed)";
      failed.size_bytes = snap->volume_size_bytes;
      failed.block_size = snap->block_size;
      failed.created_ms = x.clock->NowMillis();
      failed.snapshot_id = snap->snapshot_id;
      failed.state = "error";
      failed.state_message = "the restore could not start: " + v.error().message;
      // A volume row needs a path: the image it would have had (there is none; deleting the
      // volume removes nothing else). If even this cannot be written, the answer says so.
      failed.path = VolumeImagePath(x.options.restore_dir, volume_id);
      failed.managed = true;
      if (auto st = x.catalog->InsertVolume(failed); !st) {
        ApiError e = v.error();
        e.message += " (and the volume " + volume_id + " the request names could not be recorded: " +
                     st.error().message() + ")";
        return std::unexpected(e);
      }
      return std::unexpected(v.error());
    }
    if (!v) return std::unexpected(v.error());
  }
  auto after = x.catalog->GetRestoreRequest(id);
  if (!after) return std::unexpected(FromError(after.error()));
  return *after;
}

namespace {

ApiResult<std::string> CreateRestoreRequest(Ec2Context& x, const Caller& c, const QueryParams& p, const std::string& rid) {
  RestoreAsk ask;
  API_ASSIGN_OR_RETURN(ask.snapshot_id, p.GetString("SnapshotId"));
  API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
  ask.reason = p.GetOptionalString("Reason").value_or("");
  ask.restore_type = p.GetOptionalString("RestoreType").value_or("");
  ask.volume_id = p.GetOptionalString("VolumeId").value_or("");
  API_ASSIGN_OR_RETURN(RestoreRequestRecord r, FileRestoreRequest(x, c, ask, dry));
  return RenderRestoreRequest(x, "CreateRestoreRequest", rid, r);
}

ApiResult<std::string> DescribeRestoreRequests(Ec2Context& x, const Caller& c, const QueryParams& p, const std::string& rid) {
  API_ASSIGN_OR_RETURN(std::vector<std::string> ids, p.GetList("RestoreRequestId"));
  API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
  auto state = p.GetOptionalString("State");
  API_RETURN_IF_ERROR(CheckRestoreRequestState(state));
  API_ASSIGN_OR_RETURN(auto rows, ListRestoreRequests(x, c, ids, state, dry));
  XmlWriter w = BeginEc2Response("DescribeRestoreRequests", rid);
  w.Open("restoreRequestSet");
  for (const auto& r : rows) {
    w.Open("item");
    WriteRestoreRequest(w, r, RestoreRequestTask(x, r));
    w.Close();
  }
  w.Close();
  return std::move(w).Finish();
}

ApiResult<std::string> DecideRestoreRequestAction(Ec2Context& x, const Caller& c, const QueryParams& p,
                                                  const std::string& rid, bool approve) {
  API_ASSIGN_OR_RETURN(std::string id, p.GetString("RestoreRequestId"));
  API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
  API_ASSIGN_OR_RETURN(RestoreRequestRecord r,
                       DecideRestoreRequest(x, c, id, approve, p.GetOptionalString("Reason").value_or(""), dry));
  return RenderRestoreRequest(x, approve ? "ApproveRestoreRequest" : "RejectRestoreRequest", rid, r);
}


ApiResult<std::string> ApproveRestoreRequest(Ec2Context& x, const Caller& c, const QueryParams& p, const std::string& rid) {
  return DecideRestoreRequestAction(x, c, p, rid, true);
}
ApiResult<std::string> RejectRestoreRequest(Ec2Context& x, const Caller& c, const QueryParams& p, const std::string& rid) {
  return DecideRestoreRequestAction(x, c, p, rid, false);
}

}  // namespace

std::span<const Ec2Action> RestoreRequestActions() {
  static constexpr std::string_view kCreate[] = {"SnapshotId", "Reason", "RestoreType", "VolumeId", "DryRun"};
  static constexpr std::string_view kDescribe[] = {"RestoreRequestId.", "State", "DryRun"};
  static constexpr std::string_view kDecide[] = {"RestoreRequestId", "Reason", "DryRun"};
  static constexpr Ec2Action kActions[] = {
      {"CreateRestoreRequest", kCreate, &CreateRestoreRequest},
      {"DescribeRestoreRequests", kDescribe, &DescribeRestoreRequests},
      {"ApproveRestoreRequest", kDecide, &ApproveRestoreRequest},
      {"RejectRestoreRequest", kDecide, &RejectRestoreRequest},
  };
  return kActions;
}

}  // namespace snapvol::api
