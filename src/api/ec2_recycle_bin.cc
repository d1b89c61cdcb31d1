// EC2's two Recycle Bin actions: ListSnapshotsInRecycleBin (SnapshotId.N, MaxResults 5-1000,
// NextToken) and RestoreSnapshotFromRecycleBin (SnapshotId). A member sees and restores its
// own account's binned snapshots; an administrator those of every account. The domain rules
// (which rule keeps a snapshot, the store's bin/ roots) are in engine/recycle_bin.h.
#include <set>

#include "api/ec2_context.h"
#include "api/xml_writer.h"
#include "core/clock.h"
#include "core/ids.h"
#include "engine/recycle_bin.h"

namespace snapvol::api {
namespace {

ApiResult<std::string> ListSnapshotsInRecycleBin(Ec2Context& x, const Caller& c, const QueryParams& p,
                                                 const std::string& rid) {
  API_ASSIGN_OR_RETURN(std::vector<std::string> ids, p.GetList("SnapshotId"));
  for (const auto& id : ids)
    if (!IsSnapshotId(id)) return std::unexpected(MalformedId("InvalidSnapshotID.Malformed", id, "snap-"));
  API_ASSIGN_OR_RETURN(PageRequest page_req, ParsePageRequest(p, PageBounds{5, 1000}));
  API_RETURN_IF_ERROR(x.Authorize(c, "ListSnapshotsInRecycleBin", {x.Arn(c, "snapshot", "*")}));
  API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
  if (dry) return DryRunOk();
  auto rows = x.catalog->ListBinnedSnapshots(c.admin ? std::nullopt : std::optional<std::string>(c.account_id));
  if (!rows) return std::unexpected(FromError(rows.error()));
  const std::set<std::string> wanted(ids.begin(), ids.end());
  const int64_t now = x.clock->NowMillis();
  std::vector<BinnedSnapshotRecord> shown;
  for (auto& b : *rows) {
    if (b.exit_ms <= now) continue;  // its retention ended: being deleted for good
    if (!wanted.empty() && !wanted.count(b.snapshot.snapshot_id)) continue;
    shown.push_back(std::move(b));
  }
  const std::string scope = "ListSnapshotsInRecycleBin:" + c.account_id;
  API_ASSIGN_OR_RETURN(auto page, Paginate(std::move(shown), [](const BinnedSnapshotRecord& b) -> const std::string& {
    return b.snapshot.snapshot_id;
  }, page_req, *x.tokens, scope, PageBounds{5, 1000}));
  XmlWriter w = BeginEc2Response("ListSnapshotsInRecycleBin", rid);
  w.Open("snapshotSet");
  for (const auto& b : page.items) {
    w.Open("item");
    w.Text("snapshotId", b.snapshot.snapshot_id);
    w.Timestamp("recycleBinEnterTime", b.entered_ms);
    w.Timestamp("recycleBinExitTime", b.exit_ms);
    w.Text("description", b.snapshot.description);
    w.Text("volumeId", b.snapshot.volume_id);
    w.Close();
  }
  w.Close();
  if (!page.next_token.empty()) w.Text("nextToken", page.next_token);
  return std::move(w).Finish();
}

ApiResult<std::string> RestoreSnapshotFromRecycleBin(Ec2Context& x, const Caller& c, const QueryParams& p,
                                                     const std::string& rid) {
  API_ASSIGN_OR_RETURN(std::string id, p.GetString("SnapshotId"));
  if (!IsSnapshotId(id)) return std::unexpected(MalformedId("InvalidSnapshotID.Malformed", id, "snap-"));
  auto b = x.catalog->GetBinnedSnapshot(id);
  if (!b && b.error().code() != ErrorCode::kNotFound) return std::unexpected(FromError(b.error()));
  if (!b || (b->snapshot.account_id != c.account_id && !c.admin)) return std::unexpected(NotFoundSnapshot(id));
  if (b->snapshot.account_id != c.account_id && c.record) c.record->resource_account_id = b->snapshot.account_id;
  API_RETURN_IF_ERROR(x.Authorize(c, "RestoreSnapshotFromRecycleBin",
                                  {iam::Ec2Arn(x.options.region, b->snapshot.account_id, "snapshot", id)},
                                  b->snapshot.tags));
  API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
  if (dry) return DryRunOk();
  auto st = RestoreSnapshotFromBin(x.catalog, x.repo, id, x.clock->NowMillis());
  if (!st && st.error().code() == ErrorCode::kNotFound) return std::unexpected(NotFoundSnapshot(id));
  if (!st && st.error().code() == ErrorCode::kConflict) return Fail(ec2::kIncorrectState, st.error().message());
  if (!st) return std::unexpected(FromError(st.error()));
  const SnapshotRecord& s = b->snapshot;
  Ec2Snapshot e = x.ToEc2(s);
  XmlWriter w = BeginEc2Response("RestoreSnapshotFromRecycleBin", rid);
  w.Text("snapshotId", s.snapshot_id);
  w.Text("description", s.description);
  w.Bool("encrypted", s.encrypted);
  w.Text("ownerId", s.account_id);
  w.Text("progress", e.progress);
  w.Timestamp("startTime", s.start_time_ms);
  w.Text("status", e.state);
  w.Text("volumeId", s.volume_id);
  w.Int("volumeSize", e.volume_size_gib);
  return std::move(w).Finish();
}

}  // namespace

std::span<const Ec2Action> RecycleBinActions() {
  static constexpr std::string_view kList[] = {"SnapshotId.", "MaxResults", "NextToken", "DryRun"};
  static constexpr std::string_view kRestore[] = {"SnapshotId", "DryRun"};
  static constexpr Ec2Action kActions[] = {
      {"ListSnapshotsInRecycleBin", kList, &ListSnapshotsInRecycleBin},
      {"RestoreSnapshotFromRecycleBin", kRestore, &RestoreSnapshotFromRecycleBin},
  };
  return kActions;
}

}  // namespace snapvol::api
