// CopyCatalogToPostgres and InspectPostgresCatalog (catalog_copy.h).
//
// The tables and their columns are read from the PostgreSQL schema (catalog_postgres_test
// keeps it equal to the SQLite one: same tables, same columns in the same order), so a table
// added by a later migration is copied without a change here. Values are bound by the
// PostgreSQL column's type: bigint as integers, bytea as blobs, the rest as text; a NULL
// (quotas.max_value) is written as the literal NULL, since the seam binds no NULLs.
#include "catalog/catalog_copy.h"

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/catalog_postgres.h"
#include "catalog/catalog_sqlite.h"

namespace snapvol {
namespace {

using catalog_internal::Connection;
using catalog_internal::StatementImpl;

// Tables of the PostgreSQL schema that are not catalog data: the version and the counter
// behind DataVersion (catalog_postgres_schema.cc). They have no SQLite twin.
const std::set<std::string> kPostgresOnlyTables = {"snapvol_schema", "snapvol_data_version"};
// Tables whose one row the schema seeds (catalog_postgres_schema.cc, as SQLite's migrations 14
// and 20 do): an empty catalog has them, and the copy replaces them with the source's.
const std::set<std::string> kSeededTables = {"usage_state", "recycle_bin_settings"};

enum class ColumnKind { kInt, kText, kBlob };

struct Column {
  std::string name;
  ColumnKind kind = ColumnKind::kText;
  bool identity = false;
};

struct Table {
  std::string name;
  std::vector<Column> columns;
};

Result<int64_t> CountRows(Connection& db, const std::string& table, const std::string& what) {
  ASSIGN_OR_RETURN(std::unique_ptr<StatementImpl> st,
                   db.Prepare("SELECT count(*) FROM " + table, what));
  ASSIGN_OR_RETURN(bool row, st->Step());
  if (!row) return Internal(what + ": count(*) returned no row");
  return st->Int(0);
}

// The catalog tables of the connection's current schema, parents before the tables whose
// foreign keys point at them.
Result<std::vector<Table>> PostgresTables(Connection& db, const std::string& what) {
  std::vector<std::string> names;
  {
    ASSIGN_OR_RETURN(
        std::unique_ptr<StatementImpl> st,
        db.Prepare("SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = current_schema()"
                   " ORDER BY tablename",
                   what));
    for (;;) {
      ASSIGN_OR_RETURN(bool row, st->Step());
      if (!row) break;
      std::string name = st->Text(0);
      if (!kPostgresOnlyTables.contains(name)) names.push_back(std::move(name));
    }
  }
  std::map<std::string, std::set<std::string>> parents;
  {
    ASSIGN_OR_RETURN(
        std::unique_ptr<StatementImpl> st,
        db.Prepare("SELECT child.relname, parent.relname FROM pg_catalog.pg_constraint c"
                   " JOIN pg_catalog.pg_class child ON child.oid = c.conrelid"
                   " JOIN pg_catalog.pg_class parent ON parent.oid = c.confrelid"
                   " JOIN pg_catalog.pg_namespace n ON n.oid = child.relnamespace"
                   " WHERE c.contype = 'f' AND n.nspname = current_schema()",
                   what));
    for (;;) {
      ASSIGN_OR_RETURN(bool row, st->Step());
      if (!row) break;
      if (st->Text(0) != st->Text(1)) parents[st->Text(0)].insert(st->Text(1));
    }
  }
  // Kahn's order, alphabetical among the ready ones so the progress reads the same each time.
  std::vector<std::string> ordered;
  std::set<std::string> placed;
  while (ordered.size() < names.size()) {
    bool progressed = false;
    for (const std::string& n : names) {
      if (placed.contains(n)) continue;
      bool ready = true;
      for (const std::string& p : parents[n]) ready = ready && (placed.contains(p) || p == n);
      if (!ready) continue;
      ordered.push_back(n);
      placed.insert(n);
      progressed = true;
    }
    if (!progressed) return Internal(what + ": the catalog's foreign keys form a cycle");
  }
  std::vector<Table> tables;
  for (const std::string& n : ordered) {
    Table t{n, {}};
    ASSIGN_OR_RETURN(
        std::unique_ptr<StatementImpl> st,
        db.Prepare(
            "SELECT column_name, data_type, is_identity FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
            what));
    st->BindText(1, n);
    for (;;) {
      ASSIGN_OR_RETURN(bool row, st->Step());
      if (!row) break;
      Column c;
      c.name = st->Text(0);
      const std::string type = st->Text(1);
      c.kind = type == "bigint" || type == "integer" || type == "smallint" ? ColumnKind::kInt
               : type == "bytea"                                           ? ColumnKind::kBlob
                                                                           : ColumnKind::kText;
      c.identity = st->Text(2) == "YES";
      t.columns.push_back(std::move(c));
    }
    if (t.columns.empty()) return Internal(what + ": table " + n + " has no columns");
    tables.push_back(std::move(t));
  }
  return tables;
}

// Refuses a target that holds snapvol rows: migrate-to never merges two catalogs.
Status CheckTargetEmpty(Connection& pg, const std::vector<Table>& tables, const std::string& what) {
  for (const Table& t : tables) {
    if (kSeededTables.contains(t.name)) continue;
    ASSIGN_OR_RETURN(int64_t rows, CountRows(pg, t.name, what));
    if (rows != 0)
      return Conflict(what + ": the target catalog is not empty (table " + t.name + " holds " +
                      std::to_string(rows) + (rows == 1 ? " row" : " rows") +
                      "); migrate-to copies into an empty database only, and changed nothing");
  }
  return OkStatus();
}

// The target's schema version, checked without changing anything: 0 (an empty schema) or
// this build's; anything else is refused.
Result<int64_t> CheckTargetSchema(Connection& pg, const std::string& what) {
  ASSIGN_OR_RETURN(int64_t version, catalog_internal::PostgresSchemaVersion(pg));
  if (version > catalog_internal::kPostgresSchemaVersion)
    return MakeError(ErrorCode::kUnsupported,
                     what + ": the target's catalog schema version " + std::to_string(version) +
                         " is newer than this snapvol supports (up to " +
                         std::to_string(catalog_internal::kPostgresSchemaVersion) +
                         "); upgrade snapvol");
  if (version != 0 && version != catalog_internal::kPostgresSchemaVersion)
    return MakeError(ErrorCode::kUnsupported,
                     what + ": the target's catalog schema version " + std::to_string(version) +
                         " is older than this snapvol's; open it once with this snapvol first");
  return version;
}

// Copies one table's rows from src to pg (inside both connections' transactions).
Result<int64_t> CopyTable(Connection& src, Connection& pg, const Table& t,
                          const std::string& what) {
  std::string cols;
  for (const Column& c : t.columns) cols += (cols.empty() ? "" : ", ") + c.name;
  ASSIGN_OR_RETURN(std::unique_ptr<StatementImpl> read,
                   src.Prepare("SELECT " + cols + " FROM " + t.name, what));
  const std::string insert_head = "INSERT INTO " + t.name + " (" + cols + ") VALUES (";
  int64_t copied = 0;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, read->Step());
    if (!row) break;
    // A NULL goes into the SQL text; each pattern of NULLs is prepared once.
    std::string sql = insert_head;
    for (size_t i = 0; i < t.columns.size(); ++i) {
      sql += i == 0 ? "" : ", ";
      sql += read->IsNull(static_cast<int>(i)) ? "NULL" : "?";
    }
    sql += ")";
    ASSIGN_OR_RETURN(StatementImpl * write, pg.PrepareCached(sql, what + ": copy table " + t.name));
    int param = 1;
    for (size_t i = 0; i < t.columns.size(); ++i) {
      const int col = static_cast<int>(i);
      if (read->IsNull(col)) continue;
      switch (t.columns[i].kind) {
        case ColumnKind::kInt:
          write->BindInt(param++, read->Int(col));
          break;
        case ColumnKind::kBlob:
          write->BindBlob(param++, read->Blob(col));
          break;
        case ColumnKind::kText:
          write->BindText(param++, read->Text(col));
          break;
      }
    }
    auto stepped = write->Step();
    pg.Release(write);
    if (!stepped)
      return std::unexpected(stepped.error());  // names the table (the statement's what)
    ++copied;
  }
  // An identity column's sequence must not hand out an id the copy already used.
  for (const Column& c : t.columns) {
    if (!c.identity || copied == 0) continue;
    ASSIGN_OR_RETURN(
        std::unique_ptr<StatementImpl> st,
        pg.Prepare("SELECT setval(pg_get_serial_sequence('" + t.name + "', '" + c.name +
                       "'), (SELECT max(" + c.name + ") FROM " + t.name + "))",
                   what + ": move the id sequence of " + t.name));
    if (auto moved = st->Step(); !moved) return std::unexpected(moved.error());
  }
  return copied;
}

}  // namespace

