// The steps every EC2 handler shares (see ec2_context.h).
#include "api/ec2_context.h"

#include <algorithm>

#include "core/ids.h"
#include "managed/volume_files.h"

namespace snapvol::api {

namespace {
constexpr size_t kMaxDescriptionChars = 255;
}  // namespace

size_t Chars(std::string_view s) {
  return static_cast<size_t>(std::count_if(s.begin(), s.end(), [](char ch) {
    return (static_cast<unsigned char>(ch) & 0xC0) != 0x80;
  }));
}

int64_t SizeGib(uint64_t bytes) { return static_cast<int64_t>((bytes + kGiB - 1) / kGiB); }

std::unexpected<ApiError> Fail(std::string_view code, std::string message) { return ApiFail(code, std::move(message)); }

ApiError NotFoundSnapshot(const std::string& id) {
  return MakeApiError(ec2::kInvalidSnapshotNotFound, "The snapshot '" + id + "' does not exist.");
}
ApiError NotFoundVolume(const std::string& id) {
  return MakeApiError(ec2::kInvalidVolumeNotFound, "The volume '" + id + "' does not exist.");
}
ApiError NotFoundInstance(const std::string& id) {
  return MakeApiError(ec2::kInvalidInstanceIdNotFound, "The instance ID '" + id + "' does not exist");
}
ApiError MalformedId(std::string_view code, const std::string& id, std::string_view prefix) {
  return MakeApiError(code, "Invalid id: \"" + id + "\" (expecting \"" + std::string(prefix) + "...\")");
}

std::vector<Ec2Tag> ToEc2Tags(const std::vector<Tag>& tags) {
  std::vector<Ec2Tag> out;
  out.reserve(tags.size());
  for (const auto& t : tags) out.push_back({t.key, t.value});
  return out;
}

std::vector<Tag> FromEc2Tags(const std::vector<Ec2Tag>& tags) {
  std::vector<Tag> out;
  out.reserve(tags.size());
  for (const auto& t : tags) out.push_back({t.key, t.value});
  return out;
}

// The catalog keeps a name equal to its Name tag (a name given outside the tags, as by
// snapvol instance create --name, is stored as one), so the tags are all there is to show.
std::vector<Ec2Tag> InstanceTags(const InstanceRecord& i) { return ToEc2Tags(i.tags); }
std::vector<Ec2Tag> VolumeTags(const VolumeRecord& v) { return ToEc2Tags(v.tags); }
std::vector<Ec2Tag> SnapshotTags(const SnapshotRecord& s) {
  std::vector<Tag> user;
  for (const Tag& t : s.tags)
    if (t.key != kConsistencyTag && t.key != kChangedBlocksTag) user.push_back(t);
  return ToEc2Tags(user);
}

ApiStatus CheckDescription(const std::string& d) {
  if (Chars(d) > kMaxDescriptionChars)
    return Fail(ec2::kInvalidParameterValue, "Value for parameter Description is too long (max 255 characters).");
  return {};
}

std::string ReservedTagKeyMessage(const std::string& key) {
  return "Value ( " + key + " ) for parameter key is invalid. Tag keys starting with 'aws:' are reserved for internal use";
}

ApiStatus CheckTags(const std::vector<Tag>& tags, const char* what) {
  // The system's tags (aws:dlm:lifecycle-policy-id, aws:snapvol:consistency, …) say which
  // snapshots a lifecycle policy made and may prune, how a snapshot was cut, where a volume
  // lives: nobody else may set them (core/system_tags.h).
  for (const auto& t : tags)
    if (HasReservedTagPrefix(t.key)) return Fail(ec2::kInvalidParameterValue, ReservedTagKeyMessage(t.key));
  auto st = ValidateTagList(tags, what);
  if (!st) return Fail(ec2::kInvalidParameterValue, st.error().message());
  return {};
}

ApiResult<bool> DryRun(const QueryParams& p) {
  API_ASSIGN_OR_RETURN(auto dry, p.GetOptionalBool("DryRun"));
  return dry.value_or(false);
}

std::unexpected<ApiError> DryRunOk() {
  return Fail(ec2::kDryRunOperation, "Request would have succeeded, but DryRun flag is set.");
}

const std::string& AliasCache::Get(const std::string& account_id) {
  auto it = aliases_.find(account_id);
  if (it != aliases_.end()) return it->second;
  auto acct = catalog_->GetAccount(account_id);
  return aliases_[account_id] = acct ? acct->alias : "";
}

std::string Ec2Context::Arn(const Caller& c, const std::string& type, const std::string& id) const {
  return "arn:aws:ec2:" + options.region + ":" + c.account_id + ":" + type + "/" + id;
}

ApiStatus Ec2Context::Authorize(const Caller& c, const std::string& action, std::vector<std::string> resources,
                                const std::vector<Tag>& resource_tags) const {
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
  if (!d.allowed()) return Fail(ec2::kUnauthorizedOperation, kUnauthorizedMessage);
  return {};
}

namespace {
// Notes in the audit record whose resource an administrator acted on.
void NoteOwner(const Caller& c, const std::string& owner) {
  if (c.record && owner != c.account_id) c.record->resource_account_id = owner;
}
}  // namespace

ApiResult<VolumeRecord> Ec2Context::VisibleVolume(const Caller& c, const std::string& id) const {
  if (!IsVolumeId(id)) return std::unexpected(MalformedId("InvalidVolumeID.Malformed", id, "vol-"));
  auto v = catalog->GetVolume(id);
  if (!v) {
    if (v.error().code() == ErrorCode::kNotFound) return std::unexpected(NotFoundVolume(id));
    return std::unexpected(FromError(v.error()));
  }
  if (v->account_id != c.account_id && !c.admin) return std::unexpected(NotFoundVolume(id));
  NoteOwner(c, v->account_id);
  return *v;
}

ApiResult<SnapshotRecord> Ec2Context::FindSnapshot(const std::string& id) const {
  if (!IsSnapshotId(id)) return std::unexpected(MalformedId("InvalidSnapshotID.Malformed", id, "snap-"));
  auto s = catalog->GetSnapshot(id);
  if (!s) {
    if (s.error().code() == ErrorCode::kNotFound) return std::unexpected(NotFoundSnapshot(id));
    return std::unexpected(FromError(s.error()));
  }
  return *s;
}

ApiResult<SnapshotRecord> Ec2Context::VisibleSnapshot(const Caller& c, const std::string& id) const {
  API_ASSIGN_OR_RETURN(SnapshotRecord s, FindSnapshot(id));
  // Administrators reach every account's snapshots (to restore them); others only their own.
  if (s.account_id != c.account_id && !c.admin) return std::unexpected(NotFoundSnapshot(id));
  NoteOwner(c, s.account_id);
  return s;
}

ApiResult<SnapshotRecord> Ec2Context::ReadableSnapshot(const Caller& c, const std::string& id) const {
  API_ASSIGN_OR_RETURN(SnapshotRecord s, FindSnapshot(id));
  if (s.account_id == c.account_id || c.admin) {
    NoteOwner(c, s.account_id);
    return s;
  }
  auto grants = catalog->ListSnapshotPermissions(id);
  if (!grants) return std::unexpected(FromError(grants.error()));
  for (const auto& g : *grants)
    if (g == c.account_id || g == "all") return s;
  return std::unexpected(NotFoundSnapshot(id));
}

ApiResult<InstanceRecord> Ec2Context::VisibleInstance(const Caller& c, const std::string& id) const {
  if (!IsInstanceId(id)) return std::unexpected(MalformedId("InvalidInstanceID.Malformed", id, "i-"));
  auto i = catalog->GetInstance(id);
  if (!i) {
    if (i.error().code() == ErrorCode::kNotFound) return std::unexpected(NotFoundInstance(id));
    return std::unexpected(FromError(i.error()));
  }
  if (i->account_id != c.account_id && !c.admin) return std::unexpected(NotFoundInstance(id));
  NoteOwner(c, i->account_id);
  return *i;
}

Ec2Snapshot Ec2Context::ToEc2(const SnapshotRecord& s) const {
  AliasCache aliases(catalog);
  return ToEc2(s, aliases);
}

Ec2Snapshot Ec2Context::ToEc2(const SnapshotRecord& s, AliasCache& aliases) const {
  Ec2Snapshot e;
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
  // How it was cut is not a tag to EC2's clients: tools that purge the tags they did not set
  // (Ansible's purge_tags, consoles that count 50) would trip over it. snapvol's own members.
  e.tags = SnapshotTags(s);
  for (const Tag& t : s.tags) {
    if (t.key == kConsistencyTag) e.consistency = t.value;
    if (t.key == kChangedBlocksTag) e.changed_blocks = t.value;
  }
  return e;
}

Ec2Volume Ec2Context::ToEc2(const VolumeRecord& v) const {
  Ec2Volume e;
  e.volume_id = v.volume_id;
  e.size_gib = SizeGib(v.size_bytes);
  e.availability_zone = AvailabilityZone();
  e.create_time_ms = v.created_ms;
  e.tags = VolumeTags(v);
  e.snapshot_id = v.snapshot_id;
  e.state = v.state.empty() ? "available" : v.state;
  e.volume_type = v.volume_type;
  // gp2's baseline: 3 IOPS per GiB, at least 100 and at most 16,000; standard has none.
  if (v.volume_type == "gp2") e.iops = std::clamp<int64_t>(3 * e.size_gib, 100, 16000);
  // The store encrypts every snapshot or none, so a volume restored from one is encrypted
  // exactly when the store is; an empty volume's file is not.
  e.encrypted = !v.snapshot_id.empty() && repo->encrypted();
  if (!v.instance_id.empty() && e.state == "available") {
    e.state = "in-use";
    e.attachments.push_back({v.volume_id, v.instance_id, v.device, "attached",
                             v.attach_ms ? v.attach_ms : v.created_ms, false});
  }
  return e;
}

ApiResult<std::vector<Tag>> Ec2Context::TagsFromSpecifications(const QueryParams& p, const char* type,
                                                               std::optional<std::string>* placement) const {
  API_ASSIGN_OR_RETURN(auto specs, p.GetTagSpecifications());
  std::vector<Tag> tags;
  for (const auto& spec : specs) {
    if (spec.resource_type != type)
      return Fail(ec2::kInvalidParameterValue,
                  "'" + spec.resource_type + "' is not a valid taggable resource type for this operation.");
    for (const auto& t : spec.tags) {
      if (placement && t.key == kHostTag) {
        if (placement->has_value())
          return Fail(ec2::kInvalidParameterValue, "The tag " + t.key + " was given more than once.");
        if (t.value.empty())
          return Fail(ec2::kInvalidParameterValue, "Value () for tag " + t.key + " is invalid: name a host.");
        *placement = t.value;
        continue;
      }
      tags.push_back({t.key, t.value});
    }
  }
  API_RETURN_IF_ERROR(CheckTags(tags, "TagSpecification"));
  return tags;
}

ApiResult<std::optional<std::string>> ClientTokens::Begin(const std::string& key, const std::string& fingerprint,
                                                         std::unique_lock<std::mutex>* held) {
  *held = std::unique_lock<std::mutex>(mu_);
  auto it = done_.find(key);
  if (it == done_.end()) return std::optional<std::string>();
  if (it->second.first != fingerprint)
    return Fail("IdempotentParameterMismatch",
                "The ClientToken was used before with other parameters; use a new token for a new request.");
  return std::optional<std::string>(it->second.second);
}

void ClientTokens::Finish(const std::string& key, const std::string& fingerprint, const std::string& result) {
  // Replaces an earlier result whose volume is gone (the retry made a new one).
  if (done_.insert_or_assign(key, std::make_pair(fingerprint, result)).second) order_.push_back(key);
  if (order_.size() > kMax) {
    done_.erase(order_.front());
    order_.erase(order_.begin());
  }
}

ApiStatus CheckRestParams(const RestCall& r, const RestParams& allowed) {
  const auto in = [](std::initializer_list<std::string_view> names, std::string_view n) {
    return std::find(names.begin(), names.end(), n) != names.end();
  };
  for (auto it = r.query.begin(); it != r.query.end(); it = r.query.upper_bound(it->first)) {
    const std::string& name = it->first;
    if (in(allowed.lists, name)) continue;
    if (!in(allowed.query, name))
      return Fail(ec2::kUnknownParameter, "The parameter " + name + " is not recognized by this operation.");
    if (r.query.count(name) > 1)
      return Fail(ec2::kInvalidParameter, "The parameter " + name + " was specified more than once.");
  }
  if (allowed.check_body)
    for (const auto& [k, v] : r.body.items())
      if (!in(allowed.body, k))
        return Fail(ec2::kUnknownParameter, "The body member " + k + " is not recognized by this operation.");
  return {};
}

ApiResult<VolumeRecord> Ec2Context::RestoreToNewVolume(const SnapshotRecord& s, const std::string& volume_id,
                                                       const std::string& volume_type, const std::vector<Tag>& tags,
                                                       const std::string& host) {
  VolumeRecord v;
  v.volume_id = volume_id;
  v.account_id = s.account_id;  // the restored volume belongs to the snapshot's team
  v.tags = tags;  // a Name tag is its name (the catalog keeps the two equal)
  v.volume_type = volume_type;
  v.size_bytes = s.volume_size_bytes;
  v.block_size = s.block_size;
  v.created_ms = clock->NowMillis();
  v.snapshot_id = s.snapshot_id;
  // Placed on another host: that host restores it, from the same shared store.
  if (!catalog->HostElsewhere(host).empty()) return QueueVolumeOn(std::move(v), host);
  if (options.restore_dir.empty()) return Fail(ec2::kUnsupportedOperation, "No restore directory is configured.");
  // The quota of the team the volume will belong to, before any file is made; InsertVolume
  // decides again inside its transaction.
  if (auto room = catalog->CheckVolumeQuota(s.account_id, s.volume_size_bytes); !room)
    return std::unexpected(FromErrorWithLimit(room.error(), ec2::kVolumeLimitExceeded));
  v.path = VolumeImagePath(options.restore_dir, v.volume_id);
  if (options.create_lazy && options.start_lazy) {
    // Usable at once: a managed volume whose blocks load from the snapshot as they are
    // needed, while a background copy fills the rest (DescribeVolumeStatus shows how far).
    v.managed = true;
    v.state = "available";
    auto made = options.create_lazy(v);
    if (!made) return std::unexpected(FromError(made.error()));
    auto ins = catalog->InsertVolume(v);
    if (!ins) {
      RemoveVolumeFiles(v.path);
      return std::unexpected(FromErrorWithLimit(ins.error(), ec2::kVolumeLimitExceeded));
    }
    auto started = options.start_lazy(v);
    if (!started) {
      (void)catalog->SetVolumeState(v.volume_id, "error", "cannot start loading: " + started.error().message());
      return std::unexpected(FromError(started.error()));
    }
    return v;
  }
  v.state = "creating";
  auto target = FileTarget::Create(v.path, s.volume_size_bytes, false);
  if (!target) return std::unexpected(FromError(target.error()));
  auto ins = catalog->InsertVolume(v);
  if (!ins) {
    target->reset();  // close the file before removing it
    RemoveVolumeFiles(v.path);
    return std::unexpected(FromErrorWithLimit(ins.error(), ec2::kVolumeLimitExceeded));
  }
  // The data is written in the background; the volume is `creating` until then, as in EC2,
  // so a large restore never holds the request (or times out the client).
  restores->Start(v.volume_id, s.snapshot_id, std::shared_ptr<BlockTarget>(std::move(*target)));
  return v;
}

}  // namespace snapvol::api
