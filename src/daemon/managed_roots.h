// The daemon's side of replacing a managed root volume (engine/managed_root_replacement.h)
// and of rolling a managed volume back in place:
// ending a volume's NBD connections behind a fence, and deleting a volume through the one
// deletion path (managed/volume_deletion.h).
// Thread-safety: the hooks are called from the rollback runner; what they use is safe from
// many threads. *nbd is set once the NBD server exists (null before: nothing to end).
#pragma once

#include <functional>
#include <string>

#include "catalog/catalog.h"
#include "daemon/nbd_exports.h"
#include "engine/managed_root_replacement.h"
#include "engine/rollback_tasks.h"
#include "managed/managed_volume.h"
#include "nbd/nbd_server.h"

namespace snapvol {

// Rolling managed volumes back in place (managed/managed_rollback.h): rewritten through the
// registry's volumes, their NBD connections ended and fenced out for the rollback.
void WireManagedRollbacks(RollbackTasks* rollbacks, VolumeRegistry* volumes, nbd::NbdServer* const* nbd,
                          ExportFence* fence, std::function<void(const std::string& volume_id, size_t ended)> on_ended);

ManagedRootHooks MakeManagedRootHooks(Catalog* catalog, VolumeRegistry* volumes, nbd::NbdServer* const* nbd,
                                      ExportFence* fence, std::string restore_dir,
                                      std::function<void(const std::string& volume_id, size_t ended)> on_ended);

}  // namespace snapvol
