// Where a new volume goes, and how the host it was placed on makes it (docs/multi-host.md part
// 3): Ec2Context::PlaceVolume reads CreateVolume's aws:snapvol:host; QueueVolumeOn writes a
// volume placed on another host (`creating`, queued for it); MakeClaimedVolume runs on that host
// once its claimer took the creation.
#include <string>

#include "api/ec2_context.h"
#include "managed/volume_files.h"

namespace snapvol::api {

ApiResult<std::string> Ec2Context::PlaceVolume(const std::string& asked) {
  auto hosts = catalog->ListHosts();
  if (!hosts) return std::unexpected(FromError(hosts.error()));
  const HostRecord* found = nullptr;
  for (const HostRecord& h : *hosts)
    if (h.host_id == asked) found = &h;
  if (!found) {
    for (const HostRecord& h : *hosts) {
      if (h.name != asked) continue;
      if (found)
        return Fail(ec2::kInvalidParameterValue, "Value (" + asked + ") for tag " + kHostTag +
                                                     " is invalid: hosts " + found->host_id + " and " + h.host_id +
                                                     " share that name; give the host id.");
      found = &h;
    }
  }
  if (!found)
    return Fail(ec2::kInvalidParameterValue, "Value (" + asked + ") for tag " + kHostTag +
                                                 " is invalid: no host has that name or id (snapvol host list).");
  // This host (or a catalog without hosts, as on one host): made here, as today.
  if (catalog->HostElsewhere(found->host_id).empty()) return std::string();
  const std::string state = HostStateAt(*found, clock->NowMillis(), options.host_timeout_ms);
  if (state != "up")
    return Fail(ec2::kIncorrectState, "Host '" + (found->name.empty() ? found->host_id : found->name) + "' (" +
                                          found->host_id + ") is " + state +
                                          ": no volume is placed on a host that is not up.");
  return found->host_id;
}

std::string Ec2Context::PlaceRestore(const SnapshotRecord& s, std::string* note) {
  // Said only when the placement is news: the volume goes elsewhere, or stays here because the
  // snapshot's volume's host is not up. Here, where the snapshot's volume is (one host), the
  // administrator's reason stays as written.
  note->clear();
  auto v = catalog->GetVolume(s.volume_id);
  if (!v || v->host_id.empty()) return std::string();
  const std::string there = catalog->HostElsewhere(v->host_id);
  if (there.empty()) return std::string();
  auto hosts = catalog->ListHosts();
  const std::string state =
      hosts ? VolumeHostState(*hosts, there, clock->NowMillis(), options.host_timeout_ms) : "unknown";
  if (state != "up") {
    const std::string here = catalog->LocalHost();
    *note = "volume on host " + (here.empty() ? std::string("this one") : catalog->DescribeHost(here)) +
            ", the host approving (the snapshot's volume's host " + catalog->DescribeHost(there) + " is " + state + ")";
    return std::string();
  }
  *note = "volume on host " + catalog->DescribeHost(there) + ", which holds the snapshot's volume";
  return there;
}

ApiResult<VolumeRecord> Ec2Context::QueueVolumeOn(VolumeRecord v, const std::string& host) {
  v.host_id = host;
  v.state = "creating";
  v.path.clear();  // named by its host, whose volume directory this host does not know
  v.managed = true;
  if (auto room = catalog->CheckVolumeQuota(v.account_id, v.size_bytes); !room)
    return std::unexpected(FromErrorWithLimit(room.error(), ec2::kVolumeLimitExceeded));
  if (auto ins = catalog->InsertRoutedVolume(v); !ins)
    return std::unexpected(FromErrorWithLimit(ins.error(), ec2::kVolumeLimitExceeded));
  auto written = catalog->GetVolume(v.volume_id);  // with the tags the catalog keeps (its host's)
  if (!written) return std::unexpected(FromError(written.error()));
  return *written;
}

Status Ec2Context::MakeClaimedVolume(VolumeRecord v, const std::string& runner) {
  // Ends the creation `error`: nothing of it stays here.
  auto fail = [&](const std::string& why) -> Status {
    if (!v.path.empty()) RemoveVolumeFiles(v.path);
    RETURN_IF_ERROR(catalog->FinishVolumeCreation(v.volume_id, runner, "", "error", why));
    return InvalidArgument("volume " + v.volume_id + ": " + why);
  };
  // Recorded: `available`, or `creating` while a background restore fills it. When the
  // creation was ended meanwhile (the sweep judged this host dead), what was made goes.
  auto finish = [&](const std::string& state) -> Status {
    if (auto st = catalog->FinishVolumeCreation(v.volume_id, runner, v.path, state); !st) {
      RemoveVolumeFiles(v.path);
      return st;
    }
    return OkStatus();
  };
  if (options.restore_dir.empty()) return fail("host " + catalog->LocalHost() + " has no volume directory");
  v.path = VolumeImagePath(options.restore_dir, v.volume_id);
  // An earlier process of this host may have claimed it and stopped half-way: start over.
  RemoveVolumeFiles(v.path);
  if (v.snapshot_id.empty()) {
    if (auto made = CreateVolumeImage(v.path, v.size_bytes); !made) return fail(made.error().message());
    return finish("available");
  }
  auto s = catalog->GetSnapshot(v.snapshot_id);
  if (!s) return fail("snapshot " + v.snapshot_id + ": " + s.error().message());
  if (s->state != SnapshotState::kCompleted) return fail("snapshot " + v.snapshot_id + " is not completed");
  if (options.create_lazy && options.start_lazy) {
    v.state = "available";
    if (auto made = options.create_lazy(v); !made) return fail(made.error().message());
    RETURN_IF_ERROR(finish("available"));
    if (auto started = options.start_lazy(v); !started) {
      (void)catalog->SetVolumeState(v.volume_id, "error", "cannot start loading: " + started.error().message());
      return started;
    }
    return OkStatus();
  }
  auto target = FileTarget::Create(v.path, s->volume_size_bytes, false);
  if (!target) return fail(target.error().message());
  if (auto st = finish("creating"); !st) {
    target->reset();
    RemoveVolumeFiles(v.path);
    return st;
  }
  restores->Start(v.volume_id, s->snapshot_id, std::shared_ptr<BlockTarget>(std::move(*target)));
  return OkStatus();
}

}  // namespace snapvol::api
