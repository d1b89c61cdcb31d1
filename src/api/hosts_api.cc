// The JSON API's hosts (administrators only): POST /api/v1/hosts/HOST-ID/evacuate restores, on
// the host that answers, the latest completed snapshot of each managed volume of a host that is
// not up (docs/multi-host.md part 5; `snapvol host evacuate`). Documented in docs/api.md.
#include <algorithm>
#include <map>
#include <optional>
#include <tuple>
#include <string>
#include <vector>

#include "api/ec2_context.h"
#include "core/clock.h"
#include "core/ids.h"
#include "core/system_tags.h"

namespace snapvol::api {
namespace {

// The tags of the copy: the volume's own (its Name, its team's tags), none of snapvol's (the
// catalog writes where the copy lives), and where it came from.
std::vector<Tag> EvacueeTags(const VolumeRecord& v) {
  std::vector<Tag> out;
  for (const Tag& t : v.tags)
    if (!HasReservedTagPrefix(t.key)) out.push_back(t);
  out.push_back({kEvacuatedFromTag, v.volume_id});
  return out;
}

ApiResult<nlohmann::json> Evacuate(Ec2Context& x, const std::string& host_id, bool dry_run) {
  if (!IsHostId(host_id))
    return std::unexpected(InvalidParameterValue("hostId", host_id, "Expecting a host id (host- and 17 hex digits)."));
  const std::string here = x.catalog->LocalHost();
  if (host_id == here)
    return std::unexpected(MakeApiError(ec2::kIncorrectState, "Host " + host_id + " is the host answering: its volumes are here."));
  auto hosts = x.catalog->ListHosts();
  if (!hosts) return std::unexpected(FromError(hosts.error()));
  const int64_t now = x.clock->NowMillis();
  const std::string state = VolumeHostState(*hosts, host_id, now, x.options.host_timeout_ms);
  // Its data is served there: a copy would fork the volume.
  if (state == "up")
    return std::unexpected(MakeApiError(ec2::kIncorrectState, "Host " + host_id + " is up: its volumes are served there. "
                                                              "Evacuate only a host that is unreachable or stopped."));
  auto volumes = x.catalog->ListVolumes(std::nullopt);
  if (!volumes) return std::unexpected(FromError(volumes.error()));
  // The copies made before, by the volume they came from: evacuating twice makes no second one.
  std::map<std::string, std::string> copied;
  for (const VolumeRecord& v : *volumes)
    for (const Tag& t : v.tags)
      if (t.key == kEvacuatedFromTag) copied.emplace(t.value, v.volume_id);
  nlohmann::json out = nlohmann::json::array();
  for (const VolumeRecord& v : *volumes) {
    if (v.host_id != host_id || !v.managed) continue;
    nlohmann::json item = {{"volumeId", v.volume_id}, {"ownerId", v.account_id}};
    if (auto it = copied.find(v.volume_id); it != copied.end()) {
      item["outcome"] = "already-restored";
      item["newVolumeId"] = it->second;
      out.push_back(item);
      continue;
    }
    auto snaps = x.catalog->ListSnapshots({.volume_id = v.volume_id, .state = SnapshotState::kCompleted});
    if (!snaps) return std::unexpected(FromError(snaps.error()));
    auto latest = std::max_element(snaps->begin(), snaps->end(), [](const SnapshotRecord& a, const SnapshotRecord& b) {
      return std::tie(a.start_time_ms, a.snapshot_id) < std::tie(b.start_time_ms, b.snapshot_id);
    });
    if (latest == snaps->end()) {
      item["outcome"] = "no-snapshot";
      item["message"] = "It has no completed snapshot: nothing of it can be restored.";
      out.push_back(item);
      continue;
    }
    item["snapshotId"] = latest->snapshot_id;
    item["snapshotTime"] = FormatIso8601(latest->start_time_ms);
    if (dry_run) {
      item["outcome"] = "would-restore";
      out.push_back(item);
      continue;
    }
    // CreateVolume's own path from a snapshot: a managed volume of the snapshot's team, here.
    auto made = x.RestoreToNewVolume(*latest, NewVolumeId(), v.volume_type, EvacueeTags(v));
    if (made) {
      item["outcome"] = "restored";
      item["newVolumeId"] = made->volume_id;
    } else {
      item["outcome"] = "failed";
      item["message"] = made.error().code + ": " + made.error().message;
    }
    out.push_back(item);
  }
  return nlohmann::json{{"hostId", host_id}, {"hostState", state}, {"toHostId", here}, {"dryRun", dry_run},
                        {"volumes", out}};
}

}  // namespace

ApiResult<nlohmann::json> DispatchHosts(Ec2Context& x, Caller& c, const RestCall& r) {
  const auto& seg = r.parts;
  if (r.method == "POST" && seg.size() == 3 && seg[2] == "evacuate") {
    c.record->action = "snapvol:EvacuateHost";
    c.record->detail = "host " + seg[1];
    API_RETURN_IF_ERROR(CheckRestParams(r, {.body = {"dryRun"}}));
    API_RETURN_IF_ERROR(x.Authorize(c, "snapvol:EvacuateHost", {}));
    // It restores every team's data: administrators only, whatever a policy says.
    if (!c.admin) return Fail(ec2::kUnauthorizedOperation, "Only an administrator may evacuate a host.");
    bool dry_run = false;
    if (auto it = r.body.find("dryRun"); it != r.body.end() && !it->is_null()) {
      if (!it->is_boolean())
        return std::unexpected(MakeApiError(ec2::kInvalidParameterValue, "Value for parameter dryRun must be true or false."));
      dry_run = it->get<bool>();
    }
    return Evacuate(x, seg[1], dry_run);
  }
  return std::unexpected(MakeApiError(ec2::kInvalidAction, "No such API path: " + r.method + " /api/v1/hosts/..."));
}

}  // namespace snapvol::api
