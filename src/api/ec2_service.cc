#include "api/ec2_service.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <algorithm>
#include <array>
#include <nlohmann/json.hpp>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "api/ec2_shapes.h"
#include "api/query_params.h"
#include "api/snapshot_locks.h"
#include "api/xml_writer.h"
#include "core/clock.h"
#include "core/file_util.h"
#include "core/hash.h"
#include "core/ids.h"
#include "engine/snapshot_engine.h"
#include "iam/policy.h"
#include "lifecycle/policy_details.h"
#include "lifecycle/scheduler.h"
#include "volume/block_source.h"

namespace snapvol {

using api::ApiError;
using api::ApiResult;
using api::ApiStatus;
using api::QueryParams;

namespace {

constexpr uint64_t kGiB = 1ull << 30;
constexpr size_t kMaxDescriptionChars = 255;
constexpr char kUnauthorizedMessage[] = "You are not authorized to perform this operation.";

// Characters (code points) of UTF-8 text, as EC2 counts lengths.
size_t Chars(std::string_view s) {
  return static_cast<size_t>(std::count_if(s.begin(), s.end(), [](char ch) {
    return (static_cast<unsigned char>(ch) & 0xC0) != 0x80;
  }));
}

ApiStatus CheckDescription(const std::string& d) {
  if (Chars(d) > kMaxDescriptionChars)
    return api::ApiFail(api::ec2::kInvalidParameterValue,
                        "Value for parameter Description is too long (max 255 characters).");
  return {};
}

// Tags are checked before anything happens, DryRun included.
ApiStatus CheckTags(const std::vector<Tag>& tags, const char* what) {
  auto st = ValidateTagList(tags, what);
  if (!st) return api::ApiFail(api::ec2::kInvalidParameterValue, st.error().message());
  // snapvol's own tags (snapvol:policy-id, …) say which snapshots a lifecycle policy made and
  // may prune: nobody else may set them.
  for (const auto& t : tags)
    if (t.key.rfind("snapvol:", 0) == 0)
      return api::ApiFail(api::ec2::kInvalidParameterValue,
                          std::string(what) + ": tag keys starting with snapvol: are reserved (" + t.key + ")");
  return {};
}

int64_t SizeGib(uint64_t bytes) { return static_cast<int64_t>((bytes + kGiB - 1) / kGiB); }

std::string NewRequestId() {
  std::array<uint8_t, 16> r{};
  (void)RandomBytes(r);
  std::string h = ToHex(r);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20, 12);
}

std::unexpected<ApiError> Fail(std::string_view code, std::string message) {
  return api::ApiFail(code, std::move(message));
}

ApiError NotFoundSnapshot(const std::string& id) {
  return api::MakeApiError(api::ec2::kInvalidSnapshotNotFound,
                           "The snapshot '" + id + "' does not exist.");
}
ApiError NotFoundVolume(const std::string& id) {
  return api::MakeApiError(api::ec2::kInvalidVolumeNotFound, "The volume '" + id + "' does not exist.");
}

std::vector<api::Ec2Tag> ToEc2Tags(const std::vector<Tag>& tags) {
  std::vector<api::Ec2Tag> out;
  for (const auto& t : tags) out.push_back({t.key, t.value});
  return out;
}

// Converts a catalog error into the EC2 error a client expects.
ApiError FromCatalog(const Error& e) { return api::FromError(e); }

}  // namespace

struct Ec2Service::Caller {
  std::string account_id, alias, user, access_key_id;
  bool admin = false;                 // sees and restores every account's resources
  std::vector<iam::Policy> policies;  // attached to the account; IAM decides with these
  RequestRecord* record = nullptr;    // where decisions are noted; may be null
};

// What the JSON and DLM APIs share: the signature (for their own service names), the path's
// segments after prefix (kept empty ones: "/policies/id/" has a last empty segment), the query
// and the JSON object body, and the caller.
struct Ec2Service::RestCall {
  std::string method;
  std::vector<std::string> parts;
  std::multimap<std::string, std::string> query;
  nlohmann::json body;
};

struct Ec2Service::Impl {
  Catalog* catalog;
  Repository* repo;
  ThreadPool* pool;
  SnapshotJobs* jobs;
  Accounts* accounts;
  Ec2ServiceOptions options;
  Clock* clock;
  std::unique_ptr<iam::SigV4Verifier> verifier;       // service "ec2"
  std::unique_ptr<iam::SigV4Verifier> json_verifier;  // service "snapvol"
  std::unique_ptr<iam::SigV4Verifier> dlm_verifier;   // service "dlm"
  std::optional<api::PageTokenCodec> tokens;
  // LockSnapshot and UnlockSnapshot read a lock, judge the change and write it: one at a time,
  // so that two racing changes cannot both be judged against the old lock.
  std::mutex lock_change_mu;

  std::string Arn(const Caller& c, const std::string& type, const std::string& id) const {
    return "arn:aws:ec2:" + options.region + ":" + c.account_id + ":" + type + "/" + id;
  }

  // action is "service:Name"; a bare name is an EC2 action.
  ApiStatus Authorize(const Caller& c, const std::string& action, std::vector<std::string> resources,
                      const std::vector<Tag>& resource_tags = {}) const {
    iam::RequestContext ctx;
    ctx.action = action.find(':') == std::string::npos ? "ec2:" + action : action;
    ctx.resources = std::move(resources);
    if (ctx.resources.empty()) ctx.resources.push_back("*");
    ctx.condition_values["aws:PrincipalAccount"] = {c.account_id};
    for (const auto& t : resource_tags) ctx.condition_values["aws:ResourceTag/" + t.key] = {t.value};
    iam::Decision d = iam::Decide(c.policies, ctx);
    if (c.record) {
      if (!c.record->decision.empty()) c.record->decision += "; ";
      c.record->decision += d.ToString();
    }
    if (!d.allowed()) return Fail(api::ec2::kUnauthorizedOperation, kUnauthorizedMessage);
    return {};
  }

  // DryRun: after authorisation, answer DryRunOperation instead of acting.
  static ApiResult<bool> DryRun(const QueryParams& p) {
    API_ASSIGN_OR_RETURN(auto dry, p.GetOptionalBool("DryRun"));
    return dry.value_or(false);
  }
  static std::unexpected<ApiError> DryRunOk() {
    return Fail(api::ec2::kDryRunOperation, "Request would have succeeded, but DryRun flag is set.");
  }

  ApiResult<VolumeRecord> OwnVolume(const Caller& c, const std::string& id) const {
    if (!IsVolumeId(id))
      return Fail("InvalidVolumeID.Malformed", "Invalid id: \"" + id + "\" (expecting \"vol-...\")");
    auto v = catalog->GetVolume(id);
    if (!v) {
      if (v.error().code() == ErrorCode::kNotFound) return std::unexpected(NotFoundVolume(id));
      return std::unexpected(FromCatalog(v.error()));
    }
    if (v->account_id != c.account_id) return std::unexpected(NotFoundVolume(id));
    return *v;
  }

  ApiResult<SnapshotRecord> OwnSnapshot(const Caller& c, const std::string& id) const {
    if (!IsSnapshotId(id))
      return Fail("InvalidSnapshotID.Malformed", "Invalid id: \"" + id + "\" (expecting \"snap-...\")");
    auto s = catalog->GetSnapshot(id);
    if (!s) {
      if (s.error().code() == ErrorCode::kNotFound) return std::unexpected(NotFoundSnapshot(id));
      return std::unexpected(FromCatalog(s.error()));
    }
    // Administrators reach every account's snapshots (to restore them); others only their own.
    if (s->account_id != c.account_id && !c.admin) return std::unexpected(NotFoundSnapshot(id));
    return *s;
  }

  // Aliases of accounts, looked up once per request rather than once per snapshot.
  class AliasCache {
   public:
    explicit AliasCache(Catalog* catalog) : catalog_(catalog) {}
    const std::string& Get(const std::string& account_id) {
      auto it = aliases_.find(account_id);
      if (it != aliases_.end()) return it->second;
      auto acct = catalog_->GetAccount(account_id);
      return aliases_[account_id] = acct ? acct->alias : "";
    }

   private:
    Catalog* catalog_;
    std::map<std::string, std::string> aliases_;
  };

  api::Ec2Snapshot ToEc2(const SnapshotRecord& s) const {
    AliasCache aliases(catalog);
    return ToEc2(s, aliases);
  }

  api::Ec2Snapshot ToEc2(const SnapshotRecord& s, AliasCache& aliases) const {
    api::Ec2Snapshot e;
    e.snapshot_id = s.snapshot_id;
    e.volume_id = s.volume_id;
    e.volume_size_gib = SizeGib(s.volume_size_bytes);
    e.state = SnapshotStateName(s.state);
    e.state_message = s.state_message;
    e.start_time_ms = s.start_time_ms;
    e.progress = s.progress;
    e.owner_id = s.account_id;
    e.owner_alias = aliases.Get(s.account_id);
    e.description = s.description;
    e.encrypted = s.encrypted;
    e.storage_tier = "standard";
    e.tags = ToEc2Tags(s.tags);
    return e;
  }

  api::Ec2Volume ToEc2(const VolumeRecord& v) const {
    api::Ec2Volume e;
    e.volume_id = v.volume_id;
    e.size_gib = SizeGib(v.size_bytes);
    e.availability_zone = options.region + "a";
    e.state = "available";
    e.create_time_ms = v.created_ms;
    e.tags = ToEc2Tags(v.tags);
    e.snapshot_id = v.snapshot_id;
    e.state = v.state.empty() ? "available" : v.state;
    if (!v.instance_id.empty() && e.state == "available") {
      e.state = "in-use";
      e.attachments.push_back({v.volume_id, v.instance_id, v.device, "attached", v.created_ms, false});
    }
    return e;
  }

  ApiResult<std::vector<Tag>> SnapshotTagsFrom(const QueryParams& p, const char* type = "snapshot") const {
    API_ASSIGN_OR_RETURN(auto specs, p.GetTagSpecifications());
    std::vector<Tag> tags;
    for (const auto& spec : specs) {
      if (spec.resource_type != type)
        return Fail(api::ec2::kInvalidParameterValue,
                    "'" + spec.resource_type + "' is not a valid taggable resource type for this operation.");
      for (const auto& t : spec.tags) tags.push_back({t.key, t.value});
    }
    API_RETURN_IF_ERROR(CheckTags(tags, "TagSpecification"));
    return tags;
  }

  // ---- actions ----

  ApiResult<std::string> CreateSnapshot(const Caller& c, const QueryParams& p, const std::string& rid) {
    static constexpr std::string_view kKnown[] = {"Action", "Version", "VolumeId", "Description",
                                                  "TagSpecification.", "DryRun", "OutpostArn"};
    API_RETURN_IF_ERROR(p.RejectUnknown(kKnown));
    API_ASSIGN_OR_RETURN(std::string volume_id, p.GetString("VolumeId"));
    std::string description = p.GetOptionalString("Description").value_or("");
    API_RETURN_IF_ERROR(CheckDescription(description));
    API_ASSIGN_OR_RETURN(std::vector<Tag> tags, SnapshotTagsFrom(p));
    API_ASSIGN_OR_RETURN(VolumeRecord vol, OwnVolume(c, volume_id));
    if (vol.state == "creating" || vol.state == "error")
      return Fail(api::ec2::kIncorrectState, "The volume '" + volume_id + "' is " + vol.state + ".");
    API_RETURN_IF_ERROR(Authorize(c, "CreateSnapshot", {Arn(c, "volume", volume_id), Arn(c, "snapshot", "*")}, vol.tags));
    API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
    if (dry) return DryRunOk();
    auto started = jobs->Start({{vol, description, tags, clock->NowMillis(), false}});
    if (!started) return std::unexpected(FromCatalog(started.error()));
    return api::RenderCreateSnapshot(rid, ToEc2(started->front()));
  }

