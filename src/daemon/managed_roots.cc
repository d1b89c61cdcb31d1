#include "daemon/managed_roots.h"

#include "managed/managed_rollback.h"
#include "managed/volume_deletion.h"

namespace snapvol {

void WireManagedRollbacks(RollbackTasks* rollbacks, VolumeRegistry* volumes, nbd::NbdServer* const* nbd,
                          ExportFence* fence, std::function<void(const std::string& volume_id, size_t ended)> on_ended) {
  ManagedRollbackHooks h = MakeManagedRollbackHooks(volumes);
  h.end_connections = [nbd, fence, on_ended](const std::string& volume_id) -> Status {
    fence->Close(volume_id);  // first: a client that asks again is refused until admit
    if (!*nbd) return OkStatus();
    ASSIGN_OR_RETURN(size_t ended, (*nbd)->Disconnect(volume_id));
    if (on_ended) on_ended(volume_id, ended);
    return OkStatus();
  };
  h.admit = [fence](const std::string& volume_id) { fence->Open(volume_id); };
  rollbacks->managed = std::move(h);
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
  h.delete_volume = [catalog, volumes, nbd, restore_dir](const std::string& volume_id,
                                                         const std::string& by_task) -> Status {
    VolumeDeletion with{.catalog = catalog,
                        .volume_dir = restore_dir,
                        .end_connections = [nbd](const std::string& id) -> Status {
                          if (!*nbd) return OkStatus();
                          RETURN_IF_ERROR((*nbd)->Disconnect(id));
                          return OkStatus();
                        },
                        .on_deleted = [volumes](const std::string& id) { volumes->Forget(id); },
                        .by_task = by_task};
    return DeleteVolume(with, volume_id);
  };
  return h;
}

}  // namespace snapvol
