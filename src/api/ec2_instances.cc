// DescribeInstances: an account's instances (servers whose volumes snapvol snapshots) with
// their block devices, placement and tags, filtered and paged as EC2 does.
#include <algorithm>

#include "api/ec2_context.h"
#include "core/clock.h"
#include "core/ids.h"

namespace snapvol::api {
namespace {

using Out = std::vector<std::string>;

// One instance with what its filters read.
struct InstanceView {
  Ec2Instance e;
  std::string owner_id, availability_zone;
};

void EachDevice(const InstanceView& v, Out& o, std::string (*f)(const Ec2InstanceBlockDevice&)) {
  for (const auto& d : v.e.block_devices) o.push_back(f(d));
}

constexpr FilterField<InstanceView> kInstanceFields[] = {
    {"instance-id", [](const InstanceView& v, Out& o) { o.push_back(v.e.instance_id); }},
    {"availability-zone", [](const InstanceView& v, Out& o) { o.push_back(v.availability_zone); }},
    {"owner-id", [](const InstanceView& v, Out& o) { o.push_back(v.owner_id); }},
    {"reservation-id", [](const InstanceView& v, Out& o) { o.push_back("r-" + v.e.instance_id.substr(2)); }},
    {"instance-state-name", [](const InstanceView& v, Out& o) { o.push_back(v.e.state); }},
    {"instance-state-code", [](const InstanceView& v, Out& o) { o.push_back(std::to_string(InstanceStateCode(v.e.state))); }},
    {"tenancy", [](const InstanceView&, Out& o) { o.push_back("default"); }},
    {"root-device-name", [](const InstanceView& v, Out& o) { if (!v.e.root_device_name.empty()) o.push_back(v.e.root_device_name); }},
    {"root-device-type", [](const InstanceView&, Out& o) { o.push_back("ebs"); }},
    {"block-device-mapping.device-name", [](const InstanceView& v, Out& o) {
       EachDevice(v, o, [](const Ec2InstanceBlockDevice& d) { return d.device_name; }); }},
    {"block-device-mapping.volume-id", [](const InstanceView& v, Out& o) {
       EachDevice(v, o, [](const Ec2InstanceBlockDevice& d) { return d.volume_id; }); }},
    {"block-device-mapping.status", [](const InstanceView& v, Out& o) {
       EachDevice(v, o, [](const Ec2InstanceBlockDevice& d) { return d.status; }); }},
    {"block-device-mapping.attach-time", [](const InstanceView& v, Out& o) {
       EachDevice(v, o, [](const Ec2InstanceBlockDevice& d) { return FormatIso8601(d.attach_time_ms); }); }},
    {"block-device-mapping.delete-on-termination", [](const InstanceView& v, Out& o) {
       EachDevice(v, o, [](const Ec2InstanceBlockDevice& d) { return std::string(d.delete_on_termination ? "true" : "false"); }); }},
    {"tag-key", [](const InstanceView& v, Out& o) { for (const auto& t : v.e.tags) o.push_back(t.key); }},
};

const std::vector<Ec2Tag>& ViewTags(const InstanceView& v) { return v.e.tags; }

ApiResult<std::string> DescribeInstances(Ec2Context& x, const Caller& c, const QueryParams& p, const std::string& rid) {
  API_ASSIGN_OR_RETURN(std::vector<std::string> ids, p.GetList("InstanceId"));
  for (const auto& id : ids)
    if (!IsInstanceId(id)) return std::unexpected(MalformedId("InvalidInstanceID.Malformed", id, "i-"));
  API_ASSIGN_OR_RETURN(std::vector<QueryFilter> filters, p.GetFilters());
  API_ASSIGN_OR_RETURN(auto matcher, ResourceMatcher<InstanceView>::Create(filters, kInstanceFields, &ViewTags));
  API_ASSIGN_OR_RETURN(PageRequest page_req, ParsePageRequest(p));
  if (!ids.empty() && page_req.max_results)
    return Fail(ec2::kInvalidParameterCombination, "The parameter instancesSet cannot be used with the parameter maxResults");
  API_RETURN_IF_ERROR(x.Authorize(c, "DescribeInstances", {}));
  API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
  if (dry) return DryRunOk();
  // Administrators reach any account's instance by id, as with volumes and snapshots.
  std::optional<std::string> scope = c.account_id;
  if (c.admin && !ids.empty()) scope.reset();
  auto insts = x.catalog->ListInstances(scope);
  if (!insts) return std::unexpected(FromError(insts.error()));
  for (const auto& id : ids)
    if (std::none_of(insts->begin(), insts->end(), [&](const auto& i) { return i.instance_id == id; }))
      return std::unexpected(NotFoundInstance(id));
  auto vols = x.catalog->ListVolumes(scope);
  if (!vols) return std::unexpected(FromError(vols.error()));
  std::vector<InstanceView> views;
  for (const auto& i : *insts) {
    if (!ids.empty() && std::find(ids.begin(), ids.end(), i.instance_id) == ids.end()) continue;
    InstanceView v;
    v.owner_id = i.account_id;
    v.availability_zone = x.AvailabilityZone();
    v.e.instance_id = i.instance_id;
    v.e.availability_zone = v.availability_zone;
    v.e.launch_time_ms = i.created_ms;
    v.e.state = i.state;  // as an operator marks it: snapvol instance stop|start
    v.e.tags = InstanceTags(i);
    v.e.root_device_name = i.root_device;  // always, as EC2 reports it
    for (const auto& vol : *vols) {
      if (vol.instance_id != i.instance_id) continue;
      v.e.block_devices.push_back({vol.device, vol.volume_id, "attached", vol.attach_ms ? vol.attach_ms : vol.created_ms, false});
    }
    views.push_back(std::move(v));
  }
  KeepMatching(views, matcher);
  const std::string token_scope = "DescribeInstances:" + c.account_id;
  API_ASSIGN_OR_RETURN(auto page, Paginate(std::move(views), [](const InstanceView& v) -> const std::string& {
    return v.e.instance_id;
  }, page_req, *x.tokens, token_scope));
  std::vector<Ec2Reservation> res;
  for (auto& v : page.items) res.push_back({"r-" + v.e.instance_id.substr(2), v.owner_id, {std::move(v.e)}});
  return RenderDescribeInstances(rid, res, page.next_token);
}

}  // namespace

std::span<const Ec2Action> InstanceActions() {
  static constexpr std::string_view kDescribe[] = {"InstanceId.", "Filter.", "MaxResults", "NextToken", "DryRun"};
  static constexpr Ec2Action kActions[] = {{"DescribeInstances", kDescribe, &DescribeInstances}};
  return kActions;
}

}  // namespace snapvol::api
