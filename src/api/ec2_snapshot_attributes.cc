// Snapshot sharing between teams: DescribeSnapshotAttribute, ModifySnapshotAttribute and
// ResetSnapshotAttribute for createVolumePermission (productCodes can be read and is always
// empty). A snapshot shared with an account is listed by that account's DescribeSnapshots and
// may be copied into it with CopySnapshot; restoring it stays an administrator's act. Sharing
// with the group "all" (every account of this service) is refused unless the operator enabled
// it (snapvold --allow-public-sharing), and never allowed for an encrypted snapshot, as in EC2.
#include <algorithm>

#include "api/ec2_context.h"
#include "api/xml_writer.h"
#include "core/ids.h"

namespace snapvol::api {
namespace {

ApiStatus CheckAttribute(const QueryParams& p, bool modify) {
  API_ASSIGN_OR_RETURN(std::string attr, p.GetString("Attribute"));
  if (attr == "createVolumePermission") return {};
  if (attr == "productCodes" && !modify) return {};
  return std::unexpected(InvalidParameterValue("Attribute", attr,
                                               modify ? "Only createVolumePermission can be modified."
                                                      : "Expecting createVolumePermission or productCodes."));
}

// A grantee of createVolumePermission: an account id, or "all" for the group.
struct Grants {
  std::vector<std::string> add, remove;
};

ApiStatus AddGrantee(const std::string& user, const std::string& group, std::vector<std::string>* out) {
  if (!user.empty() && !group.empty())
    return Fail(ec2::kInvalidParameterCombination, "A permission names either a UserId or a Group, not both.");
  if (!group.empty()) {
    if (group != "all")
      return std::unexpected(InvalidParameterValue("Group", group, "The only group is 'all'."));
    out->push_back("all");
    return {};
  }
  if (!IsAccountId(user))
    return Fail("InvalidUserID.Malformed", "The user ID '" + user + "' is not valid (expecting a 12-digit account id).");
  out->push_back(user);
  return {};
}

ApiResult<Grants> ParseGrants(const QueryParams& p) {
  Grants g;
  for (const char* op : {"Add", "Remove"}) {
    API_ASSIGN_OR_RETURN(auto items, p.GetStructList(std::string("CreateVolumePermission.") + op));
    for (const auto& item : items) {
      static constexpr std::string_view kFields[] = {"UserId", "Group"};
      API_RETURN_IF_ERROR(item.fields.RejectUnknown(kFields));
      API_RETURN_IF_ERROR(AddGrantee(item.fields.GetOptionalString("UserId").value_or(""),
                                     item.fields.GetOptionalString("Group").value_or(""),
                                     std::string_view(op) == "Add" ? &g.add : &g.remove));
    }
  }
  // The older form: OperationType with UserId.N / UserGroup.N.
  API_ASSIGN_OR_RETURN(auto users, p.GetList("UserId"));
  API_ASSIGN_OR_RETURN(auto groups, p.GetList("UserGroup"));
  auto op = p.GetOptionalString("OperationType");
  if ((!users.empty() || !groups.empty()) && !op)
    return std::unexpected(MissingParameter("OperationType"));
  if (op) {
    if (*op != "add" && *op != "remove")
      return std::unexpected(InvalidParameterValue("OperationType", *op, "Expecting add or remove."));
    if (users.empty() && groups.empty())
      return Fail(ec2::kMissingParameter, "OperationType needs at least one UserId.N or UserGroup.N.");
    auto* into = *op == "add" ? &g.add : &g.remove;
    for (const auto& u : users) API_RETURN_IF_ERROR(AddGrantee(u, "", into));
    for (const auto& gr : groups) API_RETURN_IF_ERROR(AddGrantee("", gr, into));
  }
  if (g.add.empty() && g.remove.empty())
    return Fail(ec2::kMissingParameter, "The request must contain CreateVolumePermission.Add.N or .Remove.N (or OperationType with UserId.N).");
  const auto users_in = [](const std::vector<std::string>& v) {
    return std::any_of(v.begin(), v.end(), [](const std::string& s) { return s != "all"; });
  };
  if (users_in(g.add) && users_in(g.remove))
    return Fail(ec2::kInvalidParameterCombination,
                "Account ids cannot be added and removed in one ModifySnapshotAttribute call; use two calls.");
  return g;
}

ApiResult<SnapshotRecord> OwnedSnapshot(Ec2Context& x, const Caller& c, const QueryParams& p) {
  API_ASSIGN_OR_RETURN(std::string id, p.GetString("SnapshotId"));
  return x.VisibleSnapshot(c, id);
}

ApiResult<std::string> DescribeSnapshotAttribute(Ec2Context& x, const Caller& c, const QueryParams& p, const std::string& rid) {
  API_RETURN_IF_ERROR(CheckAttribute(p, false));
  API_ASSIGN_OR_RETURN(SnapshotRecord s, OwnedSnapshot(x, c, p));
  API_RETURN_IF_ERROR(x.Authorize(c, "DescribeSnapshotAttribute", {x.Arn(c, "snapshot", s.snapshot_id)}, s.tags));
  API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
  if (dry) return DryRunOk();
  XmlWriter w = BeginEc2Response("DescribeSnapshotAttribute", rid);
  w.Text("snapshotId", s.snapshot_id);
  if (*p.Find("Attribute") == "productCodes") {
    w.Open("productCodes");
    w.Close();
    return std::move(w).Finish();
  }
  auto grants = x.catalog->ListSnapshotPermissions(s.snapshot_id);
  if (!grants) return std::unexpected(FromError(grants.error()));
  w.Open("createVolumePermission");
  for (const auto& g : *grants) {
    w.Open("item");
    if (g == "all") w.Text("group", "all");
    else w.Text("userId", g);
    w.Close();
  }
  w.Close();
  return std::move(w).Finish();
}

ApiResult<std::string> ModifySnapshotAttribute(Ec2Context& x, const Caller& c, const QueryParams& p, const std::string& rid) {
  API_RETURN_IF_ERROR(CheckAttribute(p, true));
  API_ASSIGN_OR_RETURN(Grants g, ParseGrants(p));
  API_ASSIGN_OR_RETURN(SnapshotRecord s, OwnedSnapshot(x, c, p));
  API_RETURN_IF_ERROR(x.Authorize(c, "ModifySnapshotAttribute", {x.Arn(c, "snapshot", s.snapshot_id)}, s.tags));
  if (std::find(g.add.begin(), g.add.end(), "all") != g.add.end()) {
    if (s.encrypted)
      return Fail(ec2::kInvalidParameterValue, "Encrypted snapshots cannot be made public (group all).");
    if (!x.options.allow_public_sharing)
      return Fail(ec2::kInvalidParameterValue,
                  "Sharing with every account (group all) is turned off on this service; share with account ids, "
                  "or ask an operator to start snapvold with --allow-public-sharing.");
  }
  API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
  if (dry) return DryRunOk();
  if (s.state != SnapshotState::kCompleted)
    return Fail(ec2::kIncorrectState, "The snapshot '" + s.snapshot_id + "' is not completed; only a completed snapshot can be shared.");
  auto st = x.catalog->Transaction([&]() -> Status {
    if (!g.remove.empty()) RETURN_IF_ERROR(x.catalog->RemoveSnapshotPermissions(s.snapshot_id, g.remove));
    if (!g.add.empty()) RETURN_IF_ERROR(x.catalog->AddSnapshotPermissions(s.snapshot_id, g.add));
    return OkStatus();
  });
  if (!st) return std::unexpected(FromError(st.error()));
  return RenderReturnTrue("ModifySnapshotAttribute", rid);
}

ApiResult<std::string> ResetSnapshotAttribute(Ec2Context& x, const Caller& c, const QueryParams& p, const std::string& rid) {
  API_RETURN_IF_ERROR(CheckAttribute(p, true));
  API_ASSIGN_OR_RETURN(SnapshotRecord s, OwnedSnapshot(x, c, p));
  API_RETURN_IF_ERROR(x.Authorize(c, "ResetSnapshotAttribute", {x.Arn(c, "snapshot", s.snapshot_id)}, s.tags));
  API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
  if (dry) return DryRunOk();
  auto st = x.catalog->ResetSnapshotPermissions(s.snapshot_id);
  if (!st) return std::unexpected(FromError(st.error()));
  return RenderReturnTrue("ResetSnapshotAttribute", rid);
}

}  // namespace

std::span<const Ec2Action> SnapshotAttributeActions() {
  static constexpr std::string_view kDescribe[] = {"SnapshotId", "Attribute", "DryRun"};
  static constexpr std::string_view kModify[] = {"SnapshotId", "Attribute", "CreateVolumePermission.Add.",
                                                 "CreateVolumePermission.Remove.", "OperationType",
                                                 "UserId.", "UserGroup.", "DryRun"};
  static constexpr std::string_view kReset[] = {"SnapshotId", "Attribute", "DryRun"};
  static constexpr Ec2Action kActions[] = {
      {"DescribeSnapshotAttribute", kDescribe, &DescribeSnapshotAttribute},
      {"ModifySnapshotAttribute", kModify, &ModifySnapshotAttribute},
      {"ResetSnapshotAttribute", kReset, &ResetSnapshotAttribute},
  };
  return kActions;
}

}  // namespace snapvol::api
