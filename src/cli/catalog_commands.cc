#include "cli/catalog_commands.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "catalog/catalog.h"
#include "catalog/catalog_copy.h"
#include "cli/data_dir.h"
#include "core/clock.h"
#include "core/file_util.h"

namespace snapvol::cli {
namespace {

using json = nlohmann::json;

struct MigrateOptions {
  std::string url;
  bool dry_run = false;
};

void MigrateTo(const Globals& g, const MigrateOptions& o) {
  const std::string& dir = RequireDataDir(g);
  if (!DataDir::IsInitialised(dir))
    throw Failure{dir + " is not an initialised snapvol data dir (run `snapvol init` first)"};
  if (!Catalog::IsPostgresUrl(o.url))
    throw Failure{"migrate-to takes a postgresql:// (or postgres://) URL, not '" + o.url + "'"};
  // Nothing else may write the SQLite catalog between the copy and the switch.
  UniqueFd lock = Must(DataDir::LockExclusive(dir));
  const std::string location = Must(DataDir::CatalogLocation(dir));
  if (Catalog::IsPostgresUrl(location))
    throw Failure{dir + "'s catalog is already PostgreSQL (" + RedactCatalogUrl(location) +
                  "); migrate-to moves a "
                  "SQLite catalog"};
  const std::string target = RedactCatalogUrl(o.url);
  // Brings the SQLite file to this build's schema (as any command would), then lets it go.
  Must(Catalog::Open(location), "open " + location).reset();

  const int64_t started = Clock::Real()->NowMillis();
  CatalogCopyOptions copy;
  copy.dry_run = o.dry_run;
  copy.progress = [&](const std::string& table, int64_t rows, size_t done, size_t total) {
    std::fprintf(stderr, "%s %s: %lld rows (%zu/%zu tables)\n", o.dry_run ? "counted" : "copied",
                 table.c_str(), static_cast<long long>(rows), done, total);
  };
  auto copied = CopyCatalogToPostgres(location, o.url, copy);
  if (!copied) throw Failure{DataDir::ExplainCatalogError(copied.error()).message()};
  const auto& counts = *copied;
  const double seconds = std::max<int64_t>(1, Clock::Real()->NowMillis() - started) / 1000.0;
  int64_t total = 0;
  for (const auto& c : counts) total += c.rows;

  std::string moved_to;
  if (!o.dry_run) {
    // The switch: from here on the data dir opens PostgreSQL. The SQLite file stays, under a
    // name nothing opens, as the way back.
    Must(DataDir::WriteCatalogUrl(dir, o.url), "switch " + dir + " to " + target);
    moved_to = location + ".migrated-" + std::to_string(Clock::Real()->NowMillis());
    for (const char* suffix : {"", "-wal", "-shm"}) {
      const std::string from = location + suffix;
      if (!PathExists(from)) continue;
      if (::rename(from.c_str(), (moved_to + suffix).c_str()) != 0)
        throw Failure{"the catalog is now " + target + ", but " + from +
                      " could not be renamed: " + std::strerror(errno) + "; move it aside by hand"};
    }
  }
  if (g.output == "json") {
    json tables = json::array();
    for (const auto& c : counts) tables.push_back({{"Table", c.table}, {"Rows", c.rows}});
    std::cout << json{{"Target", target}, {"DryRun", o.dry_run}, {"Tables", tables},
                      {"Rows", total},    {"Seconds", seconds},  {"SqliteKeptAs", moved_to}}
                     .dump(2)
              << "\n";
    return;
  }
  char rate[64];
  std::snprintf(rate, sizeof rate, "%.1f s, %.0f rows/s", seconds, total / seconds);
  if (o.dry_run) {
    std::cout << "dry run: " << total << " rows in " << counts.size()
              << " tables would be copied to " << target
              << "; the target is reachable and empty; nothing was changed\n";
    return;
  }
  std::cout << "catalog migrated to " << target << ": " << total << " rows in " << counts.size()
            << " tables (" << rate << "), row counts equal in every table; " << dir
            << " now uses it (catalog.json). The SQLite catalog is "
            << "kept as " << moved_to << "\n";
}

}  // namespace

void AddCatalogMigrateCommand(CLI::App* catalog_cmd, const Globals& g,
                              std::function<void()>* action) {
  auto o = std::make_shared<MigrateOptions>();
  auto* cmd =
      catalog_cmd->add_subcommand("migrate-to",
                                  "Copy this data dir's SQLite catalog into an empty PostgreSQL "
                                  "database and switch to it (the SQLite file is "
                                  "kept as catalog.db.migrated-<time>). Stop snapvold first.");
  cmd->add_option("URL", o->url,
                  "postgresql://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=verify-full…]")
      ->required();
  cmd->add_flag("--dry-run", o->dry_run, "Count the rows and check the target; change nothing");
  cmd->callback([&g, action, o] { *action = [&g, o] { MigrateTo(g, *o); }; });
}

}  // namespace snapvol::cli