  ApiResult<std::string> CreateSnapshots(const Caller& c, const QueryParams& p, const std::string& rid) {
    static constexpr std::string_view kKnown[] = {"Action", "Version", "InstanceSpecification.", "Description",
                                                  "TagSpecification.", "CopyTagsFromSource", "DryRun",
                                                  "OutpostArn"};
    API_RETURN_IF_ERROR(p.RejectUnknown(kKnown));
    API_ASSIGN_OR_RETURN(api::QueryInstanceSpecification spec, p.GetInstanceSpecification());
    std::string description = p.GetOptionalString("Description").value_or("");
    API_RETURN_IF_ERROR(CheckDescription(description));
    auto copy_tags = p.GetOptionalString("CopyTagsFromSource");
    if (copy_tags && *copy_tags != "volume")
      return Fail(api::ec2::kInvalidParameterValue, "Value for parameter CopyTagsFromSource must be 'volume'.");
    API_ASSIGN_OR_RETURN(std::vector<Tag> tags, SnapshotTagsFrom(p));
    if (!IsInstanceId(spec.instance_id))
      return Fail("InvalidInstanceID.Malformed", "Invalid id: \"" + spec.instance_id + "\" (expecting \"i-...\")");
    auto inst = catalog->GetInstance(spec.instance_id);
    if (!inst || inst->account_id != c.account_id)
      return Fail(api::ec2::kInvalidInstanceIdNotFound, "The instance ID '" + spec.instance_id + "' does not exist");
    auto vols = catalog->ListVolumes(c.account_id);
    if (!vols) return std::unexpected(FromCatalog(vols.error()));
    for (const auto& id : spec.exclude_data_volume_ids) {
      bool attached = std::any_of(vols->begin(), vols->end(), [&](const auto& v) {
        return v.volume_id == id && v.instance_id == spec.instance_id;
      });
      if (!attached) return Fail(api::ec2::kInvalidParameterValue, "The volume '" + id + "' is not attached to " + spec.instance_id + ".");
    }
    // One instant for the whole call: every volume's snapshot carries the same StartTime.
    const int64_t now = clock->NowMillis();
    std::vector<SnapshotJobRequest> reqs;
    std::vector<std::string> resources = {Arn(c, "instance", spec.instance_id), Arn(c, "snapshot", "*")};
    for (const auto& v : *vols) {
      if (v.instance_id != spec.instance_id) continue;
      if (v.boot && spec.exclude_boot_volume) continue;
      if (!v.boot && std::find(spec.exclude_data_volume_ids.begin(), spec.exclude_data_volume_ids.end(),
                               v.volume_id) != spec.exclude_data_volume_ids.end())
        continue;
      std::vector<Tag> t = tags;
      if (copy_tags)
        for (const auto& vt : v.tags)
          if (std::none_of(t.begin(), t.end(), [&](const Tag& x) { return x.key == vt.key; })) t.push_back(vt);
      reqs.push_back({v, description, t, now, false});
      resources.push_back(Arn(c, "volume", v.volume_id));
    }
    API_RETURN_IF_ERROR(Authorize(c, "CreateSnapshots", resources));
    API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
    if (dry) return DryRunOk();
    std::vector<api::Ec2Snapshot> out;
    if (!reqs.empty()) {
      auto started = jobs->Start(reqs);
      if (!started) return std::unexpected(FromCatalog(started.error()));
      for (const auto& r : *started) out.push_back(ToEc2(r));
    }
    return api::RenderCreateSnapshots(rid, out);
  }

  ApiResult<std::string> CopySnapshot(const Caller& c, const QueryParams& p, const std::string& rid) {
    static constexpr std::string_view kKnown[] = {"Action", "Version", "SourceSnapshotId", "SourceRegion",
                                                  "Description", "TagSpecification.", "DryRun", "Encrypted",
                                                  "PresignedUrl", "DestinationRegion"};  // the CLI adds these two
    API_RETURN_IF_ERROR(p.RejectUnknown(kKnown));
    API_ASSIGN_OR_RETURN(std::string src_id, p.GetString("SourceSnapshotId"));
    API_ASSIGN_OR_RETURN(std::string region, p.GetString("SourceRegion"));
    if (region != options.region)
      return Fail(api::ec2::kInvalidParameterValue, "Copying from region '" + region + "' is not supported; this service is " + options.region + ".");
    std::string description = p.GetOptionalString("Description").value_or("");
    API_RETURN_IF_ERROR(CheckDescription(description));
    API_ASSIGN_OR_RETURN(std::vector<Tag> tags, SnapshotTagsFrom(p));
    API_ASSIGN_OR_RETURN(SnapshotRecord src, OwnSnapshot(c, src_id));
    if (src.account_id != c.account_id) return std::unexpected(NotFoundSnapshot(src_id));
    API_RETURN_IF_ERROR(Authorize(c, "CopySnapshot", {Arn(c, "snapshot", src_id), Arn(c, "snapshot", "*")}, src.tags));
    API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
    if (dry) return DryRunOk();
    if (src.state != SnapshotState::kCompleted)
      return Fail(api::ec2::kIncorrectState, "Snapshot '" + src_id + "' is not completed.");
    auto meta = repo->GetManifest(src_id);
    if (!meta) return std::unexpected(api::FromError(meta.error()));
    // A copy shares every chunk and page: only a new root is written.
    ManifestMeta copy = *meta;
    copy.snapshot_id = NewSnapshotId();
    copy.description = description;
    copy.tags.clear();
    for (const auto& t : tags) copy.tags.emplace_back(t.key, t.value);
    copy.start_time_ms = clock->NowMillis();
    copy.completed_time_ms = copy.start_time_ms;
    copy.stored_bytes = 0;
    auto put = repo->PutManifest(copy);
    if (!put) return std::unexpected(api::FromError(put.error()));
    SnapshotRecord rec = src;
    rec.snapshot_id = copy.snapshot_id;
    rec.description = description;
    rec.tags = tags;
    rec.start_time_ms = copy.start_time_ms;
    rec.completed_time_ms = copy.completed_time_ms;
    rec.stored_bytes = 0;
    rec.runner.clear();
    rec.parent_snapshot_id = src.parent_snapshot_id;
    auto ins = catalog->InsertSnapshot(rec);
    if (!ins) {
      (void)repo->DeleteManifest(copy.snapshot_id);
      return std::unexpected(FromCatalog(ins.error()));
    }
    std::vector<api::Ec2Tag> etags = ToEc2Tags(tags);
    return api::RenderCopySnapshot(rid, copy.snapshot_id, etags);
  }

  ApiResult<std::string> DescribeTags(const Caller& c, const QueryParams& p, const std::string& rid) {
    API_ASSIGN_OR_RETURN(std::vector<api::QueryFilter> filters, p.GetFilters());
    API_RETURN_IF_ERROR(Authorize(c, "DescribeTags", {}));
    API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
    if (dry) return DryRunOk();
    std::vector<api::Ec2TagDescription> all;
    auto snaps = catalog->ListSnapshots({.account_id = c.account_id});
    if (!snaps) return std::unexpected(FromCatalog(snaps.error()));
    for (const auto& sn : *snaps)
      for (const auto& t : sn.tags) all.push_back({sn.snapshot_id, "snapshot", t.key, t.value});
    auto vols = catalog->ListVolumes(c.account_id);
    if (!vols) return std::unexpected(FromCatalog(vols.error()));
    for (const auto& v : *vols)
      for (const auto& t : v.tags) all.push_back({v.volume_id, "volume", t.key, t.value});
    std::vector<api::Ec2TagDescription> out;
    for (const auto& d : all) {
      bool keep = true;
      for (const auto& f : filters) {
        const std::string* field = nullptr;
        if (f.name == "resource-id") field = &d.resource_id;
        else if (f.name == "resource-type") field = &d.resource_type;
        else if (f.name == "key") field = &d.key;
        else if (f.name == "value") field = &d.value;
        else return Fail(api::ec2::kInvalidParameterValue, "The filter '" + f.name + "' is invalid");
        bool any = false;
        for (const auto& v : f.values) any = any || api::WildcardPattern(v).Matches(*field);
        keep = keep && any;
      }
      if (keep) out.push_back(d);
    }
    return api::RenderDescribeTags(rid, out, "");
  }

  ApiResult<std::string> DescribeInstances(const Caller& c, const QueryParams& p, const std::string& rid) {
    API_ASSIGN_OR_RETURN(std::vector<std::string> ids, p.GetList("InstanceId"));
    API_RETURN_IF_ERROR(Authorize(c, "DescribeInstances", {}));
    API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
    if (dry) return DryRunOk();
    auto insts = catalog->ListInstances(c.account_id);
    if (!insts) return std::unexpected(FromCatalog(insts.error()));
    for (const auto& id : ids)
      if (std::none_of(insts->begin(), insts->end(), [&](const auto& i) { return i.instance_id == id; }))
        return Fail(api::ec2::kInvalidInstanceIdNotFound, "The instance ID '" + id + "' does not exist");
    auto vols = catalog->ListVolumes(c.account_id);
    if (!vols) return std::unexpected(FromCatalog(vols.error()));
    std::vector<api::Ec2Reservation> res;
    for (const auto& i : *insts) {
      if (!ids.empty() && std::find(ids.begin(), ids.end(), i.instance_id) == ids.end()) continue;
      api::Ec2Instance e;
      e.instance_id = i.instance_id;
      e.tags = {{"Name", i.name}};
      for (const auto& v : *vols) {
        if (v.instance_id != i.instance_id) continue;
        e.block_devices.push_back({v.device, v.volume_id, "attached", v.created_ms, false});
        if (v.boot) e.root_device_name = v.device;
      }
      res.push_back({"r-" + i.instance_id.substr(2), c.account_id, {e}});
    }
    return api::RenderDescribeInstances(rid, res, "");
  }

  ApiResult<std::string> DescribeSnapshots(const Caller& c, const QueryParams& p, const std::string& rid) {
    API_ASSIGN_OR_RETURN(api::DescribeSnapshotsRequest req, api::ParseDescribeSnapshotsRequest(p));
    API_RETURN_IF_ERROR(Authorize(c, "DescribeSnapshots", {}));
    if (req.dry_run) return DryRunOk();
    for (const auto& id : req.snapshot_ids)
      if (!IsSnapshotId(id))
        return Fail("InvalidSnapshotID.Malformed", "Invalid id: \"" + id + "\" (expecting \"snap-...\")");
    // Owner.N: "self" is the caller's account. Another account id matches only for an
    // administrator; "amazon" and unknown accounts match nothing.
    std::set<std::string> owners;
    if (req.owner_ids.empty()) owners.insert(c.account_id);
    for (const auto& o : req.owner_ids) {
      if (o == "self" || o == c.account_id) owners.insert(c.account_id);
      else if (c.admin && IsAccountId(o)) owners.insert(o);
    }
    const std::string scope = "DescribeSnapshots:" + c.account_id;
    // The common paged listing (one owner, no ids, no filters) reads one page from the
    // catalog instead of every snapshot. Tokens are the same as the general path's.
    if (req.filters.empty() && req.snapshot_ids.empty() && req.restorable_by.empty() &&
        req.page.max_results && owners.size() == 1) {
      if (*req.page.max_results < api::kMinMaxResults)
        return std::unexpected(api::InvalidParameterValue("MaxResults", std::to_string(*req.page.max_results),
                                                          "Expecting a value greater than or equal to 5."));
      size_t take = static_cast<size_t>(std::min(*req.page.max_results, api::kMaxMaxResults));
      std::string after;
      if (!req.page.next_token.empty()) {
        API_ASSIGN_OR_RETURN(after, tokens->Decode(scope, req.page.next_token));
      }
      auto page = catalog->ListSnapshotsPage(*owners.begin(), after, take + 1);
      if (!page) return std::unexpected(FromCatalog(page.error()));
      std::string next;
      if (page->size() > take) {
        page->resize(take);
        next = tokens->Encode(scope, page->back().snapshot_id);
      }
      AliasCache aliases(catalog);
      std::vector<api::Ec2Snapshot> out;
      out.reserve(page->size());
      for (const auto& sn : *page) out.push_back(ToEc2(sn, aliases));
      return api::RenderDescribeSnapshots(rid, out, next);
    }
    SnapshotFilter f;
    f.snapshot_ids = req.snapshot_ids;
    if (!c.admin || req.snapshot_ids.empty()) {
      if (owners.size() == 1) f.account_id = *owners.begin();
    }
    auto all_rows = catalog->ListSnapshots(f);
    if (!all_rows) return std::unexpected(FromCatalog(all_rows.error()));
    std::vector<SnapshotRecord> rows;
    for (auto& s : *all_rows)
      if (s.account_id == c.account_id || c.admin) rows.push_back(std::move(s));
    if (!req.snapshot_ids.empty()) {
      for (const auto& id : req.snapshot_ids) {
        bool found = std::any_of(rows.begin(), rows.end(), [&](const auto& s) { return s.snapshot_id == id; });
        if (!found) return std::unexpected(NotFoundSnapshot(id));
      }
    }
    std::vector<api::Ec2Snapshot> snaps;
    AliasCache aliases(catalog);
    for (const auto& s : rows)
      if (!req.snapshot_ids.empty() || owners.count(s.account_id)) snaps.push_back(ToEc2(s, aliases));
    API_ASSIGN_OR_RETURN(snaps, api::FilterSnapshots(std::move(snaps), req.filters));
    API_ASSIGN_OR_RETURN(api::SnapshotPage page,
                         api::PaginateSnapshots(std::move(snaps), req.page, *tokens, scope));
    return api::RenderDescribeSnapshots(rid, page.snapshots, page.next_token);
  }

