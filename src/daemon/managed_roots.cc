#include "daemon/managed_roots.h"

#include "managed/volume_files.h"

namespace snapvol {

Status DeleteManagedVolume(Catalog* catalog, VolumeRegistry* volumes, nbd::NbdServer* nbd,
                           const std::string& restore_dir, const std::string& volume_id) {
  ASSIGN_OR_RETURN(VolumeRecord v, catalog->GetVolume(volume_id));
  if (!v.instance_id.empty()) return Conflict("volume " + volume_id + " is attached to " + v.instance_id);
  if (v.state == "creating") return Conflict("volume " + volume_id + " is being restored (creating)");
  if (nbd) RETURN_IF_ERROR(nbd->Disconnect(volume_id));
  RETURN_IF_ERROR(catalog->DeleteVolume(volume_id));
  volumes->Forget(volume_id);
  if ((v.managed || !v.snapshot_id.empty()) && v.path.rfind(restore_dir + "/", 0) == 0) RemoveVolumeFiles(v.path);
  return OkStatus();
}

ManagedRootHooks MakeManagedRootHooks(Catalog* catalog, VolumeRegistry* volumes, nbd::NbdServer* const* nbd,
                                      ExportFence* fence, std::string restore_dir,
                                      std::function<void(const std::string& volume_id, size_t ended)> on_ended) {
  ManagedRootHooks h;
  h.end_connections = [nbd, fence, on_ended](const std::string& volume_id) -> Status {
    fence->Close(volume_id);  // first: a client that asks again is refused
    if (!*nbd) return OkStatus();
    ASSIGN_OR_RETURN(size_t ended, (*nbd)->Disconnect(volume_id));
    if (on_ended) on_ended(volume_id, ended);
    return OkStatus();
  };
  h.admit = [fence](const std::string& volume_id) { fence->Open(volume_id); };
  h.delete_volume = [catalog, volumes, nbd, restore_dir](const std::string& volume_id) -> Status {
    return DeleteManagedVolume(catalog, volumes, *nbd, restore_dir, volume_id);
  };
  return h;
}

}  // namespace snapvol