Result<std::vector<CatalogTableCount>> CopyCatalogToPostgres(const std::string& sqlite_path,
                                                             const std::string& url,
                                                             const CatalogCopyOptions& options) {
  ASSIGN_OR_RETURN(
      std::unique_ptr<Connection> src,
      catalog_internal::OpenSqlite(sqlite_path, /*read_only=*/true, "open catalog " + sqlite_path));
  const std::string src_what = "read catalog " + sqlite_path;
  ASSIGN_OR_RETURN(int64_t src_version, catalog_internal::CheckSqliteCatalogFile(*src, src_what));
  if (src_version != catalog_internal::kPostgresSchemaVersion)
    return MakeError(ErrorCode::kUnsupported,
                     src_what + ": schema version " + std::to_string(src_version) +
                         ", but this snapvol's PostgreSQL "
                         "schema is version " +
                         std::to_string(catalog_internal::kPostgresSchemaVersion) +
                         (src_version < catalog_internal::kPostgresSchemaVersion
                              ? "; open the data dir once to migrate it"
                              : "; upgrade snapvol"));
  ASSIGN_OR_RETURN(std::unique_ptr<Connection> pg, catalog_internal::OpenPostgres(url));
  const std::string what = "migrate the catalog to " + pg->Describe();
  if (auto checked = CheckTargetSchema(*pg, what); !checked)
    return std::unexpected(checked.error());

  // Everything in one PostgreSQL transaction, the schema included (PostgreSQL's DDL is
  // transactional; MigratePostgres inside it is a savepoint): a copy that fails, or a dry
  // run, leaves the target as it was.
  RETURN_IF_ERROR(src->Begin(/*write=*/false));
  RETURN_IF_ERROR(pg->Begin(/*write=*/true));
  std::vector<CatalogTableCount> counts;
  Status copied = [&]() -> Status {
    RETURN_IF_ERROR(catalog_internal::MigratePostgres(*pg));
    ASSIGN_OR_RETURN(std::vector<Table> tables, PostgresTables(*pg, what));
    RETURN_IF_ERROR(CheckTargetEmpty(*pg, tables, what));
    if (options.dry_run) {
      for (size_t i = 0; i < tables.size(); ++i) {
        ASSIGN_OR_RETURN(int64_t rows, CountRows(*src, tables[i].name, src_what));
        counts.push_back({tables[i].name, rows});
        if (options.progress) options.progress(tables[i].name, rows, i + 1, tables.size());
      }
      return OkStatus();
    }
    for (const Table& t : tables) {
      if (kSeededTables.contains(t.name)) RETURN_IF_ERROR(pg->Exec("DELETE FROM " + t.name, what));
    }
    for (size_t i = 0; i < tables.size(); ++i) {
      ASSIGN_OR_RETURN(int64_t rows, CopyTable(*src, *pg, tables[i], what));
      counts.push_back({tables[i].name, rows});
      if (options.progress) options.progress(tables[i].name, rows, i + 1, tables.size());
    }
    // Both sides counted again, the source in the state it was read in: a row that did not
    // arrive, or arrived twice, stops the switch.
    for (const CatalogTableCount& c : counts) {
      ASSIGN_OR_RETURN(int64_t in_src, CountRows(*src, c.table, src_what));
      ASSIGN_OR_RETURN(int64_t in_pg, CountRows(*pg, c.table, what));
      if (in_src != in_pg || in_src != c.rows)
        return Corruption(what + ": table " + c.table + " has " + std::to_string(in_src) +
                          " rows in the source but " + std::to_string(in_pg) +
                          " in the target after the copy; nothing was committed");
    }
    return OkStatus();
  }();
  src->Rollback();
  if (!copied || options.dry_run) {
    pg->Rollback();
    if (!copied) return std::unexpected(copied.error());
    return counts;
  }
  RETURN_IF_ERROR(pg->Commit());
  return counts;
}