  ApiResult<std::string> DeleteSnapshot(const Caller& c, const QueryParams& p, const std::string& rid) {
    static constexpr std::string_view kKnown[] = {"Action", "Version", "SnapshotId", "DryRun"};
    API_RETURN_IF_ERROR(p.RejectUnknown(kKnown));
    API_ASSIGN_OR_RETURN(std::string id, p.GetString("SnapshotId"));
    API_ASSIGN_OR_RETURN(SnapshotRecord s, OwnSnapshot(c, id));
    API_RETURN_IF_ERROR(Authorize(c, "DeleteSnapshot", {Arn(c, "snapshot", id)}, s.tags));
    API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
    if (dry) return DryRunOk();
    if (s.state == SnapshotState::kPending)
      return Fail(api::ec2::kIncorrectState, "The snapshot '" + id + "' is still being taken (pending).");
    if (auto vols = catalog->ListVolumes(std::nullopt)) {
      for (const auto& v : *vols)
        if (v.snapshot_id == id && ReadsFromItsSnapshot(v))
          return Fail(api::ec2::kIncorrectState,
                      "The snapshot '" + id + "' is in use: volume " + v.volume_id + " is still loading from it.");
    }
    // The lock check, the manifest's removal and the row's are one catalog transaction: a
    // LockSnapshot cannot land between them.
    auto del = catalog->DeleteSnapshot(id, clock->NowMillis(), [&]() -> Status {
      auto st = repo->DeleteManifest(id);
      if (!st && st.error().code() != ErrorCode::kNotFound) return st;
      return OkStatus();
    });
    if (!del && del.error().code() == ErrorCode::kConflict)
      return Fail(api::ec2::kIncorrectState, "The snapshot '" + id + "' cannot be deleted: " + del.error().message() + ".");
    if (!del) return std::unexpected(FromCatalog(del.error()));
    return api::RenderReturnTrue("DeleteSnapshot", rid);
  }

  // --- snapshot locks (rules in snapshot_locks.h) ---

  ApiResult<std::optional<SnapshotLockRecord>> CurrentLock(const std::string& id) const {
    auto l = catalog->GetSnapshotLock(id);
    if (l) return std::optional<SnapshotLockRecord>(*l);
    if (l.error().code() == ErrorCode::kNotFound) return std::optional<SnapshotLockRecord>();
    return std::unexpected(FromCatalog(l.error()));
  }

  ApiResult<std::string> LockSnapshot(const Caller& c, const QueryParams& p, const std::string& rid) {
    static constexpr std::string_view kKnown[] = {"Action",       "Version",        "SnapshotId", "LockMode",
                                                  "CoolOffPeriod", "LockDuration", "ExpirationDate", "DryRun"};
    API_RETURN_IF_ERROR(p.RejectUnknown(kKnown));
    API_ASSIGN_OR_RETURN(std::string id, p.GetString("SnapshotId"));
    API_ASSIGN_OR_RETURN(SnapshotRecord s, OwnSnapshot(c, id));
    API_RETURN_IF_ERROR(Authorize(c, "LockSnapshot", {Arn(c, "snapshot", id)}, s.tags));
    api::LockRequest req;
    API_ASSIGN_OR_RETURN(req.mode, p.GetString("LockMode"));
    API_ASSIGN_OR_RETURN(req.cool_off_hours, p.GetOptionalInt("CoolOffPeriod", 1, 72));
    API_ASSIGN_OR_RETURN(req.duration_days, p.GetOptionalInt("LockDuration", 1, 36500));
    if (auto when = p.GetOptionalString("ExpirationDate")) {
      auto ms = ParseIso8601(*when);
      if (!ms)
        return std::unexpected(api::InvalidParameterValue("ExpirationDate", *when, "Expected a UTC time like 2027-01-01T00:00:00Z."));
      req.expiration_ms = *ms;
    }
    API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
    if (dry) return DryRunOk();
    if (s.state != SnapshotState::kCompleted)
      return Fail(api::ec2::kIncorrectState, "The snapshot '" + id + "' is not completed; only a completed snapshot can be locked.");
    std::lock_guard changing(lock_change_mu);
    const int64_t now = clock->NowMillis();
    API_ASSIGN_OR_RETURN(auto current, CurrentLock(id));
    API_ASSIGN_OR_RETURN(SnapshotLockRecord next, api::NextLock(id, s.account_id, current, req, now));
    if (auto st = catalog->PutSnapshotLock(next); !st) {
      if (st.error().code() == ErrorCode::kNotFound) return std::unexpected(NotFoundSnapshot(id));
      return std::unexpected(FromCatalog(st.error()));
    }
    api::XmlWriter w = api::BeginEc2Response("LockSnapshot", rid);
    w.Text("snapshotId", id);
    api::WriteLockFields(w, next, now);
    return std::move(w).Finish();
  }

  ApiResult<std::string> UnlockSnapshot(const Caller& c, const QueryParams& p, const std::string& rid) {
    static constexpr std::string_view kKnown[] = {"Action", "Version", "SnapshotId", "DryRun"};
    API_RETURN_IF_ERROR(p.RejectUnknown(kKnown));
    API_ASSIGN_OR_RETURN(std::string id, p.GetString("SnapshotId"));
    API_ASSIGN_OR_RETURN(SnapshotRecord s, OwnSnapshot(c, id));
    API_RETURN_IF_ERROR(Authorize(c, "UnlockSnapshot", {Arn(c, "snapshot", id)}, s.tags));
    API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
    if (dry) return DryRunOk();
    std::lock_guard changing(lock_change_mu);
    API_ASSIGN_OR_RETURN(auto current, CurrentLock(id));
    if (!current) return Fail(api::ec2::kIncorrectState, "The snapshot '" + id + "' is not locked.");
    API_RETURN_IF_ERROR(api::CheckUnlock(*current, clock->NowMillis()));
    if (auto st = catalog->DeleteSnapshotLock(id); !st && st.error().code() != ErrorCode::kNotFound)
      return std::unexpected(FromCatalog(st.error()));
    api::XmlWriter w = api::BeginEc2Response("UnlockSnapshot", rid);
    w.Text("snapshotId", id);
    return std::move(w).Finish();
  }

  ApiResult<std::string> DescribeLockedSnapshots(const Caller& c, const QueryParams& p, const std::string& rid) {
    static constexpr std::string_view kKnown[] = {"Action", "Version", "SnapshotId.", "Filter.", "MaxResults",
                                                  "NextToken", "DryRun"};
    API_RETURN_IF_ERROR(p.RejectUnknown(kKnown));
    API_ASSIGN_OR_RETURN(std::vector<std::string> ids, p.GetList("SnapshotId"));
    for (const auto& id : ids)
      if (!IsSnapshotId(id)) return Fail("InvalidSnapshotID.Malformed", "Invalid id: \"" + id + "\" (expecting \"snap-...\")");
    API_ASSIGN_OR_RETURN(std::vector<api::QueryFilter> filters, p.GetFilters());
    std::set<std::string> states;
    for (const auto& f : filters) {
      if (f.name != "lock-state")
        return Fail(api::ec2::kInvalidParameterValue, "The filter '" + f.name + "' is invalid (DescribeLockedSnapshots filters by lock-state).");
      states.insert(f.values.begin(), f.values.end());
    }
    API_ASSIGN_OR_RETURN(std::optional<int64_t> max, p.GetOptionalInt("MaxResults", 5, 1000));
    const std::string after = p.GetOptionalString("NextToken").value_or("");
    if (!after.empty() && !IsSnapshotId(after))
      return Fail(api::ec2::kInvalidPaginationToken, "The pagination token is invalid.");
    API_RETURN_IF_ERROR(Authorize(c, "DescribeLockedSnapshots", {}));
    API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
    if (dry) return DryRunOk();
    auto locks = catalog->ListSnapshotLocks(c.account_id);
    if (!locks) return std::unexpected(FromCatalog(locks.error()));
    const int64_t now = clock->NowMillis();
    const std::set<std::string> wanted(ids.begin(), ids.end());
    const size_t limit = max ? static_cast<size_t>(*max) : SIZE_MAX;
    api::XmlWriter w = api::BeginEc2Response("DescribeLockedSnapshots", rid);
    w.Open("snapshotSet");
    size_t n = 0;
    std::string last, next;
    for (const auto& l : *locks) {  // in snapshot id order
      if (l.snapshot_id <= after && !after.empty()) continue;
      if (!wanted.empty() && !wanted.count(l.snapshot_id)) continue;
      if (!states.empty() && !states.count(LockStateAt(l, now))) continue;
      if (n == limit) {  // more remain: the next page starts after the last one shown
        next = last;
        break;
      }
      w.Open("item");
      w.Text("ownerId", l.account_id);
      w.Text("snapshotId", l.snapshot_id);
      api::WriteLockFields(w, l, now);
      w.Close();
      last = l.snapshot_id;
      ++n;
    }
    w.Close();
    if (!next.empty()) w.Text("nextToken", next);
    return std::move(w).Finish();
  }

