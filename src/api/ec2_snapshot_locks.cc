// The EC2 snapshot lock actions: LockSnapshot, UnlockSnapshot and DescribeLockedSnapshots. The
// rules a lock change must follow are in snapshot_locks.h.
#include <set>

#include "api/ec2_context.h"
#include "api/snapshot_locks.h"
#include "api/xml_writer.h"
#include "core/clock.h"
#include "core/ids.h"

namespace snapvol::api {
namespace {

ApiResult<std::optional<SnapshotLockRecord>> CurrentLock(Ec2Context& x, const std::string& id) {
  auto l = x.catalog->GetSnapshotLock(id);
  if (l) return std::optional<SnapshotLockRecord>(*l);
  if (l.error().code() == ErrorCode::kNotFound) return std::optional<SnapshotLockRecord>();
  return std::unexpected(FromError(l.error()));
}

ApiResult<std::string> LockSnapshot(Ec2Context& x, const Caller& c, const QueryParams& p, const std::string& rid) {
  API_ASSIGN_OR_RETURN(std::string id, p.GetString("SnapshotId"));
  API_ASSIGN_OR_RETURN(SnapshotRecord s, x.VisibleSnapshot(c, id));
  API_RETURN_IF_ERROR(x.Authorize(c, "LockSnapshot", {x.Arn(c, "snapshot", id)}, s.tags));
  LockRequest req;
  API_ASSIGN_OR_RETURN(req.mode, p.GetString("LockMode"));
  API_ASSIGN_OR_RETURN(req.cool_off_hours, p.GetOptionalInt("CoolOffPeriod", 1, 72));
  API_ASSIGN_OR_RETURN(req.duration_days, p.GetOptionalInt("LockDuration", 1, 36500));
  if (auto when = p.GetOptionalString("ExpirationDate")) {
    auto ms = ParseIso8601(*when);
    if (!ms)
      return std::unexpected(InvalidParameterValue("ExpirationDate", *when, "Expected a UTC time like 2027-01-01T00:00:00Z."));
    req.expiration_ms = *ms;
  }
  API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
  if (dry) return DryRunOk();
  if (s.state != SnapshotState::kCompleted)
    return Fail(ec2::kIncorrectState, "The snapshot '" + id + "' is not completed; only a completed snapshot can be locked.");
  std::lock_guard changing(x.lock_change_mu);
  const int64_t now = x.clock->NowMillis();
  API_ASSIGN_OR_RETURN(auto current, CurrentLock(x, id));
  API_ASSIGN_OR_RETURN(SnapshotLockRecord next, NextLock(id, s.account_id, current, req, now));
  if (auto st = x.catalog->PutSnapshotLock(next); !st) {
    if (st.error().code() == ErrorCode::kNotFound) return std::unexpected(NotFoundSnapshot(id));
    return std::unexpected(FromError(st.error()));
  }
  XmlWriter w = BeginEc2Response("LockSnapshot", rid);
  w.Text("snapshotId", id);
  WriteLockFields(w, next, now);
  return std::move(w).Finish();
}

ApiResult<std::string> UnlockSnapshot(Ec2Context& x, const Caller& c, const QueryParams& p, const std::string& rid) {
  API_ASSIGN_OR_RETURN(std::string id, p.GetString("SnapshotId"));
  API_ASSIGN_OR_RETURN(SnapshotRecord s, x.VisibleSnapshot(c, id));
  API_RETURN_IF_ERROR(x.Authorize(c, "UnlockSnapshot", {x.Arn(c, "snapshot", id)}, s.tags));
  API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
  if (dry) return DryRunOk();
  std::lock_guard changing(x.lock_change_mu);
  API_ASSIGN_OR_RETURN(auto current, CurrentLock(x, id));
  if (!current) return Fail(ec2::kIncorrectState, "The snapshot '" + id + "' is not locked.");
  API_RETURN_IF_ERROR(CheckUnlock(*current, x.clock->NowMillis()));
  if (auto st = x.catalog->DeleteSnapshotLock(id); !st && st.error().code() != ErrorCode::kNotFound)
    return std::unexpected(FromError(st.error()));
  XmlWriter w = BeginEc2Response("UnlockSnapshot", rid);
  w.Text("snapshotId", id);
  return std::move(w).Finish();
}

// A lock as DescribeLockedSnapshots shows it, with its state at the time of the request.
struct LockView {
  SnapshotLockRecord lock;
  std::string state;
};

using Out = std::vector<std::string>;
constexpr FilterField<LockView> kLockFields[] = {
    {"lock-state", [](const LockView& l, Out& o) { o.push_back(l.state); }},
};

ApiResult<std::string> DescribeLockedSnapshots(Ec2Context& x, const Caller& c, const QueryParams& p, const std::string& rid) {
  API_ASSIGN_OR_RETURN(std::vector<std::string> ids, p.GetList("SnapshotId"));
  for (const auto& id : ids)
    if (!IsSnapshotId(id)) return std::unexpected(MalformedId("InvalidSnapshotID.Malformed", id, "snap-"));
  API_ASSIGN_OR_RETURN(std::vector<QueryFilter> filters, p.GetFilters());
  for (const auto& f : filters)
    for (const auto& v : f.values)
      if (f.name == "lock-state" && v != "compliance-cooloff" && v != "governance" && v != "compliance" && v != "expired")
        return std::unexpected(InvalidParameterValue("lock-state", v, "Expecting compliance-cooloff, governance, compliance or expired."));
  API_ASSIGN_OR_RETURN(auto matcher, ResourceMatcher<LockView>::Create(filters, kLockFields, nullptr));
  API_ASSIGN_OR_RETURN(PageRequest page_req, ParsePageRequest(p));
  API_RETURN_IF_ERROR(x.Authorize(c, "DescribeLockedSnapshots", {}));
  API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
  if (dry) return DryRunOk();
  auto locks = x.catalog->ListSnapshotLocks(c.account_id);
  if (!locks) return std::unexpected(FromError(locks.error()));
  const int64_t now = x.clock->NowMillis();
  const std::set<std::string> wanted(ids.begin(), ids.end());
  std::vector<LockView> views;
  for (auto& l : *locks) {
    if (!wanted.empty() && !wanted.count(l.snapshot_id)) continue;
    std::string state = LockStateAt(l, now);
    views.push_back({std::move(l), std::move(state)});
  }
  KeepMatching(views, matcher);
  const std::string scope = "DescribeLockedSnapshots:" + c.account_id;
  API_ASSIGN_OR_RETURN(auto page, Paginate(std::move(views), [](const LockView& l) -> const std::string& {
    return l.lock.snapshot_id;
  }, page_req, *x.tokens, scope));
  XmlWriter w = BeginEc2Response("DescribeLockedSnapshots", rid);
  w.Open("snapshotSet");
  for (const auto& l : page.items) {
    w.Open("item");
    w.Text("ownerId", l.lock.account_id);
    w.Text("snapshotId", l.lock.snapshot_id);
    WriteLockFields(w, l.lock, now);
    w.Close();
  }
  w.Close();
  if (!page.next_token.empty()) w.Text("nextToken", page.next_token);
  return std::move(w).Finish();
}

}  // namespace

std::span<const Ec2Action> SnapshotLockActions() {
  static constexpr std::string_view kLock[] = {"SnapshotId", "LockMode", "CoolOffPeriod", "LockDuration",
                                               "ExpirationDate", "DryRun"};
  static constexpr std::string_view kUnlock[] = {"SnapshotId", "DryRun"};
  static constexpr std::string_view kDescribe[] = {"SnapshotId.", "Filter.", "MaxResults", "NextToken", "DryRun"};
  static constexpr Ec2Action kActions[] = {
      {"LockSnapshot", kLock, &LockSnapshot},
      {"UnlockSnapshot", kUnlock, &UnlockSnapshot},
      {"DescribeLockedSnapshots", kDescribe, &DescribeLockedSnapshots},
  };
  return kActions;
}

}  // namespace snapvol::api
