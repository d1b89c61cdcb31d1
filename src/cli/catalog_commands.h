// `snapvol catalog migrate-to URL [--dry-run]`: moves a data dir's SQLite catalog into an
// empty PostgreSQL database (catalog_copy.h does the copy), then switches the data dir to it
// (DIR/catalog.json) and keeps the SQLite file as catalog.db.migrated-<time>. Runs alone:
// refused while snapvold or another snapvol command holds the data dir (DataDir::LockExclusive).
// Progress per table on stderr.
// Thread-safety: call from the CLI's one thread.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

#include "cli/cli_support.h"

namespace snapvol::cli {

// Adds `migrate-to` under the `catalog` command; the callback sets *action, which throws a
// Failure on error.
void AddCatalogMigrateCommand(CLI::App* catalog_cmd, const Globals& g,
                              std::function<void()>* action);

}  // namespace snapvol::cli