  ApiResult<std::string> ChangeTags(const Caller& c, const QueryParams& p, const std::string& rid, bool create) {
    static constexpr std::string_view kKnown[] = {"Action", "Version", "ResourceId.", "Tag.", "DryRun"};
    API_RETURN_IF_ERROR(p.RejectUnknown(kKnown));
    API_ASSIGN_OR_RETURN(std::vector<std::string> ids, p.GetList("ResourceId"));
    if (ids.empty()) return std::unexpected(api::MissingParameter("ResourceId.1"));
    API_ASSIGN_OR_RETURN(std::vector<api::Ec2Tag> tags, p.GetTags());
    if (create && tags.empty()) return std::unexpected(api::MissingParameter("Tag.1.Key"));
    if (create) {
      std::vector<Tag> t;
      for (const auto& x : tags) t.push_back({x.key, x.value});
      API_RETURN_IF_ERROR(CheckTags(t, "Tag"));
    }
    std::vector<SnapshotRecord> targets;
    for (const auto& id : ids) {
      if (!IsSnapshotId(id))
        return Fail(api::ec2::kInvalidParameterValue, "Tagging '" + id + "' is not supported: only snapshots can be tagged here.");
      API_ASSIGN_OR_RETURN(SnapshotRecord s, OwnSnapshot(c, id));
      API_RETURN_IF_ERROR(Authorize(c, create ? "CreateTags" : "DeleteTags", {Arn(c, "snapshot", id)}, s.tags));
      targets.push_back(std::move(s));
    }
    API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
    if (dry) return DryRunOk();
    auto st = catalog->Transaction([&]() -> Status {
      for (const auto& s : targets) {
        if (create) {
          std::vector<Tag> t;
          for (const auto& x : tags) t.push_back({x.key, x.value});
          RETURN_IF_ERROR(catalog->SetTags(s.snapshot_id, t));
        } else {
          // A tag with a value is removed only when the value matches, as EC2 does.
          std::vector<std::string> keys;
          for (const auto& x : tags) {
            auto it = std::find_if(s.tags.begin(), s.tags.end(), [&](const Tag& have) { return have.key == x.key; });
            if (it != s.tags.end() && (x.value.empty() || x.value == it->value)) keys.push_back(x.key);
          }
          RETURN_IF_ERROR(catalog->RemoveTags(s.snapshot_id, keys));
        }
      }
      return OkStatus();
    });
    if (!st) return std::unexpected(FromCatalog(st.error()));
    return api::RenderReturnTrue(create ? "CreateTags" : "DeleteTags", rid);
  }

  ApiResult<std::string> DescribeVolumes(const Caller& c, const QueryParams& p, const std::string& rid) {
    API_ASSIGN_OR_RETURN(std::vector<std::string> ids, p.GetList("VolumeId"));
    API_RETURN_IF_ERROR(Authorize(c, "DescribeVolumes", {}));
    API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
    if (dry) return DryRunOk();
    // Administrators reach any account's volume by id (e.g. one they restored for a team).
    std::optional<std::string> scope = c.account_id;
    if (c.admin && !ids.empty()) scope.reset();
    auto rows = catalog->ListVolumes(scope);
    if (!rows) return std::unexpected(FromCatalog(rows.error()));
    std::vector<api::Ec2Volume> out;
    for (const auto& id : ids) {
      if (!IsVolumeId(id))
        return Fail("InvalidVolumeID.Malformed", "Invalid id: \"" + id + "\" (expecting \"vol-...\")");
      bool found = std::any_of(rows->begin(), rows->end(), [&](const auto& v) { return v.volume_id == id; });
      if (!found) return std::unexpected(NotFoundVolume(id));
    }
    for (const auto& v : *rows)
      if (ids.empty() || std::find(ids.begin(), ids.end(), v.volume_id) != ids.end()) out.push_back(ToEc2(v));
    return api::RenderDescribeVolumes(rid, out, "");
  }

  // ---- managed volumes: files under the restore directory that snapvol serves over NBD ----

  static constexpr int64_t kMaxVolumeGib = 16384;

