// DescribeVolumes and DescribeVolumeStatus: an account's volumes (any account's by id for an
// administrator), with every filter EC2 documents that applies here, and paging.
#include <algorithm>

#include "api/ec2_context.h"
#include "api/xml_writer.h"
#include "core/clock.h"
#include "core/ids.h"

namespace snapvol::api {
namespace {

using Out = std::vector<std::string>;

void EachAttachment(const Ec2Volume& v, Out& o, std::string (*f)(const Ec2VolumeAttachment&)) {
  for (const auto& a : v.attachments) o.push_back(f(a));
}

// DescribeVolumes' filters. fast-restored and multi-attach-enabled are always false here, and
// operator.managed too (no volume is managed by another AWS service), so they match "false".
constexpr FilterField<Ec2Volume> kVolumeFields[] = {
    {"attachment.attach-time", [](const Ec2Volume& v, Out& o) {
       EachAttachment(v, o, [](const Ec2VolumeAttachment& a) { return FormatIso8601(a.attach_time_ms); }); }},
    {"attachment.delete-on-termination", [](const Ec2Volume& v, Out& o) {
       EachAttachment(v, o, [](const Ec2VolumeAttachment& a) { return std::string(a.delete_on_termination ? "true" : "false"); }); }},
    {"attachment.device", [](const Ec2Volume& v, Out& o) {
       EachAttachment(v, o, [](const Ec2VolumeAttachment& a) { return a.device; }); }},
    {"attachment.instance-id", [](const Ec2Volume& v, Out& o) {
       EachAttachment(v, o, [](const Ec2VolumeAttachment& a) { return a.instance_id; }); }},
    {"attachment.status", [](const Ec2Volume& v, Out& o) {
       EachAttachment(v, o, [](const Ec2VolumeAttachment& a) { return a.state; }); }},
    {"availability-zone", [](const Ec2Volume& v, Out& o) { o.push_back(v.availability_zone); }},
    {"create-time", [](const Ec2Volume& v, Out& o) { o.push_back(FormatIso8601(v.create_time_ms)); }},
    {"encrypted", [](const Ec2Volume& v, Out& o) { o.push_back(v.encrypted ? "true" : "false"); }},
    {"fast-restored", [](const Ec2Volume&, Out& o) { o.push_back("false"); }},
    {"multi-attach-enabled", [](const Ec2Volume& v, Out& o) { o.push_back(v.multi_attach_enabled ? "true" : "false"); }},
    {"operator.managed", [](const Ec2Volume&, Out& o) { o.push_back("false"); }},
    {"size", [](const Ec2Volume& v, Out& o) { o.push_back(std::to_string(v.size_gib)); }},
    {"snapshot-id", [](const Ec2Volume& v, Out& o) { o.push_back(v.snapshot_id); }},
    {"status", [](const Ec2Volume& v, Out& o) { o.push_back(v.state); }},
    {"tag-key", [](const Ec2Volume& v, Out& o) { for (const auto& t : v.tags) o.push_back(t.key); }},
    {"volume-id", [](const Ec2Volume& v, Out& o) { o.push_back(v.volume_id); }},
    {"volume-type", [](const Ec2Volume& v, Out& o) { o.push_back(v.volume_type); }},
};

const std::vector<Ec2Tag>& VolumeTags(const Ec2Volume& v) { return v.tags; }

// The volumes a Describe* names by VolumeId.N (each must be visible), or all of the caller's.
ApiResult<std::vector<VolumeRecord>> SelectVolumes(Ec2Context& x, const Caller& c, const std::vector<std::string>& ids) {
  for (const auto& id : ids)
    if (!IsVolumeId(id)) return std::unexpected(MalformedId("InvalidVolumeID.Malformed", id, "vol-"));
  // Administrators reach any account's volume by id (e.g. one they restored for a team).
  std::optional<std::string> scope = c.account_id;
  if (c.admin && !ids.empty()) scope.reset();
  auto rows = x.catalog->ListVolumes(scope);
  if (!rows) return std::unexpected(FromError(rows.error()));
  if (ids.empty()) return std::move(*rows);
  std::vector<VolumeRecord> out;
  for (const auto& id : ids) {
    auto it = std::find_if(rows->begin(), rows->end(), [&](const auto& v) { return v.volume_id == id; });
    if (it == rows->end()) return std::unexpected(NotFoundVolume(id));
    if (std::none_of(out.begin(), out.end(), [&](const auto& v) { return v.volume_id == id; })) out.push_back(*it);
  }
  return out;
}

ApiResult<std::string> DescribeVolumes(Ec2Context& x, const Caller& c, const QueryParams& p, const std::string& rid) {
  API_ASSIGN_OR_RETURN(std::vector<std::string> ids, p.GetList("VolumeId"));
  API_ASSIGN_OR_RETURN(std::vector<QueryFilter> filters, p.GetFilters());
  API_ASSIGN_OR_RETURN(auto matcher, ResourceMatcher<Ec2Volume>::Create(filters, kVolumeFields, &VolumeTags));
  constexpr PageBounds kBounds{5, 500};
  API_ASSIGN_OR_RETURN(PageRequest page_req, ParsePageRequest(p, kBounds));
  if (!ids.empty() && page_req.max_results)
    return Fail(ec2::kInvalidParameterCombination, "The parameter volumeSet cannot be used with the parameter maxResults");
  API_RETURN_IF_ERROR(x.Authorize(c, "DescribeVolumes", {}));
  API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
  if (dry) return DryRunOk();
  API_ASSIGN_OR_RETURN(std::vector<VolumeRecord> rows, SelectVolumes(x, c, ids));
  std::vector<Ec2Volume> vols;
  vols.reserve(rows.size());
  for (const auto& v : rows) vols.push_back(x.ToEc2(v));
  KeepMatching(vols, matcher);
  const std::string scope = "DescribeVolumes:" + c.account_id;
  API_ASSIGN_OR_RETURN(auto page, Paginate(std::move(vols), [](const Ec2Volume& v) -> const std::string& { return v.volume_id; },
                                           page_req, *x.tokens, scope, kBounds));
  return RenderDescribeVolumes(rid, page.items, page.next_token);
}

// One volume's status, as DescribeVolumeStatus reports it and its filters read it.
struct VolumeStatusView {
  std::string volume_id, availability_zone;
  bool impaired = false;
  // The host holding it is not up (unreachable, stopped or unregistered: docs/multi-host.md
  // part 5): no check of its I/O can be made, which EC2 calls insufficient-data.
  bool host_not_up = false;
  std::optional<int> loading;  // percent loaded while a lazy restore runs
  bool restored = false;
  // EC2's overall status and its io-enabled check, from the above.
  const char* Status() const { return host_not_up ? "insufficient-data" : impaired ? "impaired" : "ok"; }
  const char* IoEnabled() const { return host_not_up ? "insufficient-data" : impaired ? "failed" : "passed"; }
};

constexpr FilterField<VolumeStatusView> kStatusFields[] = {
    {"availability-zone", [](const VolumeStatusView& v, Out& o) { o.push_back(v.availability_zone); }},
    {"volume-status.status", [](const VolumeStatusView& v, Out& o) { o.push_back(v.Status()); }},
    {"volume-status.details-name", [](const VolumeStatusView&, Out& o) {
       o.push_back("io-enabled");
       o.push_back("initialization-state");
     }},
    {"volume-status.details-status", [](const VolumeStatusView& v, Out& o) {
       o.push_back(v.IoEnabled());
       o.push_back(v.loading ? "initializing" : "completed");
     }},
    // snapvol raises no scheduled events and suggests no actions: these match nothing.
    {"action.code", [](const VolumeStatusView&, Out&) {}},
    {"action.description", [](const VolumeStatusView&, Out&) {}},
    {"action.event-id", [](const VolumeStatusView&, Out&) {}},
    {"event.description", [](const VolumeStatusView&, Out&) {}},
    {"event.event-id", [](const VolumeStatusView&, Out&) {}},
    {"event.event-type", [](const VolumeStatusView&, Out&) {}},
    {"event.not-after", [](const VolumeStatusView&, Out&) {}},
    {"event.not-before", [](const VolumeStatusView&, Out&) {}},
};

void WriteVolumeStatus(XmlWriter& w, const VolumeStatusView& v) {
  w.Open("item");
  w.Text("volumeId", v.volume_id);
  w.Text("availabilityZone", v.availability_zone);
  w.Open("volumeStatus");
  w.Text("status", v.Status());
  w.Open("details");
  w.Open("item");
  w.Text("name", "io-enabled");
  w.Text("status", v.IoEnabled());
  w.Close();
  w.Open("item");
  w.Text("name", "initialization-state");
  w.Text("status", v.loading ? "initializing" : "completed");
  w.Close();
  w.Close();
  w.Close();
  w.Open("actionsSet");
  w.Close();
  w.Open("eventsSet");
  w.Close();
  if (v.loading || v.restored) {
    w.Open("initializationStatusDetails");
    w.Text("initializationType", "default");
    w.Int("progress", v.loading ? *v.loading : 100);
    w.Close();
  }
  w.Close();
}

// EC2's volume status: ok (impaired for a volume in error, insufficient-data when its host is not
// up), with the initialization (lazy load) progress of restored volumes.
ApiResult<std::string> DescribeVolumeStatus(Ec2Context& x, const Caller& c, const QueryParams& p, const std::string& rid) {
  API_ASSIGN_OR_RETURN(std::vector<std::string> ids, p.GetList("VolumeId"));
  API_ASSIGN_OR_RETURN(std::vector<QueryFilter> filters, p.GetFilters());
  API_ASSIGN_OR_RETURN(auto matcher, ResourceMatcher<VolumeStatusView>::Create(filters, kStatusFields, nullptr));
  API_ASSIGN_OR_RETURN(PageRequest page_req, ParsePageRequest(p));
  if (!ids.empty() && page_req.max_results)
    return Fail(ec2::kInvalidParameterCombination, "The parameter volumeSet cannot be used with the parameter maxResults");
  API_RETURN_IF_ERROR(x.Authorize(c, "DescribeVolumeStatus", {}));
  API_ASSIGN_OR_RETURN(bool dry, DryRun(p));
  if (dry) return DryRunOk();
  API_ASSIGN_OR_RETURN(std::vector<VolumeRecord> rows, SelectVolumes(x, c, ids));
  auto hosts = x.catalog->ListHosts();
  if (!hosts) return std::unexpected(FromError(hosts.error()));
  const int64_t now_ms = x.clock->NowMillis();
  std::vector<VolumeStatusView> views;
  for (const auto& v : rows) {
    VolumeStatusView s;
    s.volume_id = v.volume_id;
    s.availability_zone = x.AvailabilityZone();
    s.impaired = v.state == "error";
    const std::string host_state = VolumeHostState(*hosts, v.host_id, now_ms, x.options.host_timeout_ms);
    s.host_not_up = !host_state.empty() && host_state != "up";
    s.loading = x.options.load_percent ? x.options.load_percent(v.volume_id) : std::nullopt;
    s.restored = !v.snapshot_id.empty();
    views.push_back(std::move(s));
  }
  KeepMatching(views, matcher);
  const std::string scope = "DescribeVolumeStatus:" + c.account_id;
  API_ASSIGN_OR_RETURN(auto page, Paginate(std::move(views), [](const VolumeStatusView& v) -> const std::string& {
    return v.volume_id;
  }, page_req, *x.tokens, scope));
  XmlWriter w = BeginEc2Response("DescribeVolumeStatus", rid);
  w.Open("volumeStatusSet");
  for (const auto& v : page.items) WriteVolumeStatus(w, v);
  w.Close();
  if (!page.next_token.empty()) w.Text("nextToken", page.next_token);
  return std::move(w).Finish();
}

}  // namespace

std::span<const Ec2Action> VolumeDescribeActions() {
  static constexpr std::string_view kDescribe[] = {"VolumeId.", "Filter.", "MaxResults", "NextToken", "DryRun"};
  static constexpr Ec2Action kActions[] = {
      {"DescribeVolumes", kDescribe, &DescribeVolumes},
      {"DescribeVolumeStatus", kDescribe, &DescribeVolumeStatus},
  };
  return kActions;
}

}  // namespace snapvol::api
