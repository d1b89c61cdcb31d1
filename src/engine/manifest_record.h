// The catalog row a published manifest root describes: how `snapvol catalog rebuild` and the
// Recycle Bin's rebuild (engine/recycle_bin.h) turn the self-describing store back into
// catalog rows, one rule for both. The owner is the root's account when the catalog knows it,
// else the default account; tags come sorted by key.
// Thread-safety: as the Catalog it is given.
#pragma once

#include "catalog/catalog.h"
#include "store/repository.h"

namespace snapvol {

SnapshotRecord SnapshotRecordOfManifest(Catalog* catalog, const Repository& repo, const ManifestMeta& m);

}  // namespace snapvol