  ApiResult<std::string> CreateEmptyVolume(const Caller& c, const QueryParams& p, const std::string& rid) {
    auto size_text = p.GetOptionalString("Size");
    if (!size_text) return std::unexpected(api::MissingParameter("Size"));
    char* end = nullptr;
    long long gib = std::strtoll(size_text->c_str(), &end, 10);
    if (size_text->empty() || *end != '\0' || gib < 1 || gib > kMaxVolumeGib)
      return std::unexpected(api::InvalidParameterValue("Size", *size_text, "Expecting 1 to 16384 (GiB)."));
    if (auto multi = p.GetOptionalString("MultiAttachEnabled"); multi && *multi == "true")
      return Fail(api::ec2::kUnsupportedOperation, "Multi-attach is not supported.");
    API_ASSIGN_OR_RETURN(std::vector<Tag> tags, SnapshotTagsFrom(p, "volume"));
    API_RETURN_IF_ERROR(Authorize(c, "CreateVolume", {Arn(c, "volume", "*")}));
    API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
    if (dry) return DryRunOk();
    if (options.restore_dir.empty())
      return Fail(api::ec2::kUnsupportedOperation, "No volume directory is configured.");
    VolumeRecord v;
    v.volume_id = NewVolumeId();
    v.account_id = c.account_id;
    v.name = TagValueOf(tags, "Name");
    v.path = options.restore_dir + "/" + v.volume_id + ".img";
    v.size_bytes = static_cast<uint64_t>(gib) * kGiB;
    v.block_size = kDefaultBlockSize;
    v.created_ms = clock->NowMillis();
    v.tags = tags;
    v.managed = true;
    // The file first (sparse, all zeroes), then the row: a crash between them leaves an
    // orphan file, never a volume without its data.
    int fd = ::open(v.path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return Fail(api::ec2::kInternalError, "cannot create the volume file: " + std::string(std::strerror(errno)));
    bool sized = ::ftruncate(fd, static_cast<off_t>(v.size_bytes)) == 0 && ::fsync(fd) == 0;
    ::close(fd);
    if (!sized) {
      ::unlink(v.path.c_str());
      return Fail(api::ec2::kInsufficientCapacity, "cannot size the volume file");
    }
    auto ins = catalog->InsertVolume(v);
    if (!ins) {
      ::unlink(v.path.c_str());
      return std::unexpected(FromCatalog(ins.error()));
    }
    return api::RenderCreateVolume(rid, ToEc2(v));
  }

  static std::string TagValueOf(const std::vector<Tag>& tags, const std::string& key) {
    for (const auto& t : tags)
      if (t.key == key) return t.value;
    return {};
  }

  ApiResult<std::string> RenderAttachment(const char* action, const std::string& rid, const VolumeRecord& v,
                                          const std::string& status) {
    api::XmlWriter w = api::BeginEc2Response(action, rid);
    w.Text("volumeId", v.volume_id);
    w.Text("instanceId", v.instance_id);
    w.Text("device", v.device);
    w.Text("status", status);
    w.Timestamp("attachTime", v.attach_ms ? v.attach_ms : v.created_ms);
    w.Bool("deleteOnTermination", false);
    return std::move(w).Finish();
  }

  ApiResult<std::string> AttachVolume(const Caller& c, const QueryParams& p, const std::string& rid) {
    static constexpr std::string_view kKnown[] = {"Action", "Version", "VolumeId", "InstanceId", "Device", "DryRun"};
    API_RETURN_IF_ERROR(p.RejectUnknown(kKnown));
    API_ASSIGN_OR_RETURN(std::string volume_id, p.GetString("VolumeId"));
    API_ASSIGN_OR_RETURN(std::string instance_id, p.GetString("InstanceId"));
    API_ASSIGN_OR_RETURN(std::string device, p.GetString("Device"));
    if (device.size() < 6 || device.size() > 32 || device.rfind("/dev/", 0) != 0 ||
        device.find_first_not_of("/abcdefghijklmnopqrstuvwxyz0123456789") != std::string::npos)
      return std::unexpected(api::InvalidParameterValue("Device", device, "Expecting a device name like /dev/sdf."));
    API_ASSIGN_OR_RETURN(VolumeRecord v, OwnVolume(c, volume_id));
    if (!IsInstanceId(instance_id))
      return Fail("InvalidInstanceID.Malformed", "Invalid id: \"" + instance_id + "\" (expecting \"i-...\")");
    auto inst = catalog->GetInstance(instance_id);
    if (!inst || inst->account_id != v.account_id)
      return Fail(api::ec2::kInvalidInstanceIdNotFound, "The instance ID '" + instance_id + "' does not exist");
    API_RETURN_IF_ERROR(Authorize(c, "AttachVolume", {Arn(c, "volume", volume_id), Arn(c, "instance", instance_id)}, v.tags));
    API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
    if (dry) return DryRunOk();
    if (v.state != "available")
      return Fail(api::ec2::kIncorrectState, "vol '" + volume_id + "' is " + v.state + ".");
    auto vols = catalog->ListVolumes(v.account_id);
    if (!vols) return std::unexpected(FromCatalog(vols.error()));
    for (const auto& other : *vols)
      if (other.instance_id == instance_id && other.device == device)
        return Fail("InvalidParameterValue", "Attachment point " + device + " is already in use");
    const int64_t now = clock->NowMillis();
    auto st = catalog->SetVolumeAttachment(volume_id, instance_id, device, now);
    if (!st) {
      if (st.error().code() == ErrorCode::kConflict)
        return Fail("VolumeInUse", "vol '" + volume_id + "' is already attached to an instance");
      return std::unexpected(FromCatalog(st.error()));
    }
    v.instance_id = instance_id;
    v.device = device;
    v.attach_ms = now;
    return RenderAttachment("AttachVolume", rid, v, "attached");
  }

  ApiResult<std::string> DetachVolume(const Caller& c, const QueryParams& p, const std::string& rid) {
    static constexpr std::string_view kKnown[] = {"Action", "Version", "VolumeId", "InstanceId", "Device",
                                                  "Force", "DryRun"};
    API_RETURN_IF_ERROR(p.RejectUnknown(kKnown));
    API_ASSIGN_OR_RETURN(std::string volume_id, p.GetString("VolumeId"));
    API_ASSIGN_OR_RETURN(VolumeRecord v, OwnVolume(c, volume_id));
    API_RETURN_IF_ERROR(Authorize(c, "DetachVolume", {Arn(c, "volume", volume_id)}, v.tags));
    API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
    if (dry) return DryRunOk();
    if (v.instance_id.empty()) return Fail("IncorrectState", "Volume '" + volume_id + "' is in the 'available' state.");
    if (auto want = p.GetOptionalString("InstanceId"); want && *want != v.instance_id)
      return Fail("InvalidAttachment.NotFound", "The volume '" + volume_id + "' is not attached to instance '" + *want + "'.");
    auto st = catalog->SetVolumeAttachment(volume_id, "", "", 0);
    if (!st && st.error().code() != ErrorCode::kConflict) return std::unexpected(FromCatalog(st.error()));
    // The volume is no longer exported; connections already open end here, like a device
    // taken from a machine.
    if (options.on_volume_detached) {
      if (auto ended = options.on_volume_detached(volume_id); !ended)
        return Fail(api::ec2::kInternalError, "Volume '" + volume_id + "' is detached, but " + ended.error().message() +
                                                  "; it cannot be deleted until they do.");
    }
    return RenderAttachment("DetachVolume", rid, v, "detached");
  }

  ApiResult<std::string> DeleteVolume(const Caller& c, const QueryParams& p, const std::string& rid) {
    static constexpr std::string_view kKnown[] = {"Action", "Version", "VolumeId", "DryRun"};
    API_RETURN_IF_ERROR(p.RejectUnknown(kKnown));
    API_ASSIGN_OR_RETURN(std::string volume_id, p.GetString("VolumeId"));
    API_ASSIGN_OR_RETURN(VolumeRecord v, OwnVolume(c, volume_id));
    API_RETURN_IF_ERROR(Authorize(c, "DeleteVolume", {Arn(c, "volume", volume_id)}, v.tags));
    API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
    if (dry) return DryRunOk();
    if (!v.instance_id.empty()) return Fail("VolumeInUse", "Volume " + volume_id + " is currently attached to " + v.instance_id);
    if (v.state == "creating")
      return Fail(api::ec2::kIncorrectState, "The volume '" + volume_id + "' is being restored (creating).");
    // A connection that outlived its DetachVolume would write into a deleted file.
    if (options.on_volume_detached) {
      if (auto ended = options.on_volume_detached(volume_id); !ended)
        return Fail("VolumeInUse", "Volume " + volume_id + " still has NBD connections: " + ended.error().message());
    }
    auto del = catalog->DeleteVolume(volume_id);
    if (!del) return std::unexpected(FromCatalog(del.error()));
    // Only snapvol's own files are removed: a registered (external) volume is the user's disk.
    if (options.on_volume_deleted) options.on_volume_deleted(volume_id);
    if ((v.managed || !v.snapshot_id.empty()) && v.path.rfind(options.restore_dir + "/", 0) == 0) {
      ::unlink(v.path.c_str());
      ::unlink((v.path + ".cbt").c_str());
      ::unlink(LoadMapPath(v.path).c_str());
    }
    return api::RenderReturnTrue("DeleteVolume", rid);
  }

  // EC2's volume status: ok, with the initialization (lazy load) progress of restored volumes.
  ApiResult<std::string> DescribeVolumeStatus(const Caller& c, const QueryParams& p, const std::string& rid) {
    API_ASSIGN_OR_RETURN(std::vector<std::string> ids, p.GetList("VolumeId"));
    API_RETURN_IF_ERROR(Authorize(c, "DescribeVolumeStatus", {}));
    API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
    if (dry) return DryRunOk();
    std::vector<VolumeRecord> vols;
    for (const auto& id : ids) {
      if (!IsVolumeId(id))
        return Fail("InvalidVolumeID.Malformed", "Invalid id: \"" + id + "\" (expecting \"vol-...\")");
      auto v = catalog->GetVolume(id);
      // Administrators reach any account's volume by id, as with DescribeVolumes.
      if (!v || (v->account_id != c.account_id && !c.admin)) return std::unexpected(NotFoundVolume(id));
      vols.push_back(std::move(*v));
    }
    if (ids.empty()) {
      auto all = catalog->ListVolumes(c.account_id);
      if (!all) return std::unexpected(FromCatalog(all.error()));
      vols = std::move(*all);
    }
    api::XmlWriter w = api::BeginEc2Response("DescribeVolumeStatus", rid);
    w.Open("volumeStatusSet");
    for (const auto& v : vols) {
      std::optional<int> loading = options.load_percent ? options.load_percent(v.volume_id) : std::nullopt;
      bool broken = v.state == "error";
      w.Open("item");
      w.Text("volumeId", v.volume_id);
      w.Text("availabilityZone", options.region + "a");
      w.Open("volumeStatus");
      w.Text("status", broken ? "impaired" : "ok");
      w.Open("details");
      w.Open("item");
      w.Text("name", "io-enabled");
      w.Text("status", broken ? "failed" : "passed");
      w.Close();
      w.Open("item");
      w.Text("name", "initialization-state");
      w.Text("status", loading ? "initializing" : "completed");
      w.Close();
      w.Close();
      w.Close();
      w.Open("actionsSet");
      w.Close();
      w.Open("eventsSet");
      w.Close();
      if (loading || !v.snapshot_id.empty()) {
        w.Open("initializationStatusDetails");
        w.Text("initializationType", "default");
        w.Int("progress", loading ? *loading : 100);
        w.Close();
      }
      w.Close();
    }
    w.Close();
    return std::move(w).Finish();
  }

  ApiResult<std::string> CreateVolume(const Caller& c, const QueryParams& p, const std::string& rid) {
    auto snap_id = p.GetOptionalString("SnapshotId");
    if (!snap_id) return CreateEmptyVolume(c, p, rid);
    API_ASSIGN_OR_RETURN(SnapshotRecord s, OwnSnapshot(c, *snap_id));
    // Restoring is the privileged action: members are refused here, before anything happens.
    API_RETURN_IF_ERROR(Authorize(c, "CreateVolume", {Arn(c, "volume", "*"), Arn(c, "snapshot", *snap_id)}, s.tags));
    API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
    if (dry) return DryRunOk();
    if (s.state != SnapshotState::kCompleted)
      return Fail(api::ec2::kIncorrectState, "Snapshot '" + *snap_id + "' is not completed.");
    API_ASSIGN_OR_RETURN(VolumeRecord v, RestoreToNewVolume(s, NewVolumeId()));
    return api::RenderCreateVolume(rid, ToEc2(v));
  }

  // Starts restoring completed snapshot s into a new volume of its account; returns the
  // volume, `creating`.
  ApiResult<VolumeRecord> RestoreToNewVolume(const SnapshotRecord& s, const std::string& volume_id) {
    if (options.restore_dir.empty())
      return Fail(api::ec2::kUnsupportedOperation, "No restore directory is configured.");
    VolumeRecord v;
    v.volume_id = volume_id;
    v.account_id = s.account_id;  // the restored volume belongs to the snapshot's team
    v.name = "restored from " + s.snapshot_id;
    v.path = options.restore_dir + "/" + v.volume_id + ".img";
    v.size_bytes = s.volume_size_bytes;
    v.block_size = s.block_size;
    v.created_ms = clock->NowMillis();
    v.snapshot_id = s.snapshot_id;
    if (options.create_lazy && options.start_lazy) {
      // Usable at once: a managed volume whose blocks load from the snapshot as they are
      // needed, while a background copy fills the rest (DescribeVolumeStatus shows how far).
      v.managed = true;
      v.state = "available";
      auto made = options.create_lazy(v);
      if (!made) return std::unexpected(api::FromError(made.error()));
      auto ins = catalog->InsertVolume(v);
      if (!ins) {
        ::unlink(v.path.c_str());
        ::unlink(LoadMapPath(v.path).c_str());
        return std::unexpected(FromCatalog(ins.error()));
      }
      auto started = options.start_lazy(v);
      if (!started) {
        (void)catalog->SetVolumeState(v.volume_id, "error", "cannot start loading: " + started.error().message());
        return std::unexpected(api::FromError(started.error()));
      }
      return v;
    }
    v.state = "creating";
    auto target = FileTarget::Create(v.path, s.volume_size_bytes, false);
    if (!target) return std::unexpected(api::FromError(target.error()));
    auto ins = catalog->InsertVolume(v);
    if (!ins) return std::unexpected(FromCatalog(ins.error()));
    // The data is written in the background; the volume is `creating` until then, as in EC2,
    // so a large restore never holds the request (or times out the client).
    StartRestore(v.volume_id, s.snapshot_id, std::shared_ptr<BlockTarget>(std::move(*target)));
    return v;
  }

  // ---- restore requests (snapvol's own actions on the same endpoint) ----

  static void WriteRestoreRequest(api::XmlWriter& w, const RestoreRequestRecord& r) {
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

  static std::string RenderRestoreRequest(const char* action, const std::string& rid,
                                          const RestoreRequestRecord& r) {
    api::XmlWriter w = api::BeginEc2Response(action, rid);
    w.Open("restoreRequest");
    WriteRestoreRequest(w, r);
    w.Close();
    return std::move(w).Finish();
  }

  ApiResult<RestoreRequestRecord> FindRestoreRequest(const Caller& c, const std::string& id) {
    auto r = catalog->GetRestoreRequest(id);
    if (!r || (r->account_id != c.account_id && !c.admin))
      return Fail("InvalidRestoreRequest.NotFound", "The restore request '" + id + "' does not exist.");
    return *r;
  }

  // The actions on restore requests, shared by the Query API (XML) and the JSON API.
  ApiResult<RestoreRequestRecord> FileRestoreRequest(const Caller& c, const std::string& snap_id,
                                                     const std::string& reason, bool dry) {
    if (Chars(reason) > 1024)
      return Fail(api::ec2::kInvalidParameterValue, "Value for parameter Reason is too long (max 1024 characters).");
    API_ASSIGN_OR_RETURN(SnapshotRecord s, OwnSnapshot(c, snap_id));
    if (s.account_id != c.account_id) return std::unexpected(NotFoundSnapshot(snap_id));
    API_RETURN_IF_ERROR(Authorize(c, "CreateRestoreRequest", {Arn(c, "snapshot", snap_id)}, s.tags));
    if (dry) return DryRunOk();
    if (s.state != SnapshotState::kCompleted)
      return Fail(api::ec2::kIncorrectState, "Snapshot '" + snap_id + "' is not completed.");
    RestoreRequestRecord r;
    r.request_id = "rr-" + NewSnapshotId().substr(5);
    r.account_id = c.account_id;
    r.snapshot_id = snap_id;
    r.requested_by = c.user;
    r.reason = reason;
    r.created_ms = clock->NowMillis();
    auto st = catalog->InsertRestoreRequest(r);
    if (!st) return std::unexpected(FromCatalog(st.error()));
    return r;
  }

  ApiResult<std::vector<RestoreRequestRecord>> ListRestoreRequests(const Caller& c,
                                                                   const std::vector<std::string>& ids,
                                                                   const std::optional<std::string>& state,
                                                                   bool dry) {
    API_RETURN_IF_ERROR(Authorize(c, "DescribeRestoreRequests", {}));
    if (dry) return DryRunOk();
    std::optional<std::string> scope;
    if (!c.admin) scope = c.account_id;  // administrators see every team's requests
    auto rows = catalog->ListRestoreRequests(scope);
    if (!rows) return std::unexpected(FromCatalog(rows.error()));
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

  ApiResult<RestoreRequestRecord> DecideRestoreRequest(const Caller& c, const std::string& id, bool approve,
                                                       const std::string& reason, bool dry) {
    if (Chars(reason) > 1024)
      return Fail(api::ec2::kInvalidParameterValue, "Value for parameter Reason is too long (max 1024 characters).");
    API_ASSIGN_OR_RETURN(RestoreRequestRecord r, FindRestoreRequest(c, id));
    API_RETURN_IF_ERROR(Authorize(c, approve ? "ApproveRestoreRequest" : "RejectRestoreRequest", {}));
    if (dry) return DryRunOk();
    if (r.state != "pending")
      return Fail(api::ec2::kIncorrectState, "The restore request '" + id + "' is already " + r.state + ".");
    std::string volume_id;
    std::optional<SnapshotRecord> snap;
    if (approve) {
      auto s = catalog->GetSnapshot(r.snapshot_id);
      if (!s) return std::unexpected(NotFoundSnapshot(r.snapshot_id));
      if (s->state != SnapshotState::kCompleted)
        return Fail(api::ec2::kIncorrectState, "Snapshot '" + r.snapshot_id + "' is not completed.");
      snap = *s;
      volume_id = NewVolumeId();
    }
    // Decide first (atomically pending → decided), so two administrators never both restore.
    auto decided = catalog->DecideRestoreRequest(id, approve, c.user + " (" + c.account_id + ")", reason,
                                                 volume_id, clock->NowMillis());
    if (!decided) {
      if (decided.error().code() == ErrorCode::kConflict)
        return Fail(api::ec2::kIncorrectState, decided.error().message());
      return std::unexpected(FromCatalog(decided.error()));
    }
    if (approve) {
      auto v = RestoreToNewVolume(*snap, volume_id);
      if (!v) {
        // The request is decided and names this volume: record why it has no data rather
        // than leave the id pointing at nothing.
        VolumeRecord failed;
        failed.volume_id = volume_id;
        failed.account_id = snap->account_id;
        failed.name = "restore of " + snap->snapshot_id + " (failed)";
        failed.size_bytes = snap->volume_size_bytes;
        failed.block_size = snap->block_size;
        failed.created_ms = clock->NowMillis();
        failed.snapshot_id = snap->snapshot_id;
        failed.state = "error";
        failed.state_message = "the restore could not start: " + v.error().message;
        (void)catalog->InsertVolume(failed);
        return std::unexpected(v.error());
      }
    }
    auto after = catalog->GetRestoreRequest(id);
    if (!after) return std::unexpected(FromCatalog(after.error()));
    return *after;
  }

  ApiResult<std::string> CreateRestoreRequest(const Caller& c, const QueryParams& p, const std::string& rid) {
    static constexpr std::string_view kKnown[] = {"Action", "Version", "SnapshotId", "Reason", "DryRun"};
    API_RETURN_IF_ERROR(p.RejectUnknown(kKnown));
    API_ASSIGN_OR_RETURN(std::string snap_id, p.GetString("SnapshotId"));
    API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
    API_ASSIGN_OR_RETURN(RestoreRequestRecord r,
                         FileRestoreRequest(c, snap_id, p.GetOptionalString("Reason").value_or(""), dry));
    return RenderRestoreRequest("CreateRestoreRequest", rid, r);
  }

  ApiResult<std::string> DescribeRestoreRequests(const Caller& c, const QueryParams& p, const std::string& rid) {
    API_ASSIGN_OR_RETURN(std::vector<std::string> ids, p.GetList("RestoreRequestId"));
    API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
    API_ASSIGN_OR_RETURN(auto rows, ListRestoreRequests(c, ids, p.GetOptionalString("State"), dry));
    api::XmlWriter w = api::BeginEc2Response("DescribeRestoreRequests", rid);
    w.Open("restoreRequestSet");
    for (const auto& r : rows) {
      w.Open("item");
      WriteRestoreRequest(w, r);
      w.Close();
    }
    w.Close();
    return std::move(w).Finish();
  }

  ApiResult<std::string> DecideRestoreRequest(const Caller& c, const QueryParams& p, const std::string& rid,
                                              bool approve) {
    static constexpr std::string_view kKnown[] = {"Action", "Version", "RestoreRequestId", "Reason", "DryRun"};
    API_RETURN_IF_ERROR(p.RejectUnknown(kKnown));
    API_ASSIGN_OR_RETURN(std::string id, p.GetString("RestoreRequestId"));
    API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
    API_ASSIGN_OR_RETURN(RestoreRequestRecord r,
                         DecideRestoreRequest(c, id, approve, p.GetOptionalString("Reason").value_or(""), dry));
    return RenderRestoreRequest(approve ? "ApproveRestoreRequest" : "RejectRestoreRequest", rid, r);
  }

  // Background restores: one thread each, cancelled and joined when the service stops.
  std::mutex restores_mu;
  std::vector<std::thread> restores;  // guarded by restores_mu
  std::atomic<bool> stopping{false};

  void StartRestore(const std::string& volume_id, const std::string& snapshot_id,
                    std::shared_ptr<BlockTarget> target) {
    std::lock_guard lock(restores_mu);
    restores.emplace_back([this, volume_id, snapshot_id, target] {
      SnapshotEngine engine(repo, pool);
      auto done = engine.Restore(snapshot_id, target.get(), nullptr, &stopping);
      if (done) {
        (void)catalog->SetVolumeState(volume_id, "available");
      } else {
        std::string why = stopping ? "the service stopped during the restore" : done.error().message();
        (void)catalog->SetVolumeState(volume_id, "error", "restore from " + snapshot_id + " failed: " + why);
      }
    });
  }

  void StopRestores() {
    stopping = true;
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(restores_mu);
      threads.swap(restores);
    }
    for (auto& t : threads) t.join();
  }

  // Volumes left `creating` by a service that stopped or crashed never got their data.
  void SettleInterruptedRestores() {
    auto vols = catalog->ListVolumes(std::nullopt);
    if (!vols) return;
    for (const auto& v : *vols)
      if (v.state == "creating")
        (void)catalog->SetVolumeState(v.volume_id, "error", "interrupted: the service stopped during the restore");
  }

  // ---- the JSON API (/api/v1/…, SigV4 service "snapvol"): what the console uses ----

  static nlohmann::json ToJson(const RestoreRequestRecord& r) {
    nlohmann::json j = {{"restoreRequestId", r.request_id}, {"snapshotId", r.snapshot_id},
                        {"accountId", r.account_id},        {"requestedBy", r.requested_by},
                        {"reason", r.reason},               {"state", r.state},
                        {"requestedAt", FormatIso8601(r.created_ms)}};
    if (r.state != "pending") {
      j["decidedBy"] = r.decided_by;
      j["decisionReason"] = r.decision_reason;
      j["decidedAt"] = FormatIso8601(r.decided_ms);
    }
    if (!r.volume_id.empty()) j["volumeId"] = r.volume_id;
    return j;
  }

  // A JSON body's string member; absent → "" unless required.
  static ApiResult<std::string> JsonString(const nlohmann::json& body, const char* name, bool required) {
    auto it = body.find(name);
    if (it == body.end() || it->is_null()) {
      if (required) return std::unexpected(api::MissingParameter(name));
      return std::string();
    }
    if (!it->is_string())
      return Fail(api::ec2::kInvalidParameterValue, std::string("Value for parameter ") + name + " must be a string.");
    return it->get<std::string>();
  }

  // The last `limit` lines of the audit log (read from its end, not the whole file).
  ApiResult<nlohmann::json> AuditTail(size_t limit) const {
    nlohmann::json events = nlohmann::json::array();
    if (options.audit_log_path.empty()) return events;
    auto fd = OpenFile(options.audit_log_path, O_RDONLY);
    if (!fd) return events;  // nothing logged yet
    struct stat st {};
    if (fstat(fd->get(), &st) != 0) return Fail(api::ec2::kInternalError, "cannot read the audit log");
    uint64_t size = static_cast<uint64_t>(st.st_size);
    uint64_t window = std::min<uint64_t>(size, 8ull << 20);
    std::vector<uint8_t> buf(window);
    auto got = PreadFull(fd->get(), buf, size - window);
    if (!got) return Fail(api::ec2::kInternalError, "cannot read the audit log");
    std::string_view text(reinterpret_cast<const char*>(buf.data()), *got);
    if (window < size) text.remove_prefix(std::min(text.size(), text.find('\n') + 1));  // partial first line
    std::vector<std::string_view> lines;
    while (!text.empty()) {
      size_t nl = text.find('\n');
      std::string_view line = text.substr(0, nl);
      if (!line.empty()) lines.push_back(line);
      if (nl == std::string_view::npos) break;
      text.remove_prefix(nl + 1);
    }
    size_t first = lines.size() > limit ? lines.size() - limit : 0;
    for (size_t i = first; i < lines.size(); ++i) {
      auto j = nlohmann::json::parse(lines[i], nullptr, false);
      if (!j.is_discarded()) events.push_back(std::move(j));
    }
    return events;
  }


  ApiResult<nlohmann::json> DispatchJson(Caller& c, const RestCall& r) {
    const auto& seg = r.parts;
    auto is = [&](const char* method, std::initializer_list<const char*> path) {
      if (r.method != method || seg.size() != path.size()) return false;
      size_t i = 0;
      for (const char* want : path) {
        if (std::string_view(want) != "*" && seg[i] != want) return false;
        ++i;
      }
      return true;
    };
    if (is("GET", {"whoami"})) {
      c.record->action = "snapvol:GetCallerIdentity";
      return nlohmann::json{{"accountId", c.account_id}, {"alias", c.alias}, {"isAdmin", c.admin},
                            {"accessKeyId", c.access_key_id}, {"user", c.user}, {"region", options.region}};
    }
    if (is("GET", {"restore-requests"})) {
      c.record->action = "DescribeRestoreRequests";
      std::optional<std::string> state;
      if (auto it = r.query.find("state"); it != r.query.end()) state = it->second;
      API_ASSIGN_OR_RETURN(auto rows, ListRestoreRequests(c, {}, state, false));
      nlohmann::json a = nlohmann::json::array();
      for (const auto& rr : rows) a.push_back(ToJson(rr));
      return nlohmann::json{{"restoreRequests", a}};
    }
    if (is("POST", {"restore-requests"})) {
      c.record->action = "CreateRestoreRequest";
      API_ASSIGN_OR_RETURN(std::string snap, JsonString(r.body, "snapshotId", true));
      API_ASSIGN_OR_RETURN(std::string reason, JsonString(r.body, "reason", false));
      API_ASSIGN_OR_RETURN(auto rr, FileRestoreRequest(c, snap, reason, false));
      return nlohmann::json{{"restoreRequest", ToJson(rr)}};
    }
    if (is("POST", {"restore-requests", "*", "approve"}) || is("POST", {"restore-requests", "*", "reject"})) {
      bool approve = seg[2] == "approve";
      c.record->action = approve ? "ApproveRestoreRequest" : "RejectRestoreRequest";
      API_ASSIGN_OR_RETURN(std::string reason, JsonString(r.body, "reason", false));
      API_ASSIGN_OR_RETURN(auto rr, DecideRestoreRequest(c, seg[1], approve, reason, false));
      return nlohmann::json{{"restoreRequest", ToJson(rr)}};
    }
    if (is("GET", {"accounts"})) {
      c.record->action = "snapvol:ListAccounts";
      API_RETURN_IF_ERROR(Authorize(c, "snapvol:ListAccounts", {}));
      auto accts = catalog->ListAccounts();
      if (!accts) return std::unexpected(FromCatalog(accts.error()));
      auto keys = catalog->ListAccessKeys(std::nullopt);
      if (!keys) return std::unexpected(FromCatalog(keys.error()));
      auto attached = catalog->ListPolicyAttachments(std::nullopt);
      if (!attached) return std::unexpected(FromCatalog(attached.error()));
      nlohmann::json a = nlohmann::json::array();
      for (const auto& acct : *accts) {
        nlohmann::json k = nlohmann::json::array(), pol = nlohmann::json::array();
        for (const auto& key : *keys)
          if (key.account_id == acct.account_id)
            k.push_back({{"accessKeyId", key.access_key_id}, {"userName", key.user_name},
                         {"createdAt", FormatIso8601(key.created_ms)}});
        for (const auto& at : *attached)
          if (at.account_id == acct.account_id) pol.push_back(at.policy_name);
        a.push_back({{"accountId", acct.account_id}, {"alias", acct.alias}, {"isAdmin", acct.is_admin},
                     {"createdAt", FormatIso8601(acct.created_ms)}, {"accessKeys", k}, {"policies", pol}});
      }
      return nlohmann::json{{"accounts", a}};
    }
    if (is("POST", {"accounts"})) {
      c.record->action = "snapvol:CreateAccount";
      API_RETURN_IF_ERROR(Authorize(c, "snapvol:CreateAccount", {}));
      API_ASSIGN_OR_RETURN(std::string alias, JsonString(r.body, "alias", true));
      auto acct = accounts->CreateAccount(alias, false);
      if (!acct) return std::unexpected(FromCatalog(acct.error()));
      return nlohmann::json{{"account", {{"accountId", acct->account_id}, {"alias", acct->alias},
                                         {"isAdmin", acct->is_admin},
                                         {"createdAt", FormatIso8601(acct->created_ms)}}}};
    }
    if (is("POST", {"accounts", "*", "keys"})) {
      c.record->action = "snapvol:CreateAccessKey";
      API_RETURN_IF_ERROR(Authorize(c, "snapvol:CreateAccessKey", {}));
      auto acct = catalog->GetAccount(seg[1]);
      if (!acct) return Fail("InvalidAccount.NotFound", "The account '" + seg[1] + "' does not exist.");
      API_ASSIGN_OR_RETURN(std::string user, JsonString(r.body, "userName", false));
      auto key = accounts->CreateKey(acct->account_id, user);
      if (!key) return std::unexpected(FromCatalog(key.error()));
      return nlohmann::json{{"accessKey", {{"accessKeyId", key->access_key_id},
                                           {"secretAccessKey", key->secret_access_key},
                                           {"accountId", key->account_id},
                                           {"userName", key->user_name}}}};
    }
    if (is("GET", {"audit"})) {
      c.record->action = "snapvol:ReadAuditLog";
      API_RETURN_IF_ERROR(Authorize(c, "snapvol:ReadAuditLog", {}));
      size_t limit = 100;
      if (auto it = r.query.find("limit"); it != r.query.end()) {
        char* end = nullptr;
        unsigned long v = std::strtoul(it->second.c_str(), &end, 10);
        if (it->second.empty() || *end != '\0' || v < 1 || v > 10000)
          return std::unexpected(api::InvalidParameterValue("limit", it->second, "Expecting 1 to 10000."));
        limit = v;
      }
      API_ASSIGN_OR_RETURN(nlohmann::json events, AuditTail(limit));
      return nlohmann::json{{"events", events}};
    }
    return Fail(api::ec2::kInvalidAction, "No such API path: " + r.method + " /api/v1/" +
                                              [&] {
                                                std::string joined;
                                                for (const auto& p : seg) joined += (joined.empty() ? "" : "/") + p;
                                                return joined;
                                              }());
  }

  // ---- the DLM API (/policies…, SigV4 service "dlm"): lifecycle policies ----

  std::string PolicyArn(const std::string& account, const std::string& id) const {
    return "arn:aws:dlm:" + options.region + ":" + account + ":policy/" + id;
  }

  static ApiError DlmInvalid(std::string message, std::vector<std::string> required = {}) {
    ApiError e{"InvalidRequestException", std::move(message), 400};
    if (!required.empty()) {
      e.message += " (required: ";
      for (size_t i = 0; i < required.size(); ++i) e.message += (i ? ", " : "") + required[i];
      e.message += ")";
    }
    return e;
  }
  static ApiError DlmNotFound(const std::string& id) {
    return ApiError{"ResourceNotFoundException", "Lifecycle policy " + id + " does not exist.", 404};
  }

  ApiResult<LifecyclePolicyRecord> OwnLifecyclePolicy(const Caller& c, const std::string& id) const {
    if (!lifecycle::IsPolicyId(id)) return std::unexpected(DlmNotFound(id));
    auto p = catalog->GetLifecyclePolicy(id);
    if (!p || p->account_id != c.account_id) return std::unexpected(DlmNotFound(id));
    return *p;
  }

  nlohmann::json PolicyJson(const LifecyclePolicyRecord& p, bool full) const {
    nlohmann::json tags = nlohmann::json::parse(p.tags, nullptr, false);
    if (!tags.is_object()) tags = nlohmann::json::object();
    nlohmann::json j = {{"PolicyId", p.policy_id}, {"Description", p.description}, {"State", p.state},
                        {"Tags", tags}, {"PolicyType", "EBS_SNAPSHOT_MANAGEMENT"}};
    if (full) {
      j.erase("PolicyType");
      j["StatusMessage"] = p.state;
      j["ExecutionRoleArn"] = p.role_arn;
      j["DateCreated"] = FormatIso8601(p.created_ms);
      j["DateModified"] = FormatIso8601(p.modified_ms);
      j["PolicyDetails"] = nlohmann::json::parse(p.details, nullptr, false);
      j["PolicyArn"] = PolicyArn(p.account_id, p.policy_id);
    }
    return j;
  }

  // Checks the members of a Create/Update body shared by both; fills p.
  ApiStatus ApplyPolicyFields(const nlohmann::json& body, bool create, LifecyclePolicyRecord* p) {
    static const std::set<std::string> kKnown = {"ExecutionRoleArn", "Description", "State", "PolicyDetails", "Tags"};
    for (const auto& [k, v] : body.items())
      if (!kKnown.count(k) || (!create && k == "Tags"))
        return std::unexpected(DlmInvalid("Unknown parameter " + k + "."));
    if (create) {
      std::vector<std::string> missing;
      for (const char* k : {"ExecutionRoleArn", "Description", "State", "PolicyDetails"})
        if (!body.contains(k)) missing.push_back(k);
      if (!missing.empty()) return std::unexpected(DlmInvalid("Missing required parameters.", missing));
    }
    if (body.contains("ExecutionRoleArn")) {
      const auto& v = body["ExecutionRoleArn"];
      if (!v.is_string() || v.get<std::string>().rfind("arn:", 0) != 0 || v.get<std::string>().size() > 2048)
        return std::unexpected(DlmInvalid("ExecutionRoleArn must be an IAM role ARN (arn:…:role/…)."));
      p->role_arn = v.get<std::string>();
    }
    if (body.contains("Description")) {
      const auto& v = body["Description"];
      static constexpr std::string_view kChars =
          "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz _-";
      if (!v.is_string() || v.get<std::string>().empty() || v.get<std::string>().size() > 500 ||
          v.get<std::string>().find_first_not_of(kChars) != std::string::npos)
        return std::unexpected(DlmInvalid("Description must be 1-500 of 0-9 A-Z a-z space _ -."));
      p->description = v.get<std::string>();
    }
    if (body.contains("State")) {
      if (body["State"] != "ENABLED" && body["State"] != "DISABLED")
        return std::unexpected(DlmInvalid("State must be ENABLED or DISABLED."));
      p->state = body["State"].get<std::string>();
    }
    if (body.contains("Tags")) {
      const auto& t = body["Tags"];
      if (!t.is_object() || t.size() > 45) return std::unexpected(DlmInvalid("Tags must be a map of at most 45 tags."));
      for (const auto& [k, v] : t.items()) {
        if (!v.is_string() || k.empty() || k.size() > 128 || v.get<std::string>().size() > 256 ||
            k.rfind("aws:", 0) == 0 || k.rfind("snapvol:", 0) == 0)
          return std::unexpected(DlmInvalid("Tag " + k + " is not valid (keys 1-128, values 0-256, no aws: or snapvol: prefix)."));
      }
      p->tags = t.dump();
    }
    if (body.contains("PolicyDetails")) {
      auto parsed = lifecycle::ParsePolicyDetails(body["PolicyDetails"], lifecycle::IsDefaultPolicy(*p));
      if (!parsed) return std::unexpected(DlmInvalid(parsed.error().message()));
      p->details = body["PolicyDetails"].dump();
    }
    return {};
  }

  static nlohmann::json RunJson(const LifecycleRunRecord& r) {
    nlohmann::json j = {{"PolicyId", r.policy_id}, {"ScheduleName", r.schedule_name},
                        {"ScheduledTime", FormatIso8601(r.scheduled_ms)}, {"StartTime", FormatIso8601(r.started_ms)},
                        {"State", r.state}, {"SnapshotsCreated", r.created}, {"SnapshotsFailed", r.failed},
                        {"SnapshotsDeleted", r.deleted}, {"MissedRuns", r.missed}, {"Message", r.message}};
    if (r.finished_ms) j["EndTime"] = FormatIso8601(r.finished_ms);
    return j;
  }


  ApiResult<nlohmann::json> DispatchDlm(Caller& c, const RestCall& r) {
    const auto& seg = r.parts;
    if (seg.empty() || seg[0] != "policies")
      return std::unexpected(ApiError{"InvalidRequestException", "No such DLM operation.", 400});
    const std::string all_arn = PolicyArn(c.account_id, "*");
    if (seg.size() == 1 && r.method == "POST") {
      c.record->action = "dlm:CreateLifecyclePolicy";
      API_RETURN_IF_ERROR(Authorize(c, "dlm:CreateLifecyclePolicy", {all_arn}));
      LifecyclePolicyRecord p;
      p.policy_id = lifecycle::NewPolicyId();
      p.account_id = c.account_id;
      API_RETURN_IF_ERROR(ApplyPolicyFields(r.body, true, &p));
      p.created_ms = p.modified_ms = clock->NowMillis();
      auto st = catalog->InsertLifecyclePolicy(p);
      if (!st) return std::unexpected(FromCatalog(st.error()));
      return nlohmann::json{{"PolicyId", p.policy_id}};
    }
    if (seg.size() == 1 && r.method == "GET") {
      c.record->action = "dlm:GetLifecyclePolicies";
      API_RETURN_IF_ERROR(Authorize(c, "dlm:GetLifecyclePolicies", {all_arn}));
      auto rows = catalog->ListLifecyclePolicies(c.account_id);
      if (!rows) return std::unexpected(FromCatalog(rows.error()));
      auto values = [&](const char* key) {
        std::vector<std::string> out;
        auto [a, b] = r.query.equal_range(key);
        for (auto it = a; it != b; ++it) out.push_back(it->second);
        return out;
      };
      auto ids = values("policyIds"), states = values("state"), types = values("resourceTypes");
      auto target_tags = values("targetTags"), add_tags = values("tagsToAdd");
      for (const auto& st : states)
        if (st != "ENABLED" && st != "DISABLED" && st != "ERROR")
          return std::unexpected(DlmInvalid("state must be ENABLED, DISABLED or ERROR."));
      nlohmann::json out = nlohmann::json::array();
      for (const auto& p : *rows) {
        if (!ids.empty() && std::find(ids.begin(), ids.end(), p.policy_id) == ids.end()) continue;
        if (!states.empty() && std::find(states.begin(), states.end(), p.state) == states.end()) continue;
        auto details = nlohmann::json::parse(p.details, nullptr, false);
        auto parsed = lifecycle::ParsePolicyDetails(details, lifecycle::IsDefaultPolicy(p));
        if (!types.empty() && (!parsed || std::find(types.begin(), types.end(), parsed->resource_type) == types.end()))
          continue;
        auto has = [&](const std::vector<Tag>& tags, const std::string& kv) {
          return std::any_of(tags.begin(), tags.end(), [&](const Tag& t) { return t.key + "=" + t.value == kv; });
        };
        if (!target_tags.empty() &&
            (!parsed || std::none_of(target_tags.begin(), target_tags.end(),
                                     [&](const std::string& kv) { return has(parsed->target_tags, kv); })))
          continue;
        if (!add_tags.empty() &&
            (!parsed || std::none_of(add_tags.begin(), add_tags.end(), [&](const std::string& kv) {
               return std::any_of(parsed->schedules.begin(), parsed->schedules.end(),
                                  [&](const lifecycle::Schedule& s) { return has(s.tags_to_add, kv); });
             })))
          continue;
        out.push_back(PolicyJson(p, false));
      }
      return nlohmann::json{{"Policies", out}};
    }
    if (seg.size() == 2 || (seg.size() == 3 && seg[2].empty())) {
      const std::string& id = seg[1];
      if (r.method == "GET") {
        c.record->action = "dlm:GetLifecyclePolicy";
        API_ASSIGN_OR_RETURN(auto p, OwnLifecyclePolicy(c, id));
        API_RETURN_IF_ERROR(Authorize(c, "dlm:GetLifecyclePolicy", {PolicyArn(c.account_id, id)}));
        return nlohmann::json{{"Policy", PolicyJson(p, true)}};
      }
      if (r.method == "PATCH") {
        c.record->action = "dlm:UpdateLifecyclePolicy";
        API_ASSIGN_OR_RETURN(auto p, OwnLifecyclePolicy(c, id));
        API_RETURN_IF_ERROR(Authorize(c, "dlm:UpdateLifecyclePolicy", {PolicyArn(c.account_id, id)}));
        API_RETURN_IF_ERROR(ApplyPolicyFields(r.body, false, &p));
        p.modified_ms = clock->NowMillis();
        auto st = catalog->UpdateLifecyclePolicy(p);
        if (!st) return std::unexpected(FromCatalog(st.error()));
        return nlohmann::json::object();
      }
      if (r.method == "DELETE") {
        c.record->action = "dlm:DeleteLifecyclePolicy";
        API_ASSIGN_OR_RETURN(auto p, OwnLifecyclePolicy(c, id));
        API_RETURN_IF_ERROR(Authorize(c, "dlm:DeleteLifecyclePolicy", {PolicyArn(c.account_id, id)}));
        auto st = catalog->DeleteLifecyclePolicy(p.policy_id);
        if (!st) return std::unexpected(FromCatalog(st.error()));
        return nlohmann::json::object();
      }
    }
    // snapvol's own: the runs of a policy (GET /policies/{id}/runs?limit=N).
    if (seg.size() == 3 && seg[2] == "runs" && r.method == "GET") {
      c.record->action = "dlm:GetLifecyclePolicyRuns";
      API_ASSIGN_OR_RETURN(auto p, OwnLifecyclePolicy(c, seg[1]));
      API_RETURN_IF_ERROR(Authorize(c, "dlm:GetLifecyclePolicyRuns", {PolicyArn(c.account_id, p.policy_id)}));
      size_t limit = 50;
      if (auto it = r.query.find("limit"); it != r.query.end()) {
        char* end = nullptr;
        unsigned long v = std::strtoul(it->second.c_str(), &end, 10);
        if (it->second.empty() || *end != '\0' || v < 1 || v > 1000)
          return std::unexpected(DlmInvalid("limit must be 1 to 1000."));
        limit = v;
      }
      auto runs = catalog->ListLifecycleRuns(p.policy_id, limit);
      if (!runs) return std::unexpected(FromCatalog(runs.error()));
      nlohmann::json out = nlohmann::json::array();
      for (const auto& run : *runs) out.push_back(RunJson(run));
      return nlohmann::json{{"Runs", out}};
    }
    return std::unexpected(ApiError{"InvalidRequestException", "No such DLM operation: " + r.method + " /" +
                                    [&] {
                                      std::string joined;
                                      for (const auto& p : seg) joined += (joined.empty() ? "" : "/") + p;
                                      return joined;
                                    }(), 400});
  }

  ApiResult<std::string> Dispatch(const Caller& c, const std::string& action, const QueryParams& p,
                                  const std::string& rid) {
    if (action == "CreateSnapshot") return CreateSnapshot(c, p, rid);
    if (action == "DescribeSnapshots") return DescribeSnapshots(c, p, rid);
    if (action == "DeleteSnapshot") return DeleteSnapshot(c, p, rid);
    if (action == "CreateTags") return ChangeTags(c, p, rid, true);
    if (action == "DeleteTags") return ChangeTags(c, p, rid, false);
    if (action == "DescribeVolumes") return DescribeVolumes(c, p, rid);
    if (action == "CreateSnapshots") return CreateSnapshots(c, p, rid);
    if (action == "CopySnapshot") return CopySnapshot(c, p, rid);
    if (action == "CreateRestoreRequest") return CreateRestoreRequest(c, p, rid);
    if (action == "DescribeRestoreRequests") return DescribeRestoreRequests(c, p, rid);
    if (action == "ApproveRestoreRequest") return DecideRestoreRequest(c, p, rid, true);
    if (action == "RejectRestoreRequest") return DecideRestoreRequest(c, p, rid, false);
    if (action == "DescribeTags") return DescribeTags(c, p, rid);
    if (action == "DescribeInstances") return DescribeInstances(c, p, rid);
    if (action == "CreateVolume") return CreateVolume(c, p, rid);
    if (action == "AttachVolume") return AttachVolume(c, p, rid);
    if (action == "DetachVolume") return DetachVolume(c, p, rid);
    if (action == "DeleteVolume") return DeleteVolume(c, p, rid);
    if (action == "DescribeVolumeStatus") return DescribeVolumeStatus(c, p, rid);
    if (action == "LockSnapshot") return LockSnapshot(c, p, rid);
    if (action == "UnlockSnapshot") return UnlockSnapshot(c, p, rid);
    if (action == "DescribeLockedSnapshots") return DescribeLockedSnapshots(c, p, rid);
    return Fail(api::ec2::kInvalidAction, "The action " + action + " is not valid for this web service.");
  }
};

Ec2Service::Ec2Service(Catalog* catalog, Repository* repo, ThreadPool* pool, SnapshotJobs* jobs,
                       Accounts* accounts, const Key256& token_key, Ec2ServiceOptions options,
                       Clock* clock)
    : impl_(std::make_shared<Impl>()) {
  impl_->catalog = catalog;
  impl_->repo = repo;
  impl_->pool = pool;
  impl_->jobs = jobs;
  impl_->accounts = accounts;
  impl_->options = std::move(options);
  impl_->clock = clock;
  iam::VerifierOptions vo;
  vo.region = impl_->options.region;
  vo.service = "ec2";
  auto lookup = [accounts](std::string_view key_id) -> Result<iam::SecretInfo> {
    ASSIGN_OR_RETURN(auto id, accounts->Identify(std::string(key_id)));
    return iam::SecretInfo{id->key.secret_access_key, id->key.account_id, id->key.user_name};
  };
  impl_->verifier = std::make_unique<iam::SigV4Verifier>(vo, lookup, clock);
  vo.service = "snapvol";
  impl_->json_verifier = std::make_unique<iam::SigV4Verifier>(vo, lookup, clock);
  vo.service = "dlm";
  impl_->dlm_verifier = std::make_unique<iam::SigV4Verifier>(vo, lookup, clock);
  auto codec = api::PageTokenCodec::Create(token_key);
  if (codec) impl_->tokens.emplace(std::move(*codec));
  impl_->SettleInterruptedRestores();
}

Ec2Service::~Ec2Service() { impl_->StopRestores(); }

api::XmlResponse Ec2Service::Handle(const HttpCall& call, RequestRecord* record) {
  const std::string rid = NewRequestId();
  RequestRecord scratch;
  RequestRecord& rec = record ? *record : scratch;
  rec.request_id = rid;
  auto fail = [&](const ApiError& e) {
    rec.error_code = e.code;
    return api::RenderErrorResponse(e, rid);
  };
  std::string_view target = call.target;
  auto q = target.find('?');
  std::string_view path = target.substr(0, q);
  std::string_view query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);

  iam::HttpRequestView view{call.method, path, query, call.headers, call.body};
  auto who = impl_->verifier->Verify(view);
  if (!who) {
    rec.detail = who.error().detail;
    std::string code = iam::AuthCodeName(who.error().code);
    return fail(api::MakeApiError(code, who.error().message));
  }
  // The HTTP layer caps bodies at 2 MiB; within that, an oversized value gets the
  // parameter's own error (InvalidParameterValue) rather than a blanket size error.
  api::QueryLimits limits;
  limits.max_input_bytes = 2 << 20;
  auto raw_params = QueryParams::ParseQueryString(query, limits);
  if (!raw_params) return fail(raw_params.error());
  // The signature of a presigned request travels in X-Amz-* parameters: not the action's.
  QueryParams query_params;
  for (const auto& [k, v] : raw_params->entries()) {
    if (k.rfind("X-Amz-", 0) == 0) continue;
    auto added = query_params.Add(k, v);
    if (!added) return fail(added.error());
  }
  auto params = std::optional<QueryParams>(std::move(query_params));
  if (call.method == "POST") {
    auto body = QueryParams::ParseFormBody(call.body, limits);
    if (!body) return fail(body.error());
    for (const auto& [k, v] : body->entries()) {
      auto added = params->Add(k, v);
      if (!added) return fail(added.error());
    }
  }
  auto action = params->GetString("Action");
  if (!action) return fail(api::MakeApiError(api::ec2::kMissingAction, "The request must contain the parameter Action."));

  rec.action = *action;
  Caller caller;
  if (auto resolved = ResolveCaller(*who, &rec, &caller); !resolved) return fail(resolved.error());
  auto out = impl_->Dispatch(caller, *action, *params, rid);
  if (!out) return fail(out.error());
  return {200, std::move(*out)};
}

api::ApiStatus Ec2Service::ResolveCaller(const iam::VerifiedIdentity& who, RequestRecord* rec, Caller* caller) {
  rec->account_id = who.account_id;
  rec->user = who.user;
  rec->access_key_id = who.access_key_id;
  caller->record = rec;
  caller->account_id = who.account_id;
  caller->user = who.user;
  caller->access_key_id = who.access_key_id;
  auto id = impl_->accounts->Identify(who.access_key_id);
  if (!id) return std::unexpected(api::FromError(id.error()));
  caller->alias = (*id)->account.alias;
  caller->admin = (*id)->account.is_admin;
  caller->policies = (*id)->policies;
  return {};
}

api::ApiStatus Ec2Service::PrepareRest(const HttpCall& call, const iam::SigV4Verifier& verifier,
                                       std::string_view prefix, RequestRecord* rec, RestCall* out,
                                       Caller* caller) {
  std::string_view target = call.target;
  auto q = target.find('?');
  std::string_view path = target.substr(0, q);
  std::string_view query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  iam::HttpRequestView view{call.method, path, query, call.headers, call.body};
  auto who = verifier.Verify(view);
  if (!who) {
    rec->detail = who.error().detail;
    return std::unexpected(api::MakeApiError(iam::AuthCodeName(who.error().code), who.error().message));
  }
  if (path.substr(0, prefix.size()) != prefix)
    return std::unexpected(api::MakeApiError(api::ec2::kInvalidAction, "No such API path: " + std::string(path)));
  out->method = call.method;
  std::string_view rest = path.substr(prefix.size());
  for (;;) {
    size_t slash = rest.find('/');
    out->parts.emplace_back(rest.substr(0, slash));
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  api::QueryLimits limits;
  auto params = QueryParams::ParseQueryString(query, limits);
  if (!params) return std::unexpected(params.error());
  for (const auto& [k, v] : params->entries())
    if (k.rfind("X-Amz-", 0) != 0) out->query.emplace(k, v);
  out->body = nlohmann::json::object();
  if (!call.body.empty()) {
    out->body = nlohmann::json::parse(call.body, nullptr, false);
    if (out->body.is_discarded() || !out->body.is_object())
      return std::unexpected(api::MakeApiError(api::ec2::kInvalidParameterValue, "The request body must be a JSON object."));
  }
  return ResolveCaller(*who, rec, caller);
}

JsonResponse Ec2Service::HandleDlm(const HttpCall& call, RequestRecord* record) {
  const std::string rid = NewRequestId();
  RequestRecord scratch;
  RequestRecord& rec = record ? *record : scratch;
  rec.request_id = rid;
  // DLM's errors: the type in x-amzn-ErrorType (botocore reads it from there), the message
  // and the type in the body too.
  auto fail = [&](ApiError e) {
    if (e.code == api::ec2::kUnauthorizedOperation) {
      e.code = "AccessDeniedException";
    } else if (e.code == api::ec2::kAuthFailure) {
      e.code = "InvalidSignatureException";
      e.http_status = 403;
    } else if (e.http_status == 400 && e.code != "InvalidRequestException") {
      e.message = e.code + ": " + e.message;
      e.code = "InvalidRequestException";
    }
    rec.error_code = e.code;
    nlohmann::json j = {{"Message", e.message}, {"message", e.message}, {"Code", e.code}};
    return JsonResponse{e.http_status, j.dump(), {{"x-amzn-ErrorType", e.code}, {"x-amzn-RequestId", rid}}};
  };
  RestCall route;
  Caller caller;
  if (auto ok = PrepareRest(call, *impl_->dlm_verifier, "/", &rec, &route, &caller); !ok) return fail(ok.error());
  auto out = impl_->DispatchDlm(caller, route);
  if (!out) return fail(out.error());
  return {200, out->dump(), {{"x-amzn-RequestId", rid}}};
}

JsonResponse Ec2Service::HandleJson(const HttpCall& call, RequestRecord* record) {
  const std::string rid = NewRequestId();
  RequestRecord scratch;
  RequestRecord& rec = record ? *record : scratch;
  rec.request_id = rid;
  auto fail = [&](const ApiError& e) {
    rec.error_code = e.code;
    nlohmann::json j = {{"error", {{"code", e.code}, {"message", e.message}}}, {"requestId", rid}};
    return JsonResponse{e.http_status, j.dump()};
  };
  RestCall route;
  Caller caller;
  if (auto ok = PrepareRest(call, *impl_->json_verifier, "/api/v1/", &rec, &route, &caller); !ok)
    return fail(ok.error());
  auto out = impl_->DispatchJson(caller, route);
  if (!out) return fail(out.error());
  return {200, out->dump()};
}

}  // namespace snapvol
