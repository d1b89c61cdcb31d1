// InspectCatalogFile: what a catalog file is, read without changing it (no migration, no default
// account, no journal mode switch), for `snapvol doctor`, which must diagnose a data dir that a
// daemon of another release may be using.
// Thread-safety: a free function; opens a connection of its own for the call.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"

namespace snapvol {

struct CatalogFileInfo {
  int64_t schema_version = 0;  // PRAGMA user_version
  int64_t latest_version = 0;  // Catalog::LatestSchemaVersion() of this build
};

// Opens path read-only and reads its application id and schema version, then runs SQLite's
// quick_check. kNotFound when the file is missing; kCorruption when it is damaged or not SQLite
// (quick_check's first complaint in the message); kInvalidArgument when it is a SQLite database
// but not a snapvol catalog; kIoError when it cannot be read. A schema version other than the
// latest is not an error: the caller says what to do about it.
Result<CatalogFileInfo> InspectCatalogFile(const std::string& path);

}  // namespace snapvol
