// What the NBD server may serve, from the catalog: attached managed volumes, each to the
// account that owns it (administrators and root on the Unix socket: all), by volume id or by
// `<instance-id>:<device>` (whatever volume is attached there, so a server keeps its export
// name across a root volume replacement), and which account a TLS-PSK identity (an API access
// key id) belongs to, with the key derived from that access key's secret (nbd/nbd_psk.h).
// Everything refused gets the same "no such export" answer.
// Thread-safety: the functions returned are called from NBD connection threads; Catalog,
// Accounts, VolumeRegistry and ExportFence are safe from many threads.
#pragma once

#include <functional>
#include <mutex>
#include <set>
#include <string>

#include "api/accounts.h"
#include "catalog/catalog.h"
#include "managed/managed_volume.h"
#include "nbd/nbd_server.h"

namespace snapvol {

// Volumes NBD refuses for now whatever the catalog says: one whose root replacement is
// ending its connections, until the swap is done.
class ExportFence {
 public:
  void Close(const std::string& volume_id);
  void Open(const std::string& volume_id);
  bool Closed(const std::string& volume_id) const;

 private:
  mutable std::mutex mu_;
  std::set<std::string> closed_;  // guarded by mu_
};

// fence may be null (nothing fenced); not owned.
nbd::ExportLookup NbdExportLookup(Catalog* catalog, VolumeRegistry* volumes, const ExportFence* fence = nullptr);
nbd::ExportList NbdExportList(Catalog* catalog);
nbd::PskLookup NbdPskLookup(Accounts* accounts);

// Ends the connections to volumes the catalog no longer has attached (detached, or gone), or
// has attached again since they were opened (detached and attached anew between two passes:
// the connections of the old attachment end, those opened under the new one stay), whoever
// changed it: a DetachVolume or DeleteVolume answered by another host (docs/multi-host.md part
// 3) ends only that host's connections, and this host sees the change here, at its claimer's
// next pass. on_ended(volume_id, connections, why) is told of each volume whose connections
// ended, on_failure(volume_id, error) of each that could not be read or whose connections did
// not end in time (tried again at the next call).
void EndDetachedExports(Catalog* catalog, nbd::NbdServer* server,
                        const std::function<void(const std::string&, size_t, const std::string&)>& on_ended,
                        const std::function<void(const std::string&, const Error&)>& on_failure);

}  // namespace snapvol