std::string RedactCatalogUrl(const std::string& url) {
  return catalog_internal::RedactPassword(url);
}

Result<PostgresCatalogInfo> InspectPostgresCatalog(const std::string& url) {
  ASSIGN_OR_RETURN(std::unique_ptr<Connection> pg, catalog_internal::OpenPostgres(url));
  PostgresCatalogInfo info;
  info.where = pg->Describe();
  info.latest_version = catalog_internal::kPostgresSchemaVersion;
  ASSIGN_OR_RETURN(info.schema_version, catalog_internal::PostgresSchemaVersion(*pg));
  if (info.schema_version != info.latest_version) return info;
  const std::string what = "inspect catalog " + info.where;
  RETURN_IF_ERROR(pg->Begin(/*write=*/false));
  Status read = [&]() -> Status {
    ASSIGN_OR_RETURN(std::vector<Table> tables, PostgresTables(*pg, what));
    for (const Table& t : tables) {
      ASSIGN_OR_RETURN(int64_t rows, CountRows(*pg, t.name, what));
      info.tables.push_back({t.name, rows});
    }
    return OkStatus();
  }();
  pg->Rollback();
  if (!read) return std::unexpected(read.error());
  std::sort(
      info.tables.begin(), info.tables.end(),
      [](const CatalogTableCount& a, const CatalogTableCount& b) { return a.table < b.table; });
  return info;
}

}  // namespace snapvol
