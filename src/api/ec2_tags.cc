// The EC2 tag actions over snapshots, volumes and instances: CreateTags, DeleteTags and
// DescribeTags, with EC2's rules. CreateTags adds tags or overwrites values (at most 50 per
// resource: TagLimitExceeded; keys starting with aws: are the system's). DeleteTags
// removes a key whatever its value when Tag.N.Value is omitted, only when the value equals it
// when given (an empty Value removes only an empty value), and every user tag when no Tag.N
// is given. One call may name resources of several types; every id is checked (and the
// action authorised on each) before anything changes, and the change is one transaction.
#include <algorithm>

#include "api/ec2_context.h"
#include "core/ids.h"

namespace snapvol::api {
namespace {

// A resource a tag action names: its id, type and current tags.
struct Tagged {
  std::string id, type, account_id;
  std::vector<Tag> tags;
};

// Tag.N.Key with an optional Tag.N.Value: DeleteTags must tell an omitted value from an
// empty one.
struct TagRef {
  std::string key;
  std::optional<std::string> value;
};

ApiResult<std::vector<TagRef>> TagRefs(const QueryParams& p) {
  API_ASSIGN_OR_RETURN(auto items, p.GetStructList("Tag"));
  std::vector<TagRef> out;
  for (const auto& item : items) {
    static constexpr std::string_view kFields[] = {"Key", "Value"};
    API_RETURN_IF_ERROR(item.fields.RejectUnknown(kFields));
    API_ASSIGN_OR_RETURN(std::string key, item.fields.GetString("Key"));
    TagRef r{key, std::nullopt};
    if (const std::string* v = item.fields.Find("Value")) r.value = *v;
    out.push_back(std::move(r));
  }
  return out;
}

ApiResult<Tagged> FindTagged(Ec2Context& x, const Caller& c, const std::string& id) {
  if (IsSnapshotId(id)) {
    API_ASSIGN_OR_RETURN(SnapshotRecord s, x.VisibleSnapshot(c, id));
    return Tagged{id, "snapshot", s.account_id, s.tags};
  }
  if (IsVolumeId(id)) {
    API_ASSIGN_OR_RETURN(VolumeRecord v, x.VisibleVolume(c, id));
    return Tagged{id, "volume", v.account_id, FromEc2Tags(VolumeTags(v))};
  }
  if (IsInstanceId(id)) {
    API_ASSIGN_OR_RETURN(InstanceRecord i, x.VisibleInstance(c, id));
    return Tagged{id, "instance", i.account_id, FromEc2Tags(InstanceTags(i))};
  }
  return Fail("InvalidID", "The ID '" + id + "' is not valid");
}

ApiResult<std::vector<Tagged>> FindAllTagged(Ec2Context& x, const Caller& c, const QueryParams& p, const char* action) {
  API_ASSIGN_OR_RETURN(std::vector<std::string> ids, p.GetList("ResourceId"));
  if (ids.empty()) return std::unexpected(MissingParameter("ResourceId.1"));
  std::vector<Tagged> out;
  for (const auto& id : ids) {
    API_ASSIGN_OR_RETURN(Tagged t, FindTagged(x, c, id));
    API_RETURN_IF_ERROR(x.Authorize(c, action, {x.Arn(c, t.type, id)}, t.tags));
    out.push_back(std::move(t));
  }
  return out;
}

ApiResult<std::string> CreateTags(Ec2Context& x, const Caller& c, const QueryParams& p, const std::string& rid) {
  API_ASSIGN_OR_RETURN(std::vector<Ec2Tag> given, p.GetTags());
  if (given.empty()) return std::unexpected(MissingParameter("Tag.1.Key"));
  const std::vector<Tag> tags = FromEc2Tags(given);
  API_RETURN_IF_ERROR(CheckTags(tags, "Tag"));
  API_ASSIGN_OR_RETURN(std::vector<Tagged> targets, FindAllTagged(x, c, p, "CreateTags"));
  API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
  if (dry) return DryRunOk();
  auto st = x.catalog->Transaction([&]() -> Status {
    for (const auto& t : targets) RETURN_IF_ERROR(x.catalog->SetTags(t.id, tags));
    return OkStatus();
  });
  // The catalog counts what each resource will have afterwards (an overwritten key is not
  // a new tag); over 50 on any of them changes none of them.
  if (!st && IsTagLimitExceeded(st.error()))
    return Fail("TagLimitExceeded", "The maximum number of tags for a resource has been reached (" +
                                        std::to_string(kMaxTagsPerResource) + "): " + st.error().message());
  if (!st) return std::unexpected(FromError(st.error()));
  return RenderReturnTrue("CreateTags", rid);
}

ApiResult<std::string> DeleteTags(Ec2Context& x, const Caller& c, const QueryParams& p, const std::string& rid) {
  API_ASSIGN_OR_RETURN(std::vector<TagRef> refs, TagRefs(p));
  for (const auto& r : refs) {
    // The system's tags (how a snapshot was taken, where a volume lives, which policy made a
    // snapshot) are facts, not labels: they stay.
    if (HasReservedTagPrefix(r.key)) return Fail(ec2::kInvalidParameterValue, ReservedTagKeyMessage(r.key));
  }
  API_ASSIGN_OR_RETURN(std::vector<Tagged> targets, FindAllTagged(x, c, p, "DeleteTags"));
  API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
  if (dry) return DryRunOk();
  auto st = x.catalog->Transaction([&]() -> Status {
    for (const auto& t : targets) {
      // No Tag.N: every user tag (the catalog keeps the aws: ones, as EC2 does).
      if (refs.empty()) {
        RETURN_IF_ERROR(x.catalog->RemoveAllTags(t.id));
        continue;
      }
      std::vector<std::string> keys;
      for (const auto& have : t.tags)
        for (const auto& r : refs)
          if (r.key == have.key && (!r.value || *r.value == have.value)) keys.push_back(have.key);
      if (!keys.empty()) RETURN_IF_ERROR(x.catalog->RemoveTags(t.id, keys));
    }
    return OkStatus();
  });
  if (!st) return std::unexpected(FromError(st.error()));
  return RenderReturnTrue("DeleteTags", rid);
}

using Out = std::vector<std::string>;

// DescribeTags' tag:KEY filter keeps the tags of resources having that tag with a matching
// value; each description is one tag, so the resource's other tags are consulted through a
// side table.
struct TagRow {
  Ec2TagDescription d;
  const std::vector<Ec2Tag>* resource_tags;
};

ApiResult<std::string> DescribeTags(Ec2Context& x, const Caller& c, const QueryParams& p, const std::string& rid) {
  API_ASSIGN_OR_RETURN(std::vector<QueryFilter> filters, p.GetFilters());
  static constexpr FilterField<TagRow> kRowFields[] = {
      {"key", [](const TagRow& r, Out& o) { o.push_back(r.d.key); }},
      {"value", [](const TagRow& r, Out& o) { o.push_back(r.d.value); }},
      {"resource-id", [](const TagRow& r, Out& o) { o.push_back(r.d.resource_id); }},
      {"resource-type", [](const TagRow& r, Out& o) { o.push_back(r.d.resource_type); }},
  };
  API_ASSIGN_OR_RETURN(auto matcher, ResourceMatcher<TagRow>::Create(filters, kRowFields, [](const TagRow& r) -> const std::vector<Ec2Tag>& {
    return *r.resource_tags;
  }));
  API_ASSIGN_OR_RETURN(PageRequest page_req, ParsePageRequest(p));
  API_RETURN_IF_ERROR(x.Authorize(c, "DescribeTags", {}));
  API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
  if (dry) return DryRunOk();
  // Every resource's tags, kept alive while the rows point at them.
  std::vector<std::vector<Ec2Tag>> owned;
  std::vector<std::pair<std::string, std::string>> ids;  // resource id, type
  auto snaps = x.catalog->ListSnapshots({.account_id = c.account_id});
  if (!snaps) return std::unexpected(FromError(snaps.error()));
  for (const auto& s : *snaps) {
    owned.push_back(SnapshotTags(s));
    ids.emplace_back(s.snapshot_id, "snapshot");
  }
  auto vols = x.catalog->ListVolumes(c.account_id);
  if (!vols) return std::unexpected(FromError(vols.error()));
  for (const auto& v : *vols) {
    owned.push_back(VolumeTags(v));
    ids.emplace_back(v.volume_id, "volume");
  }
  auto insts = x.catalog->ListInstances(c.account_id);
  if (!insts) return std::unexpected(FromError(insts.error()));
  for (const auto& i : *insts) {
    owned.push_back(InstanceTags(i));
    ids.emplace_back(i.instance_id, "instance");
  }
  std::vector<TagRow> rows;
  for (size_t n = 0; n < owned.size(); ++n)
    for (const auto& t : owned[n]) rows.push_back({{ids[n].first, ids[n].second, t.key, t.value}, &owned[n]});
  KeepMatching(rows, matcher);
  const std::string scope = "DescribeTags:" + c.account_id;
  API_ASSIGN_OR_RETURN(auto page, Paginate(std::move(rows), [](const TagRow& r) { return r.d.resource_id + '\x1f' + r.d.key; },
                                           page_req, *x.tokens, scope));
  std::vector<Ec2TagDescription> out;
  for (auto& r : page.items) out.push_back(std::move(r.d));
  return RenderDescribeTags(rid, out, page.next_token);
}

}  // namespace

std::span<const Ec2Action> TagActions() {
  static constexpr std::string_view kChange[] = {"ResourceId.", "Tag.", "DryRun"};
  static constexpr std::string_view kDescribe[] = {"Filter.", "MaxResults", "NextToken", "DryRun"};
  static constexpr Ec2Action kActions[] = {
      {"CreateTags", kChange, &CreateTags},
      {"DeleteTags", kChange, &DeleteTags},
      {"DescribeTags", kDescribe, &DescribeTags},
  };
  return kActions;
}

}  // namespace snapvol::api
