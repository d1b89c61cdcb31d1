// Internal to src/catalog: the PostgreSQL backend of the database seam (catalog_db.h), for
// several hosts sharing one service, and its schema (catalog_postgres_schema.cc). Nothing
// outside catalog_postgres*.cc names libpq.
//
// Statements: `?` becomes `$1, $2, …` (E'…' and $$…$$ strings are not part of the
// dialect); an uncached statement runs with PQexecParams, a cached one is PQprepare'd once
// per session under a generated name. Integers go as bigint text parameters, text as text,
// blobs as binary bytea; results come back as text (bytea decoded, integers parsed strictly,
// a boolean as 0/1). A whole result is fetched when the statement runs (the catalog's queries
// are paged), so Step only walks it; the SQL reaches the server at the first Step, so errors
// in it come from there.
//
// Transactions: a writer's Begin takes one transaction-scoped advisory lock that every writer
// of the database takes (writers are serialised cluster-wide, as SQLite's write lock does on
// one host); a reader's is REPEATABLE READ READ ONLY (one consistent state). Inside a
// transaction Begin sets a savepoint.
//
// Errors follow the SQLSTATE: unique/primary key → kAlreadyExists, foreign key and other
// integrity violations → kInvalidArgument, serialization failure, deadlock, lock or statement
// timeout and a lost connection → retryable kIoError, disk full → kNoSpace, data corruption →
// kCorruption, SQL the server refuses (class 42) → kInternal, the rest kIoError. A connection
// found dead is re-established by the next call made outside a transaction.
//
// DataVersion reads a counter every write transaction bumps as it commits (own commits
// included); inside a read transaction it reads that transaction's snapshot, so ask outside.
// A statement that may write (MayWrite) run outside a transaction runs in a write transaction
// of its own, as a SQLite autocommit write takes the write lock and moves data_version: so a
// lone INSERT, UPDATE or DELETE (a policy detached by the CLI) waits for the write lock and
// bumps the counter other processes' caches follow.
//
// Thread-safety: as catalog_db.h (one thread at a time per connection and its statements).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "catalog/catalog_db.h"
#include "core/status.h"

namespace snapvol::catalog_internal {

// Connects to url, a libpq connection URI (postgresql://user:password@host:port/db?…) or
// key=value string. Unless the URL sets them: connect_timeout 10 s, TCP keepalives (idle
// 30 s, every 10 s, 3 lost), statement_timeout 30 s, client_encoding UTF8,
// application_name snapvol. Errors: kIoError (retryable) when the server cannot be reached,
// kUnauthorized when it refuses the credentials, kInvalidArgument for a malformed URL.
Result<std::unique_ptr<Connection>> OpenPostgres(const std::string& url);

// The statement timeout a connection gets unless its URL sets one.
inline constexpr int kPostgresStatementTimeoutMs = 30000;
// The advisory lock key every writer takes ("SnV1", the SQLite catalog's application_id).
inline constexpr int64_t kPostgresWriteLockKey = 0x536e5631;

// The schema version MigratePostgres brings a database to: the SQLite catalog's latest
// migration (catalog_migrations.cc); the test keeps them equal.
inline constexpr int kPostgresSchemaVersion = 31;

// Brings the database (its current schema, i.e. the connection's search_path) to
// kPostgresSchemaVersion in one write transaction; a no-op when it is there. Errors:
// kUnsupported for a database at a newer version (upgrade snapvol), kInvalidArgument when the
// schema holds tables but is not a snapvol catalog, else the statement's error.
Status MigratePostgres(Connection& db);
// The version recorded in the database (0: none yet).
Result<int64_t> PostgresSchemaVersion(Connection& db);

// --- the pieces of the driver with no server in them (exposed for the test) ---

// `?` → `$1, $2, …` in order, except inside '…' literals, "…" identifiers, -- and /* */
// comments. *count: how many.
std::string NumberParameters(std::string_view sql, int* count);

// Whether a statement may write rows: it starts with INSERT, UPDATE, DELETE or MERGE, or is a
// WITH whose text names one of them (a data-modifying CTE). A read taken for a write costs only
// the write lock; a write taken for a read would skip it.
bool MayWrite(std::string_view sql);

// How a SQLSTATE maps to an Error (see the header comment). constraint: the violated
// constraint's name (a primary key's ends in _pkey); connection_lost: libpq reports the
// connection bad, whatever the state.
struct ErrorInfo {
  ErrorCode code;
  bool retryable;
  Violation violation;
};
ErrorInfo ClassifySqlState(std::string_view state, std::string_view constraint,
                           bool connection_lost);

// The URL with its password (user:password@ or password=…) left out, for messages.
std::string RedactPassword(std::string_view url);

}  // namespace snapvol::catalog_internal
