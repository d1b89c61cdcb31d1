#include "daemon/nbd_exports.h"

#include <optional>

#include "core/ids.h"
#include "nbd/nbd_psk.h"

namespace snapvol {
namespace {

// A volume NBD serves: managed, attached, and neither being created nor failed.
bool Exported(const VolumeRecord& v) {
  return v.managed && !v.instance_id.empty() && v.state != "creating" && v.state != "error";
}

bool MayUse(const nbd::Peer& peer, const VolumeRecord& v) { return peer.all || peer.account == v.account_id; }

// The attachment a connection to a volume is served under: its instance and when it was
// attached. A volume detached and attached again (through another host, between two of this
// host's passes) has another one, though it is attached as before.
std::string AttachmentOf(const VolumeRecord& v) { return v.instance_id + "@" + std::to_string(v.attach_ms); }

// A volume as one connection opened it (by its id, or by its instance's device name): the
// volume itself, with its id as identity (Disconnect(volume id) ends it, whatever name opened
// it) and the attachment it was opened under as generation (DisconnectStale ends it once the
// volume has been attached again).
class VolumeExport : public nbd::Export {
 public:
  VolumeExport(std::shared_ptr<nbd::Export> volume, std::string volume_id, std::string attachment)
      : volume_(std::move(volume)), volume_id_(std::move(volume_id)), attachment_(std::move(attachment)) {}
  uint64_t size() const override { return volume_->size(); }
  Status Read(uint64_t offset, std::span<uint8_t> out) override { return volume_->Read(offset, out); }
  Status Write(uint64_t offset, std::span<const uint8_t> data, bool fua) override {
    return volume_->Write(offset, data, fua);
  }
  Status Flush() override { return volume_->Flush(); }
  Status Trim(uint64_t offset, uint64_t length) override { return volume_->Trim(offset, length); }
  Status WriteZeroes(uint64_t offset, uint64_t length, bool may_punch) override {
    return volume_->WriteZeroes(offset, length, may_punch);
  }
  Result<std::vector<nbd::Extent>> BlockStatus(uint64_t offset, uint64_t length) override {
    return volume_->BlockStatus(offset, length);
  }
  std::string identity() const override { return volume_id_; }
  std::string generation() const override { return attachment_; }

 private:
  std::shared_ptr<nbd::Export> volume_;
  std::string volume_id_;
  std::string attachment_;
};

// The volume attached at `<instance-id>:<device>` that the peer may see, if any.
std::optional<VolumeRecord> AtDevice(Catalog* catalog, const nbd::Peer& peer, const std::string& name) {
  const size_t colon = name.find(':');
  if (colon == std::string::npos) return std::nullopt;
  const std::string instance_id = name.substr(0, colon), device = name.substr(colon + 1);
  if (!IsInstanceId(instance_id) || !IsDeviceName(device)) return std::nullopt;
  auto vols = catalog->ListVolumes(peer.all ? std::nullopt : std::optional<std::string>(peer.account));
  if (!vols) return std::nullopt;
  for (auto& v : *vols)
    if (v.instance_id == instance_id && v.device == device) return std::move(v);
  return std::nullopt;
}

}  // namespace

void ExportFence::Close(const std::string& volume_id) {
  std::lock_guard lock(mu_);
  closed_.insert(volume_id);
}

void ExportFence::Open(const std::string& volume_id) {
  std::lock_guard lock(mu_);
  closed_.erase(volume_id);
}

bool ExportFence::Closed(const std::string& volume_id) const {
  std::lock_guard lock(mu_);
  return closed_.contains(volume_id);
}

nbd::ExportLookup NbdExportLookup(Catalog* catalog, VolumeRegistry* volumes, const ExportFence* fence) {
  return [catalog, volumes, fence](const nbd::Peer& peer,
                                   const std::string& name) -> Result<std::shared_ptr<nbd::Export>> {
    // One answer for "no such volume" and "another team's": no existence oracle.
    auto none = [&] { return NotFound("no export " + name + " for " + peer.identity); };
    if (!peer.authenticated()) return none();
    const bool by_device = !IsVolumeId(name);
    std::optional<VolumeRecord> v;
    if (by_device) {
      v = AtDevice(catalog, peer, name);
    } else if (auto got = catalog->GetVolume(name)) {
      v = std::move(*got);
    }
    if (!v || !Exported(*v) || !MayUse(peer, *v) || (fence && fence->Closed(v->volume_id))) return none();
    ASSIGN_OR_RETURN(auto mv, volumes->Get(v->volume_id, v->path));
    return std::shared_ptr<nbd::Export>(std::make_shared<VolumeExport>(std::move(mv), v->volume_id, AttachmentOf(*v)));
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

void EndDetachedExports(Catalog* catalog, nbd::NbdServer* server,
                        const std::function<void(const std::string&, size_t, const std::string&)>& on_ended,
                        const std::function<void(const std::string&, const Error&)>& on_failure) {
  // The attachment volume `id` has now (nullopt: detached, or gone); an error when the catalog
  // could not be read (nothing is ended on a guess).
  auto attachment = [catalog](const std::string& id) -> Result<std::optional<std::string>> {
    auto v = catalog->GetVolume(id);
    if (!v && v.error().code() != ErrorCode::kNotFound) return std::unexpected(v.error());
    if (!v || v->instance_id.empty()) return std::optional<std::string>();
    return std::optional<std::string>(AttachmentOf(*v));
  };
  for (const auto& [id, opened_under] : server->OpenExports()) {
    if (!IsVolumeId(id)) continue;  // a name still being looked up: its lookup decides
    auto now = attachment(id);
    if (!now) {
      on_failure(id, now.error());
      continue;
    }
    if (*now && opened_under == std::set<std::string>{**now}) continue;  // served under the attachment it has
    // Read again where no connection can open meanwhile (DisconnectStale), so one opened under
    // an attachment newer than the read above is kept.
    bool attached = false;
    auto ended = server->DisconnectStale(id, [&]() -> Result<std::optional<std::string>> {
      auto current = attachment(id);
      if (current) attached = current->has_value();
      return current;
    });
    if (!ended) on_failure(id, ended.error());
    else if (*ended) on_ended(id, *ended, attached ? "attached again since it was opened (seen in the catalog)"
                                                   : "detached (seen in the catalog)");
  }
}

}  // namespace snapvol
