// The EC2 actions on snapshots: CreateSnapshot, CreateSnapshots, CopySnapshot,
// DescribeSnapshots and DeleteSnapshot. Snapshots shared with an account (createVolumePermission,
// see ec2_snapshot_attributes.cc) are visible to it in DescribeSnapshots and may be copied.
#include <algorithm>
#include <set>

#include "api/ec2_context.h"
#include "core/ids.h"
#include "engine/snapshot_deletion.h"

namespace snapvol::api {
namespace {

ApiStatus RefuseOutposts(const QueryParams& p) {
  if (p.Has("OutpostArn"))
    return Fail(ec2::kUnsupportedOperation, "Outposts are not supported: snapshots are kept in this service's store (OutpostArn).");
  return {};
}

// Encrypted (CopySnapshot): the store encrypts every snapshot or none, so true is refused on a
// store that cannot encrypt, and false on one that does is answered with the truth (true).
ApiResult<bool> EncryptedParam(Ec2Context& x, const QueryParams& p) {
  API_ASSIGN_OR_RETURN(auto want, p.GetOptionalBool("Encrypted"));
  const bool store = x.repo->encrypted();
  if (want && *want && !store)
    return Fail(ec2::kInvalidParameterValue, "Encrypted=true is not possible: this service's snapshot store is not encrypted.");
  return store;
}


ApiResult<std::string> CreateSnapshot(Ec2Context& x, const Caller& c, const QueryParams& p, const std::string& rid) {
  API_RETURN_IF_ERROR(RefuseOutposts(p));
  API_ASSIGN_OR_RETURN(std::string volume_id, p.GetString("VolumeId"));
  std::string description = p.GetOptionalString("Description").value_or("");
  API_RETURN_IF_ERROR(CheckDescription(description));
  API_ASSIGN_OR_RETURN(std::vector<Tag> tags, x.TagsFromSpecifications(p, "snapshot"));
  API_ASSIGN_OR_RETURN(VolumeRecord vol, x.VisibleVolume(c, volume_id));
  if (vol.state == "creating" || vol.state == "error")
    return Fail(ec2::kIncorrectState, "The volume '" + volume_id + "' is " + vol.state + ".");
  API_RETURN_IF_ERROR(x.Authorize(c, "CreateSnapshot", {x.Arn(c, "volume", volume_id), x.Arn(c, "snapshot", "*")}, vol.tags));
  API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
  if (dry) return DryRunOk();
  auto started = x.jobs->Start({{vol, description, tags, x.clock->NowMillis(), false}});
  if (!started) return std::unexpected(FromErrorWithLimit(started.error(), ec2::kSnapshotLimitExceeded));
  return RenderCreateSnapshot(rid, x.ToEc2(started->front()));
}

ApiResult<std::string> CreateSnapshots(Ec2Context& x, const Caller& c, const QueryParams& p, const std::string& rid) {
  API_RETURN_IF_ERROR(RefuseOutposts(p));
  API_ASSIGN_OR_RETURN(QueryInstanceSpecification spec, p.GetInstanceSpecification());
  std::string description = p.GetOptionalString("Description").value_or("");
  API_RETURN_IF_ERROR(CheckDescription(description));
  auto copy_tags = p.GetOptionalString("CopyTagsFromSource");
  if (copy_tags && *copy_tags != "volume")
    return Fail(ec2::kInvalidParameterValue, "Value for parameter CopyTagsFromSource must be 'volume'.");
  API_ASSIGN_OR_RETURN(std::vector<Tag> tags, x.TagsFromSpecifications(p, "snapshot"));
  API_ASSIGN_OR_RETURN(InstanceRecord inst, x.VisibleInstance(c, spec.instance_id));
  auto vols = x.catalog->ListVolumes(inst.account_id);
  if (!vols) return std::unexpected(FromError(vols.error()));
  for (const auto& id : spec.exclude_data_volume_ids) {
    bool attached = std::any_of(vols->begin(), vols->end(), [&](const auto& v) {
      return v.volume_id == id && v.instance_id == spec.instance_id;
    });
    if (std::any_of(vols->begin(), vols->end(), [&](const auto& v) { return v.volume_id == id && v.boot; }))
      return Fail(ec2::kInvalidParameterValue, "The volume '" + id + "' is the boot volume of " + spec.instance_id +
                                                   ": use ExcludeBootVolume, not ExcludeDataVolumeId.");
    if (!attached) return Fail(ec2::kInvalidParameterValue, "The volume '" + id + "' is not attached to " + spec.instance_id + ".");
  }
  // One instant for the whole call: every volume's snapshot carries the same StartTime.
  const int64_t now = x.clock->NowMillis();
  std::vector<SnapshotJobRequest> reqs;
  std::vector<std::string> resources = {x.Arn(c, "instance", spec.instance_id), x.Arn(c, "snapshot", "*")};
  for (const auto& v : *vols) {
    if (v.instance_id != spec.instance_id) continue;
    if (v.boot && spec.exclude_boot_volume) continue;
    if (!v.boot && std::find(spec.exclude_data_volume_ids.begin(), spec.exclude_data_volume_ids.end(),
                             v.volume_id) != spec.exclude_data_volume_ids.end())
      continue;
    std::vector<Tag> t = tags;
    if (copy_tags)
      for (const auto& vt : v.tags)
        // The volume's system tags (where it lives) are not the snapshot's to carry.
        if (!HasReservedTagPrefix(vt.key) && std::none_of(t.begin(), t.end(), [&](const Tag& have) { return have.key == vt.key; })) t.push_back(vt);
    reqs.push_back({v, description, t, now, false});
    resources.push_back(x.Arn(c, "volume", v.volume_id));
  }
  API_RETURN_IF_ERROR(x.Authorize(c, "CreateSnapshots", resources));
  if (auto one_host = CheckCutOnOneHost(*x.catalog, reqs, spec.instance_id); !one_host) {
    if (one_host.error().code() != ErrorCode::kInvalidArgument) return std::unexpected(FromError(one_host.error()));
    return Fail(ec2::kInvalidParameterCombination, one_host.error().message());
  }
  API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
  if (dry) return DryRunOk();
  std::vector<Ec2Snapshot> out;
  if (!reqs.empty()) {
    // All or none: the quota counts every volume's snapshot of the call.
    // The instance's freeze hooks, if an administrator set any, run around the cut.
    auto started = x.jobs->Start(reqs, spec.instance_id);
    if (!started) return std::unexpected(FromErrorWithLimit(started.error(), ec2::kSnapshotLimitExceeded));
    for (const auto& r : *started) out.push_back(x.ToEc2(r));
  }
  return RenderCreateSnapshots(rid, out);
}

ApiResult<std::string> CopySnapshot(Ec2Context& x, const Caller& c, const QueryParams& p, const std::string& rid) {
  API_ASSIGN_OR_RETURN(std::string src_id, p.GetString("SourceSnapshotId"));
  API_ASSIGN_OR_RETURN(std::string region, p.GetString("SourceRegion"));
  if (region != x.options.region)
    return Fail(ec2::kInvalidParameterValue, "Copying from region '" + region + "' is not supported; this service is " + x.options.region + ".");
  // The CLI adds DestinationRegion and a PresignedUrl for the source region: both must name
  // this service's region, the only one there is.
  if (auto dest = p.GetOptionalString("DestinationRegion"); dest && *dest != x.options.region)
    return Fail(ec2::kInvalidParameterValue, "Copying to region '" + *dest + "' is not supported; this service is " + x.options.region + ".");
  if (auto url = p.GetOptionalString("PresignedUrl"); url && url->find("SourceSnapshotId=" + src_id) == std::string::npos)
    return Fail(ec2::kInvalidParameterValue, "PresignedUrl must be a CopySnapshot request for SourceSnapshotId " + src_id + ".");
  std::string description = p.GetOptionalString("Description").value_or("");
  API_RETURN_IF_ERROR(CheckDescription(description));
  API_ASSIGN_OR_RETURN(std::vector<Tag> tags, x.TagsFromSpecifications(p, "snapshot"));
  API_ASSIGN_OR_RETURN(bool encrypted, EncryptedParam(x, p));
  API_ASSIGN_OR_RETURN(SnapshotRecord src, x.ReadableSnapshot(c, src_id));
  API_RETURN_IF_ERROR(x.Authorize(c, "CopySnapshot", {x.Arn(c, "snapshot", src_id), x.Arn(c, "snapshot", "*")}, src.tags));
  API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
  if (dry) return DryRunOk();
  if (src.state != SnapshotState::kCompleted)
    return Fail(ec2::kIncorrectState, "Snapshot '" + src_id + "' is not completed.");
  // The quota before the new root is written (a root taken back is kept under deleted/ until
  // GC); InsertSnapshot decides again where concurrent copies cannot both pass.
  if (auto room = x.catalog->CheckSnapshotQuota(c.account_id, 1); !room)
    return std::unexpected(FromErrorWithLimit(room.error(), ec2::kSnapshotLimitExceeded));
  auto meta = x.repo->GetManifest(src_id);
  if (!meta) return std::unexpected(FromError(meta.error()));
  // A copy shares every chunk and page: only a new root is written.
  ManifestMeta copy = *meta;
  copy.snapshot_id = NewSnapshotId();
  copy.description = description;
  copy.tags.clear();
  for (const auto& t : tags) copy.tags.emplace_back(t.key, t.value);
  copy.start_time_ms = x.clock->NowMillis();
  copy.completed_time_ms = copy.start_time_ms;
  copy.stored_bytes = 0;
  copy.owner_id = c.account_id;  // a copy of a snapshot shared with the caller is the caller's
  auto put = x.repo->PutManifest(copy);
  if (!put) return std::unexpected(FromError(put.error()));
  SnapshotRecord rec = src;
  rec.account_id = c.account_id;
  rec.encrypted = encrypted || src.encrypted;
  rec.snapshot_id = copy.snapshot_id;
  rec.description = description;
  rec.tags = tags;
  rec.start_time_ms = copy.start_time_ms;
  rec.completed_time_ms = copy.completed_time_ms;
  rec.stored_bytes = 0;
  rec.runner.clear();
  rec.parent_snapshot_id = src.parent_snapshot_id;
  // The catalog decides the snapshot quota as it inserts the row; a refusal takes the new
  // root away again, so nothing of the copy is left.
  auto ins = x.catalog->InsertSnapshot(rec);
  if (!ins) {
    (void)x.repo->DeleteManifest(copy.snapshot_id);
    return std::unexpected(FromErrorWithLimit(ins.error(), ec2::kSnapshotLimitExceeded));
  }
  std::vector<Ec2Tag> etags = ToEc2Tags(tags);
  return RenderCopySnapshot(rid, copy.snapshot_id, etags);
}


// DescribeSnapshots. Which snapshots (EC2's rules): SnapshotId.N names them (each must exist
// and be readable by the caller); Owner.N keeps those of the named owners the caller may read
// ("self": its own; another account id: that account's snapshots shared with the caller, or
// all of them for an administrator; "amazon": none); without ids or owners, the caller's own
// and those shared with it. RestorableBy.N keeps those with create-volume permission for the
// named users: an account id (of snapshots the caller owns shared with it), "self" (owned by
// or shared explicitly with the caller) or "all" (public). Then filters, then paging.
ApiResult<std::string> DescribeSnapshots(Ec2Context& x, const Caller& c, const QueryParams& p, const std::string& rid) {
  API_ASSIGN_OR_RETURN(DescribeSnapshotsRequest req, ParseDescribeSnapshotsRequest(p));
  API_RETURN_IF_ERROR(x.Authorize(c, "DescribeSnapshots", {}));
  if (req.dry_run) return DryRunOk();
  for (const auto& id : req.snapshot_ids)
    if (!IsSnapshotId(id)) return std::unexpected(MalformedId("InvalidSnapshotID.Malformed", id, "snap-"));
  if (!req.snapshot_ids.empty() && req.page.max_results)
    return Fail(ec2::kInvalidParameterCombination, "The parameter SnapshotIds cannot be used with the parameter MaxResults");
  for (const auto& r : req.restorable_by)
    if (r != "self" && r != "all" && !IsAccountId(r))
      return Fail("InvalidUserID.Malformed", "The user ID '" + r + "' in RestorableBy is not valid (expecting an account id, self or all).");
  for (const auto& o : req.owner_ids)
    if (o != "self" && o != "amazon" && o != "aws-marketplace" && !IsAccountId(o))
      return Fail("InvalidUserID.Malformed", "The owner '" + o + "' is not valid (expecting an account id, self, amazon or aws-marketplace).");
  const std::string scope = "DescribeSnapshots:" + c.account_id;
  std::set<std::string> owners;
  for (const auto& o : req.owner_ids) owners.insert(o == "self" ? c.account_id : o);
  // The common paged listing (the caller's own, no ids, no filters) reads one page from the
  // catalog instead of every snapshot, on a reader connection. Tokens are the same as the
  // general path's.
  const bool paged_own = req.filters.empty() && req.snapshot_ids.empty() && req.restorable_by.empty() &&
                         req.page.max_results.has_value();
  bool only_own = owners == std::set<std::string>{c.account_id};
  if (paged_own && req.owner_ids.empty()) {
    auto any_shared = x.catalog->AnySnapshotsSharedWith(c.account_id);
    if (!any_shared) return std::unexpected(FromError(any_shared.error()));
    only_own = !*any_shared;
  }
  if (paged_own && only_own) {
    if (*req.page.max_results < kMinMaxResults)
      return std::unexpected(InvalidParameterValue("MaxResults", std::to_string(*req.page.max_results),
                                                   "Expecting a value greater than or equal to 5."));
    size_t take = static_cast<size_t>(std::min(*req.page.max_results, kMaxMaxResults));
    std::string after;
    if (!req.page.next_token.empty()) {
      API_ASSIGN_OR_RETURN(after, x.tokens->Decode(scope, req.page.next_token));
    }
    auto page = x.catalog->ListSnapshotsPage(c.account_id, after, take + 1);
    if (!page) return std::unexpected(FromError(page.error()));
    std::string next;
    if (page->size() > take) {
      page->resize(take);
      next = x.tokens->Encode(scope, page->back().snapshot_id);
    }
    AliasCache aliases(x.catalog);
    std::vector<Ec2Snapshot> out;
    out.reserve(page->size());
    for (const auto& sn : *page) out.push_back(x.ToEc2(sn, aliases));
    return RenderDescribeSnapshots(rid, out, next);
  }
  auto shared = x.catalog->ListSnapshotsSharedWith(c.account_id);
  if (!shared) return std::unexpected(FromError(shared.error()));
  std::set<std::string> shared_ids;
  for (const auto& s : *shared) shared_ids.insert(s.snapshot_id);
  std::vector<SnapshotRecord> rows;
  if (!req.snapshot_ids.empty()) {
    auto got = x.catalog->ListSnapshots({.snapshot_ids = req.snapshot_ids});
    if (!got) return std::unexpected(FromError(got.error()));
    for (auto& s : *got)
      if (s.account_id == c.account_id || c.admin || shared_ids.count(s.snapshot_id)) rows.push_back(std::move(s));
    for (const auto& id : req.snapshot_ids)
      if (std::none_of(rows.begin(), rows.end(), [&](const auto& s) { return s.snapshot_id == id; }))
        return std::unexpected(NotFoundSnapshot(id));
    // Owner.N still applies: only the named owners' snapshots among those ids.
    if (!owners.empty()) std::erase_if(rows, [&](const SnapshotRecord& s) { return !owners.count(s.account_id); });
  } else {
    const bool all_owners = req.owner_ids.empty();
    if (all_owners || owners.count(c.account_id)) {
      auto own = x.catalog->ListSnapshots({.account_id = c.account_id});
      if (!own) return std::unexpected(FromError(own.error()));
      rows = std::move(*own);
    }
    for (const auto& o : owners) {
      if (o == c.account_id || !IsAccountId(o)) continue;
      if (!c.admin) continue;  // others' snapshots come from the shared list below
      auto theirs = x.catalog->ListSnapshots({.account_id = o});
      if (!theirs) return std::unexpected(FromError(theirs.error()));
      for (auto& s : *theirs) {
        shared_ids.erase(s.snapshot_id);  // listed here already
        rows.push_back(std::move(s));
      }
    }
    for (auto& s : *shared)
      if (shared_ids.count(s.snapshot_id) && (all_owners || owners.count(s.account_id))) rows.push_back(std::move(s));
  }
  if (!req.restorable_by.empty()) {
    std::vector<std::string> ids;
    for (const auto& s : rows) ids.push_back(s.snapshot_id);
    auto all_grants = x.catalog->ListSnapshotPermissions(ids);  // one query per chunk, not per snapshot
    if (!all_grants) return std::unexpected(FromError(all_grants.error()));
    std::vector<SnapshotRecord> kept;
    for (auto& s : rows) {
      auto it = all_grants->find(s.snapshot_id);
      const auto granted = [&](const std::string& who) {
        return it != all_grants->end() && std::find(it->second.begin(), it->second.end(), who) != it->second.end();
      };
      bool keep = false;
      for (const auto& r : req.restorable_by) {
        if (r == "all") keep = keep || granted("all");
        else if (r == "self") keep = keep || s.account_id == c.account_id || granted(c.account_id);
        else keep = keep || ((s.account_id == c.account_id || c.admin) && granted(r));
      }
      if (keep) kept.push_back(std::move(s));
    }
    rows = std::move(kept);
  }
  std::vector<Ec2Snapshot> snaps;
  AliasCache aliases(x.catalog);
  for (const auto& s : rows) snaps.push_back(x.ToEc2(s, aliases));
  API_ASSIGN_OR_RETURN(snaps, FilterSnapshots(std::move(snaps), req.filters));
  API_ASSIGN_OR_RETURN(SnapshotPage page, PaginateSnapshots(std::move(snaps), req.page, *x.tokens, scope));
  return RenderDescribeSnapshots(rid, page.snapshots, page.next_token);
}

ApiResult<std::string> DeleteSnapshot(Ec2Context& x, const Caller& c, const QueryParams& p, const std::string& rid) {
  API_ASSIGN_OR_RETURN(std::string id, p.GetString("SnapshotId"));
  API_ASSIGN_OR_RETURN(SnapshotRecord s, x.VisibleSnapshot(c, id));
  API_RETURN_IF_ERROR(x.Authorize(c, "DeleteSnapshot", {x.Arn(c, "snapshot", id)}, s.tags));
  API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
  if (dry) return DryRunOk();
  // engine/snapshot_deletion.h: pending, loading volumes and locks are refused there, and a
  // retention rule in force now keeps it in the Recycle Bin instead.
  auto del = snapvol::DeleteSnapshot({.catalog = x.catalog, .repo = x.repo, .recycle_bin = x.recycle_bin}, id,
                                     x.clock->NowMillis());
  if (!del && del.error().code() == ErrorCode::kConflict)
    return Fail(ec2::kIncorrectState, "The snapshot '" + id + "' cannot be deleted: " + del.error().message() + ".");
  if (!del) return std::unexpected(FromError(del.error()));
  return RenderReturnTrue("DeleteSnapshot", rid);
}

}  // namespace

std::span<const Ec2Action> SnapshotActions() {
  static constexpr std::string_view kCreate[] = {"VolumeId", "Description", "TagSpecification.", "DryRun", "OutpostArn"};
  static constexpr std::string_view kCreateMany[] = {"InstanceSpecification.", "Description", "TagSpecification.",
                                                     "CopyTagsFromSource", "DryRun", "OutpostArn"};
  static constexpr std::string_view kCopy[] = {"SourceSnapshotId", "SourceRegion", "Description", "TagSpecification.",
                                               "DryRun", "Encrypted", "PresignedUrl", "DestinationRegion"};
  static constexpr std::string_view kDescribe[] = {"SnapshotId.", "Owner.", "RestorableBy.", "Filter.",
                                                   "MaxResults", "NextToken", "DryRun"};
  static constexpr std::string_view kDelete[] = {"SnapshotId", "DryRun"};
  static constexpr Ec2Action kActions[] = {
      {"CreateSnapshot", kCreate, &CreateSnapshot},       {"CreateSnapshots", kCreateMany, &CreateSnapshots},
      {"CopySnapshot", kCopy, &CopySnapshot},             {"DescribeSnapshots", kDescribe, &DescribeSnapshots},
      {"DeleteSnapshot", kDelete, &DeleteSnapshot},
  };
  return kActions;
}

}  // namespace snapvol::api
