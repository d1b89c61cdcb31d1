// Restore requests: a member asks for a restore of its snapshot, an administrator approves
// (which runs the restore into a new volume of the team) or rejects it. snapvol's own actions on
// the Query API (CreateRestoreRequest, DescribeRestoreRequests, Approve/RejectRestoreRequest),
// and the operations the JSON API shares with them.
#include "api/restore_requests.h"

#include <algorithm>

#include "api/xml_writer.h"
#include "core/ids.h"

namespace snapvol::api {

ApiStatus CheckRestoreRequestState(const std::optional<std::string>& state) {
  if (state && *state != "pending" && *state != "approved" && *state != "rejected")
    return std::unexpected(InvalidParameterValue("State", *state, "Expecting pending, approved or rejected."));
  return {};
}

// ---- restore requests (snapvol's own actions on the same endpoint) ----

namespace {

void WriteRestoreRequest(XmlWriter& w, const RestoreRequestRecord& r) {
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
}

std::string RenderRestoreRequest(const char* action, const std::string& rid,
                                        const RestoreRequestRecord& r) {
  XmlWriter w = BeginEc2Response(action, rid);
  w.Open("restoreRequest");
  WriteRestoreRequest(w, r);
  w.Close();
  return std::move(w).Finish();
}

ApiResult<RestoreRequestRecord> FindRestoreRequest(Ec2Context& x, const Caller& c, const std::string& id) {
  auto r = x.catalog->GetRestoreRequest(id);
  if (!r || (r->account_id != c.account_id && !c.admin))
    return Fail("InvalidRestoreRequest.NotFound", "The restore request '" + id + "' does not exist.");
  return *r;
}

}  // namespace

ApiResult<RestoreRequestRecord> FileRestoreRequest(Ec2Context& x, const Caller& c, const std::string& snap_id,
                                                   const std::string& reason, bool dry) {
  if (Chars(reason) > 1024)
    return Fail(ec2::kInvalidParameterValue, "Value for parameter Reason is too long (max 1024 characters).");
  API_ASSIGN_OR_RETURN(SnapshotRecord s, x.VisibleSnapshot(c, snap_id));
  if (s.account_id != c.account_id) return std::unexpected(NotFoundSnapshot(snap_id));  // one's own only
  API_RETURN_IF_ERROR(x.Authorize(c, "CreateRestoreRequest", {x.Arn(c, "snapshot", snap_id)}, s.tags));
  if (dry) return DryRunOk();
  if (s.state != SnapshotState::kCompleted)
    return Fail(ec2::kIncorrectState, "Snapshot '" + snap_id + "' is not completed.");
  RestoreRequestRecord r;
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
  std::string volume_id;
  std::optional<SnapshotRecord> snap;
  if (approve) {
    auto s = x.catalog->GetSnapshot(r.snapshot_id);
    if (!s) return std::unexpected(NotFoundSnapshot(r.snapshot_id));
    if (s->state != SnapshotState::kCompleted)
      return Fail(ec2::kIncorrectState, "Snapshot '" + r.snapshot_id + "' is not completed.");
    snap = *s;
    volume_id = NewVolumeId();
  }
  // Decide first (atomically pending → decided), so two administrators never both restore.
  auto decided = x.catalog->DecideRestoreRequest(id, approve, c.user + " (" + c.account_id + ")", reason,
                                               volume_id, x.clock->NowMillis());
  if (!decided) {
    if (decided.error().code() == ErrorCode::kConflict)
      return Fail(ec2::kIncorrectState, decided.error().message());
    return std::unexpected(FromError(decided.error()));
  }
  if (approve) {
    auto v = x.RestoreToNewVolume(*snap, volume_id);
    if (!v) {
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
      (void)x.catalog->InsertVolume(failed);
      return std::unexpected(v.error());
    }
  }
  auto after = x.catalog->GetRestoreRequest(id);
  if (!after) return std::unexpected(FromError(after.error()));
  return *after;
}

namespace {

ApiResult<std::string> CreateRestoreRequest(Ec2Context& x, const Caller& c, const QueryParams& p, const std::string& rid) {
  API_ASSIGN_OR_RETURN(std::string snap_id, p.GetString("SnapshotId"));
  API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
  API_ASSIGN_OR_RETURN(RestoreRequestRecord r,
                       FileRestoreRequest(x, c, snap_id, p.GetOptionalString("Reason").value_or(""), dry));
  return RenderRestoreRequest("CreateRestoreRequest", rid, r);
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
    WriteRestoreRequest(w, r);
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
  return RenderRestoreRequest(approve ? "ApproveRestoreRequest" : "RejectRestoreRequest", rid, r);
}


ApiResult<std::string> ApproveRestoreRequest(Ec2Context& x, const Caller& c, const QueryParams& p, const std::string& rid) {
  return DecideRestoreRequestAction(x, c, p, rid, true);
}
ApiResult<std::string> RejectRestoreRequest(Ec2Context& x, const Caller& c, const QueryParams& p, const std::string& rid) {
  return DecideRestoreRequestAction(x, c, p, rid, false);
}

}  // namespace

std::span<const Ec2Action> RestoreRequestActions() {
  static constexpr std::string_view kCreate[] = {"SnapshotId", "Reason", "DryRun"};
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
