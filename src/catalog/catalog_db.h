// Internal to src/catalog: the database seam. Every catalog query runs on a Connection, and
// each backend implements one: SQLite (catalog_sqlite.cc, the embedded default) and
// PostgreSQL (catalog_postgres.cc, for several hosts sharing one service). Nothing outside
// the backend files names sqlite3 or libpq.
//
// SQL is written once, in the dialect both backends accept:
// - parameters are `?`, bound in order (the PostgreSQL backend numbers them $1, $2, …);
// - integers are 64-bit (INTEGER in SQLite, BIGINT in PostgreSQL), text is UTF-8, blobs are
//   BLOB / BYTEA; booleans are integers 0/1;
// - upserts are `INSERT … ON CONFLICT (…) DO UPDATE / DO NOTHING`, never `INSERT OR …`;
//   a new row's generated key comes back with `RETURNING`;
// - LIKE is only used with patterns whose letters need no case folding (SQLite's LIKE folds
//   ASCII case, PostgreSQL's does not); GLOB, PRAGMA and sqlite_schema stay in the SQLite
//   backend, the schema differences in each backend's migrations.
//
// Transactions keep SQLite's meaning on both: a write transaction is serialised with every
// other write transaction on the database (SQLite's write lock; PostgreSQL takes a
// transaction-scoped advisory lock at Begin), so a check-then-write inside one is never raced.
// A statement that fails inside a transaction leaves it unusable on PostgreSQL: the caller
// returns the error and the transaction rolls back (the catalog never continues after a
// failed statement).
//
// Thread-safety: a Connection and its statements are used by one thread at a time (the
// Catalog holds the mutex guarding the connection).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"

namespace snapvol::catalog_internal {

enum class Backend { kSqlite, kPostgres };

// The constraint a failed Step broke, for callers that answer it with an error of their own
// (e.g. "account not found" for a foreign key).
enum class Violation { kNone, kPrimaryKey, kUnique, kForeignKey, kOther };

// One backend's prepared statement. Bind errors are kept and returned by the next Step.
class StatementImpl {
 public:
  virtual ~StatementImpl() = default;

  // index is 1-based, in the order of the `?` in the SQL text.
  virtual void BindText(int index, std::string_view v) = 0;
  virtual void BindInt(int index, int64_t v) = 0;
  virtual void BindBlob(int index, std::string_view v) = 0;

  // The first call runs the statement. True when a row is ready, false when it is done.
  virtual Result<bool> Step() = 0;
  // After a Step failed: the constraint it broke, if any; kNone otherwise.
  virtual Violation violation() const = 0;
  // Ready to bind and run again (bindings cleared).
  virtual void Reset() = 0;

  // Columns of the current row, 0-based. A NULL reads as "" / 0.
  virtual std::string Text(int col) const = 0;
  virtual int64_t Int(int col) const = 0;
  virtual std::string Blob(int col) const = 0;
  virtual bool IsNull(int col) const = 0;
};

class Connection {
 public:
  virtual ~Connection() = default;

  virtual Backend backend() const = 0;
  // Where the database is, for messages: a file path, or a URL without its password.
  virtual std::string Describe() const = 0;

  // Prepares one statement. Every error names what. A cached statement is prepared once per
  // connection and SQL text and stays owned by the connection: the caller hands it back with
  // Release (Statement in catalog_sql.h does this), which resets it.
  virtual Result<std::unique_ptr<StatementImpl>> Prepare(std::string_view sql,
                                                         const std::string& what) = 0;
  virtual Result<StatementImpl*> PrepareCached(const std::string& sql, const std::string& what) = 0;
  virtual void Release(StatementImpl* cached) = 0;

  // Runs sql, which may hold several statements, with no parameters and no rows wanted.
  virtual Status Exec(std::string_view sql, std::string_view what) = 0;
  // Rows inserted, updated or deleted by the last statement that finished.
  virtual int64_t Changes() const = 0;

  // Begins a transaction, or inside one a savepoint. write: take the database's write lock
  // now (see above); else a read transaction that sees one consistent state.
  virtual Status Begin(bool write) = 0;
  // True inside a transaction that can still commit. False outside one, and after the
  // backend ended it on its own (SQLite after some I/O errors, PostgreSQL after any failed
  // statement): committing then would lose the work silently, so the Catalog reports it.
  virtual bool InTransaction() const = 0;
  // Commits the transaction (or releases the innermost savepoint).
  virtual Status Commit() = 0;
  // Rolls the transaction (or the innermost savepoint) back; never fails loudly, since it
  // runs on error paths and in destructors.
  virtual void Rollback() noexcept = 0;

  // Inside a write transaction: its commit need not wait for the disk. For writes whose loss
  // when the database server crashes harms nothing, because the next one says the same or
  // more (a heartbeat, a running snapshot's progress). PostgreSQL: synchronous_commit off for
  // this transaction (a later durable commit still flushes it first, so nothing is reordered;
  // the write lock is then held for microseconds, not a disk flush). SQLite: no change.
  virtual Status RelaxCommitDurability() = 0;

  // Changes whenever another connection commits to the database (SQLite's data_version;
  // a counter on PostgreSQL). Own commits are counted by the Catalog.
  virtual Result<int64_t> DataVersion() = 0;
};

}  // namespace snapvol::catalog_internal
