#include "daemon/nbd_exports.h"

#include "core/ids.h"
#include "nbd/nbd_psk.h"

namespace snapvol {
namespace {

// A volume NBD serves: managed, attached, and neither being created nor failed.
bool Exported(const VolumeRecord& v) {
  return v.managed && !v.instance_id.empty() && v.state != "creating" && v.state != "error";
}

bool MayUse(const nbd::Peer& peer, const VolumeRecord& v) { return peer.all || peer.account == v.account_id; }

}  // namespace

nbd::ExportLookup NbdExportLookup(Catalog* catalog, VolumeRegistry* volumes) {
  return [catalog, volumes](const nbd::Peer& peer, const std::string& name) -> Result<std::shared_ptr<nbd::Export>> {
    // One answer for "no such volume" and "another team's": no existence oracle.
    auto none = [&] { return NotFound("no export " + name + " for " + peer.identity); };
    if (!peer.authenticated() || !IsVolumeId(name)) return none();
    auto v = catalog->GetVolume(name);
    if (!v || !Exported(*v) || !MayUse(peer, *v)) return none();
    ASSIGN_OR_RETURN(auto mv, volumes->Get(v->volume_id, v->path));
    return std::shared_ptr<nbd::Export>(std::move(mv));
  };
}

nbd::ExportList NbdExportList(Catalog* catalog) {
  return [catalog](const nbd::Peer& peer) {
    std::vector<std::string> names;
    if (!peer.authenticated()) return names;
    auto vols = catalog->ListVolumes(peer.all ? std::nullopt : std::optional<std::string>(peer.account));
    if (vols)
      for (const auto& v : *vols)
        if (Exported(v) && MayUse(peer, v)) names.push_back(v.volume_id);
    return names;
  };
}

nbd::PskLookup NbdPskLookup(Accounts* accounts) {
  return [accounts](const std::string& identity) -> std::optional<nbd::PskKey> {
    auto who = accounts->Identify(identity);
    if (!who) return std::nullopt;
    const KeyLookup& key = (*who)->key;
    nbd::PskKey out;
    out.key = nbd::PskForSecret(key.secret_access_key);
    out.peer.account = key.account_id;
    out.peer.all = key.is_admin;
    out.peer.identity = identity;
    return out;
  };
}

}  // namespace snapvol
