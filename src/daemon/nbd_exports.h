// What the NBD server may serve, from the catalog: attached managed volumes, each to the
// account that owns it (administrators and root on the Unix socket: all), and which account
// a TLS-PSK identity (an API access key id) belongs to, with the key derived from that access
// key's secret (nbd/nbd_psk.h).
// Thread-safety: the functions returned are called from NBD connection threads; Catalog,
// Accounts and VolumeRegistry are safe from many threads.
#pragma once

#include "api/accounts.h"
#include "catalog/catalog.h"
#include "managed/managed_volume.h"
#include "nbd/nbd_server.h"

namespace snapvol {

nbd::ExportLookup NbdExportLookup(Catalog* catalog, VolumeRegistry* volumes);
nbd::ExportList NbdExportList(Catalog* catalog);
nbd::PskLookup NbdPskLookup(Accounts* accounts);

}  // namespace snapvol
