#include "catalog/catalog.h"

#include <sqlite3.h>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <iterator>
#include <limits>
#include <map>
#include <set>
#include <tuple>
#include <type_traits>
#include <utility>

#include "core/clock.h"
#include "core/file_util.h"
#include "core/ids.h"

namespace snapvol {
namespace {

constexpr int kBusyTimeoutMs = 5000;
// Stamped into the file header so Open can tell a snapvol catalog from another SQLite file.
constexpr int64_t kApplicationId = 0x536e5631;  // "SnV1"; migration 1 writes it in decimal
constexpr char kRebuildHint[] = "rebuild it with `snapvol catalog rebuild`";
// Stays far below SQLITE_MAX_VARIABLE_NUMBER however SQLite was built.
constexpr size_t kMaxIdsPerQuery = 500;
constexpr size_t kMaxAliasChars = 63;

// Migration N takes a database at schema version N-1 to version N. Append new migrations;
// never edit a released one, because databases in the field already record its version.
struct Migration {
  int version;
  const char* sql;
};

constexpr Migration kMigrations[] = {
    {1, R"sql(
PRAGMA application_id = 1399739953;

CREATE TABLE accounts (
  account_id TEXT NOT NULL PRIMARY KEY,
  alias      TEXT NOT NULL UNIQUE,
  created_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE volumes (
  volume_id  TEXT NOT NULL PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(account_id),
  name       TEXT NOT NULL,
  path       TEXT NOT NULL,
  size_bytes INTEGER NOT NULL CHECK (size_bytes >= 0),
  block_size INTEGER NOT NULL CHECK (block_size > 0),
  created_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX volumes_by_account ON volumes(account_id, created_ms);

-- No foreign key to volumes: a snapshot outlives its volume, and a rebuild from the store
-- may find snapshots of volumes this catalog never registered.
CREATE TABLE snapshots (
  snapshot_id        TEXT NOT NULL PRIMARY KEY,
  volume_id          TEXT NOT NULL,
  account_id         TEXT NOT NULL REFERENCES accounts(account_id),
  state              TEXT NOT NULL CHECK (state IN ('pending', 'completed', 'error')),
  progress           TEXT NOT NULL,
  start_time_ms      INTEGER NOT NULL,
  completed_time_ms  INTEGER NOT NULL,
  volume_size_bytes  INTEGER NOT NULL CHECK (volume_size_bytes >= 0),
  block_size         INTEGER NOT NULL CHECK (block_size > 0),
  description        TEXT NOT NULL,
  state_message      TEXT NOT NULL,
  parent_snapshot_id TEXT NOT NULL,
  encrypted          INTEGER NOT NULL CHECK (encrypted IN (0, 1)),
  stored_bytes       INTEGER NOT NULL CHECK (stored_bytes >= 0),
  changed_blocks     INTEGER NOT NULL CHECK (changed_blocks >= 0),
  total_blocks       INTEGER NOT NULL CHECK (total_blocks >= 0),
  runner             TEXT NOT NULL
) STRICT;
CREATE INDEX snapshots_by_volume ON snapshots(volume_id, state, start_time_ms);
CREATE INDEX snapshots_by_account ON snapshots(account_id, start_time_ms);
CREATE INDEX snapshots_by_state ON snapshots(state);

-- Tags of volumes and snapshots; resource_id is a vol- or snap- id.
CREATE TABLE tags (
  resource_id TEXT NOT NULL,
  key         TEXT NOT NULL,
  value       TEXT NOT NULL,
  PRIMARY KEY (resource_id, key)
) STRICT, WITHOUT ROWID;
)sql"},
    {2, R"sql(
-- Administrators may do everything; members get the built-in member policy.
ALTER TABLE accounts ADD COLUMN is_admin INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1));

-- API access keys. The secret is sealed (encrypted) by the caller; the catalog never sees it
-- in clear.
CREATE TABLE access_keys (
  access_key_id TEXT NOT NULL PRIMARY KEY,
  account_id    TEXT NOT NULL REFERENCES accounts(account_id),
  user_name     TEXT NOT NULL,
  secret_sealed TEXT NOT NULL,
  created_ms    INTEGER NOT NULL
) STRICT;
CREATE INDEX access_keys_by_account ON access_keys(account_id);
)sql"},
    {3, R"sql(
-- Instances group an account's volumes; CreateSnapshots cuts all of them at one instant.
CREATE TABLE instances (
  instance_id TEXT NOT NULL PRIMARY KEY,
  account_id  TEXT NOT NULL REFERENCES accounts(account_id),
  name        TEXT NOT NULL,
  created_ms  INTEGER NOT NULL
) STRICT;
CREATE INDEX instances_by_account ON instances(account_id, created_ms);

-- A volume's attachment: empty instance_id when detached.
ALTER TABLE volumes ADD COLUMN instance_id TEXT NOT NULL DEFAULT '';
ALTER TABLE volumes ADD COLUMN device TEXT NOT NULL DEFAULT '';
ALTER TABLE volumes ADD COLUMN boot INTEGER NOT NULL DEFAULT 0 CHECK (boot IN (0, 1));
)sql"},
    {4, R"sql(
-- The snapshot a volume was restored from; empty for volumes registered by path.
ALTER TABLE volumes ADD COLUMN snapshot_id TEXT NOT NULL DEFAULT '';
)sql"},
    {5, R"sql(
-- Keyset paging of an account's snapshots in id order (DescribeSnapshots with MaxResults).
CREATE INDEX snapshots_by_account_and_id ON snapshots(account_id, snapshot_id);
)sql"},
    {6, R"sql(
-- EC2 volume states: a volume restored from a snapshot is 'creating' until its data is in.
ALTER TABLE volumes ADD COLUMN state TEXT NOT NULL DEFAULT 'available';
ALTER TABLE volumes ADD COLUMN state_message TEXT NOT NULL DEFAULT '';
)sql"},
    {7, R"sql(
-- Restores asked for by members and decided by administrators.
CREATE TABLE restore_requests (
  request_id      TEXT NOT NULL PRIMARY KEY,
  account_id      TEXT NOT NULL REFERENCES accounts(account_id),
  snapshot_id     TEXT NOT NULL,
  requested_by    TEXT NOT NULL,
  reason          TEXT NOT NULL,
  state           TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected')),
  decided_by      TEXT NOT NULL,
  decision_reason TEXT NOT NULL,
  volume_id       TEXT NOT NULL,
  created_ms      INTEGER NOT NULL,
  decided_ms      INTEGER NOT NULL
) STRICT;
CREATE INDEX restore_requests_by_account ON restore_requests(account_id, created_ms);
)sql"},
    {8, R"sql(
-- IAM: custom policy documents and which policies apply to which account. The built-ins
-- 'administrator' and 'member' are not stored; every existing account keeps what it had.
CREATE TABLE iam_policies (
  name       TEXT NOT NULL PRIMARY KEY,
  document   TEXT NOT NULL,
  created_ms INTEGER NOT NULL
) STRICT;
CREATE TABLE account_policies (
  account_id  TEXT NOT NULL REFERENCES accounts(account_id) ON DELETE CASCADE,
  policy_name TEXT NOT NULL,
  attached_ms INTEGER NOT NULL,
  PRIMARY KEY (account_id, policy_name)
) STRICT;
INSERT INTO account_policies (account_id, policy_name, attached_ms)
  SELECT account_id, CASE WHEN is_admin THEN 'administrator' ELSE 'member' END, created_ms
  FROM accounts;
-- Set once the account's default lifecycle policy was made (deleting it later is final).
ALTER TABLE accounts ADD COLUMN lifecycle_default_made INTEGER NOT NULL DEFAULT 0;
-- Lifecycle (DLM) policies: details is the policy's PolicyDetails JSON, kept as sent.
CREATE TABLE lifecycle_policies (
  policy_id   TEXT NOT NULL PRIMARY KEY,
  account_id  TEXT NOT NULL REFERENCES accounts(account_id) ON DELETE CASCADE,
  description TEXT NOT NULL,
  state       TEXT NOT NULL CHECK (state IN ('ENABLED', 'DISABLED')),
  role_arn    TEXT NOT NULL,
  details     TEXT NOT NULL,
  tags        TEXT NOT NULL,
  created_ms  INTEGER NOT NULL,
  modified_ms INTEGER NOT NULL
) STRICT;
-- One row per scheduled run of a policy schedule; the unique key makes a run happen once
-- even across restarts.
CREATE TABLE lifecycle_runs (
  policy_id     TEXT NOT NULL,
  schedule_name TEXT NOT NULL,
  scheduled_ms  INTEGER NOT NULL,
  started_ms    INTEGER NOT NULL,
  finished_ms   INTEGER NOT NULL,
  state         TEXT NOT NULL CHECK (state IN ('running', 'succeeded', 'partial', 'failed')),
  created       INTEGER NOT NULL,
  failed        INTEGER NOT NULL,
  deleted       INTEGER NOT NULL,
  missed        INTEGER NOT NULL,
  message       TEXT NOT NULL,
  PRIMARY KEY (policy_id, schedule_name, scheduled_ms)
) STRICT;
)sql"},
    {9, R"sql(
-- Managed volumes: snapvol owns the file (DIR/volumes/vol-….img) and serves it over NBD.
ALTER TABLE volumes ADD COLUMN managed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE volumes ADD COLUMN attach_ms INTEGER NOT NULL DEFAULT 0;
)sql"},
    {10, R"sql(
-- EC2 snapshot locks (LockSnapshot): a locked snapshot cannot be deleted until its lock ends.
CREATE TABLE snapshot_locks (
  snapshot_id         TEXT NOT NULL PRIMARY KEY,
  account_id          TEXT NOT NULL,
  mode                TEXT NOT NULL CHECK (mode IN ('governance', 'compliance')),
  created_ms          INTEGER NOT NULL,
  duration_start_ms   INTEGER NOT NULL,
  expires_ms          INTEGER NOT NULL,
  duration_days       INTEGER NOT NULL,
  cool_off_hours      INTEGER NOT NULL,
  cool_off_expires_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX snapshot_locks_by_account ON snapshot_locks(account_id, snapshot_id);
)sql"},
};
constexpr int kLatestSchemaVersion = kMigrations[std::size(kMigrations) - 1].version;
static_assert(kApplicationId == 1399739953, "keep migration 1's application_id in sync");

// --- errors ---

// file names the database when what does not, so that a damaged file can be found.
Error SqliteError(int rc, std::string_view what, std::string_view detail, std::string_view file) {
  std::string msg = std::string(what) + ": " + std::string(detail);
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Error(ErrorCode::kIoError, msg + " (another connection holds the catalog; retry)",
                   /*retryable=*/true);
    case SQLITE_FULL:
      return Error(ErrorCode::kNoSpace, msg);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      if (!file.empty() && msg.find(file) == std::string::npos)
        msg += " (" + std::string(file) + ")";
      return Error(ErrorCode::kCorruption,
                   "catalog database is damaged: " + msg + "; " + kRebuildHint);
    case SQLITE_CONSTRAINT:
      if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
        return Error(ErrorCode::kAlreadyExists, msg);
      return Error(ErrorCode::kInvalidArgument, msg);
    case SQLITE_TOOBIG:
      return Error(ErrorCode::kInvalidArgument, msg);
    case SQLITE_ERROR:  // SQL the schema does not accept: a bug here
    case SQLITE_MISUSE:
    case SQLITE_RANGE:
    case SQLITE_NOMEM:
      return Error(ErrorCode::kInternal, msg);
    default:  // SQLITE_CANTOPEN, SQLITE_IOERR, SQLITE_READONLY, SQLITE_PERM, ...
      return Error(ErrorCode::kIoError, msg);
  }
}

// sqlite3_errmsg describes the latest failure on db, which is the one that returned rc.
Error DbError(sqlite3* db, int rc, std::string_view what) {
  if (db == nullptr) return SqliteError(rc, what, sqlite3_errstr(rc), "");
  const char* file = sqlite3_db_filename(db, "main");
  return SqliteError(rc, what, sqlite3_errmsg(db), file != nullptr ? file : "");
}

// --- statements ---

// Finalizes a statement, or for one kept in a connection's cache, resets it for the next use.
struct StmtFinalizer {
  bool cached = false;
  void operator()(sqlite3_stmt* s) const {
    if (cached) {
      sqlite3_reset(s);
      sqlite3_clear_bindings(s);
    } else {
      sqlite3_finalize(s);
    }
  }
};

// A prepared statement. Bind() takes parameters in order; a bind failure is reported by the
// next Step()/Run(). Every error names `what`.
class Statement {
 public:
  static Result<Statement> Prepare(sqlite3* db, std::string_view sql, std::string what) {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &raw, nullptr);
    Statement st(db, raw, std::move(what));
    if (rc != SQLITE_OK) return std::unexpected(DbError(db, rc, st.what_));
    return st;
  }

  Statement& Bind(std::string_view v) {
    if (v.data() == nullptr) v = "";  // a null pointer would bind SQL NULL
    Check(sqlite3_bind_text64(stmt_.get(), next_param_++, v.data(), v.size(), SQLITE_TRANSIENT,
                              SQLITE_UTF8));
    return *this;
  }
  template <std::integral T>
  Statement& Bind(T v) {
    if constexpr (std::is_unsigned_v<T> && sizeof(T) >= sizeof(int64_t)) {
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) && !error_) {
        error_ = Error(ErrorCode::kInvalidArgument,
                       what_ + ": value " + std::to_string(v) + " is larger than 2^63-1");
      }
    }
    Check(sqlite3_bind_int64(stmt_.get(), next_param_++, static_cast<sqlite3_int64>(v)));
    return *this;
  }

  // Returns true when a row is ready, false when the statement has finished.
  Result<bool> Step() {
    if (error_) return std::unexpected(*error_);
    rc_ = sqlite3_step(stmt_.get());
    if (rc_ == SQLITE_ROW) return true;
    if (rc_ == SQLITE_DONE) return false;
    return std::unexpected(DbError(db_, rc_, what_));
  }
  // Steps to the end, ignoring any rows.
  Status Run() {
    for (;;) {
      ASSIGN_OR_RETURN(bool row, Step());
      if (!row) return OkStatus();
    }
  }
  // Makes the statement ready to bind and run again.
  void Reset() {
    sqlite3_reset(stmt_.get());
    sqlite3_clear_bindings(stmt_.get());
    next_param_ = 1;
    error_.reset();
  }

  // The extended result code of the last Step().
  int rc() const { return rc_; }

  std::string Text(int col) const {
    const unsigned char* p = sqlite3_column_text(stmt_.get(), col);
    if (p == nullptr) return {};
    return std::string(reinterpret_cast<const char*>(p),
                       static_cast<size_t>(sqlite3_column_bytes(stmt_.get(), col)));
  }
  int64_t Int(int col) const { return sqlite3_column_int64(stmt_.get(), col); }
  uint64_t U64(int col) const { return static_cast<uint64_t>(std::max<int64_t>(0, Int(col))); }
  bool IsNull(int col) const { return sqlite3_column_type(stmt_.get(), col) == SQLITE_NULL; }

 private:
  Statement(sqlite3* db, sqlite3_stmt* stmt, std::string what, bool cached = false)
      : db_(db), stmt_(stmt, StmtFinalizer{cached}), what_(std::move(what)) {}

 public:
  // A statement prepared once per connection and kept in cache (finalized by its owner); the
  // returned Statement resets it when done.
  static Result<Statement> PrepareCached(sqlite3* db, std::map<std::string, sqlite3_stmt*>& cache,
                                         const std::string& sql, std::string what) {
    auto it = cache.find(sql);
    if (it == cache.end()) {
      sqlite3_stmt* raw = nullptr;
      int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &raw,
                                  nullptr);
      if (rc != SQLITE_OK) {
        sqlite3_finalize(raw);
        return std::unexpected(DbError(db, rc, what));
      }
      it = cache.emplace(sql, raw).first;
    }
    return Statement(db, it->second, std::move(what), /*cached=*/true);
  }

 private:

  void Check(int rc) {
    if (rc != SQLITE_OK && !error_) error_ = DbError(db_, rc, what_);
  }

  sqlite3* db_;
  std::unique_ptr<sqlite3_stmt, StmtFinalizer> stmt_;
  std::string what_;
  int next_param_ = 1;
  int rc_ = SQLITE_OK;
  std::optional<Error> error_;
};

// Runs sql (which may hold several statements) with no parameters.
Status Exec(sqlite3* db, const char* sql, std::string_view what) {
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return std::unexpected(DbError(db, rc, what));
  return OkStatus();
}

// Runs a query that yields one integer (e.g. a PRAGMA).
Result<int64_t> QueryInt(sqlite3* db, std::string_view sql, std::string what) {
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db, sql, what));
  ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return Internal(what + ": query returned no row");
  return st.Int(0);
}

int64_t Changes(sqlite3* db) { return sqlite3_changes64(db); }

// --- validation ---

// Unicode code points in UTF-8 text: every byte that does not continue a sequence.
size_t Utf8Chars(std::string_view s) {
  return static_cast<size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

bool HasReservedPrefix(std::string_view key) {
  constexpr std::string_view kPrefix = "aws:";
  if (key.size() < kPrefix.size()) return false;
  for (size_t i = 0; i < kPrefix.size(); ++i) {
    char c = key[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != kPrefix[i]) return false;
  }
  return true;
}

Status ValidateTags(const std::vector<Tag>& tags, const std::string& resource_id) {
  return ValidateTagList(tags, "tags of " + resource_id);
}

}  // namespace

Status ValidateTagList(const std::vector<Tag>& tags, const std::string& what) {
  if (tags.size() > kMaxTagsPerResource) {
    return InvalidArgument(what + ": " + std::to_string(tags.size()) +
                           " tags given; the limit is " + std::to_string(kMaxTagsPerResource));
  }
  std::set<std::string_view> keys;
  for (const Tag& t : tags) {
    size_t key_chars = Utf8Chars(t.key);
    if (key_chars == 0 || key_chars > kMaxTagKeyChars) {
      return InvalidArgument(what + ": tag key '" + t.key + "' must be 1 to " +
                             std::to_string(kMaxTagKeyChars) + " characters");
    }
    if (Utf8Chars(t.value) > kMaxTagValueChars) {
      return InvalidArgument(what + ": value of tag '" + t.key +
                             "' is longer than " + std::to_string(kMaxTagValueChars) +
                             " characters");
    }
    if (HasReservedPrefix(t.key)) {
      return InvalidArgument(what + ": tag key '" + t.key +
                             "' uses the reserved prefix 'aws:'");
    }
    if (!keys.insert(t.key).second) {
      return InvalidArgument(what + ": tag key '" + t.key +
                             "' is given more than once");
    }
  }
  return OkStatus();
}

namespace {

// "0%".."100%", no sign, no leading zeros.
Status ValidateProgress(std::string_view progress, const std::string& snapshot_id) {
  std::string_view digits = progress;
  bool ok = !digits.empty() && digits.back() == '%';
  if (ok) digits.remove_suffix(1);
  ok = ok && !digits.empty() && digits.size() <= 3 &&
       std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
       (digits.size() == 1 || digits[0] != '0');
  if (ok) {
    int value = 0;
    for (char c : digits) value = value * 10 + (c - '0');
    ok = value <= 100;
  }
  if (!ok) {
    return InvalidArgument("snapshot " + snapshot_id + ": progress '" + std::string(progress) +
                           "' is not a percentage from 0% to 100%");
  }
  return OkStatus();
}

Status ValidateAlias(const std::string& alias) {
  bool ok = !alias.empty() && alias.size() <= kMaxAliasChars &&
            std::all_of(alias.begin(), alias.end(), [](char c) {
              return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '-' || c == '_' || c == '.';
            });
  if (!ok) {
    return InvalidArgument("account alias '" + alias + "' must be 1 to " +
                           std::to_string(kMaxAliasChars) + " of A-Z a-z 0-9 . _ -");
  }
  return OkStatus();
}

Status ValidateVolume(const VolumeRecord& v) {
  if (!IsVolumeId(v.volume_id)) return InvalidArgument("'" + v.volume_id + "' is not a volume id");
  if (!IsAccountId(v.account_id)) {
    return InvalidArgument("volume " + v.volume_id + ": '" + v.account_id +
                           "' is not an account id");
  }
  if (v.path.empty()) return InvalidArgument("volume " + v.volume_id + ": path is empty");
  if (v.block_size == 0) return InvalidArgument("volume " + v.volume_id + ": block size is 0");
  return ValidateTags(v.tags, v.volume_id);
}

Status ValidateSnapshot(const SnapshotRecord& s) {
  if (!IsSnapshotId(s.snapshot_id)) {
    return InvalidArgument("'" + s.snapshot_id + "' is not a snapshot id");
  }
  if (!IsVolumeId(s.volume_id)) {
    return InvalidArgument("snapshot " + s.snapshot_id + ": '" + s.volume_id +
                           "' is not a volume id");
  }
  if (!IsAccountId(s.account_id)) {
    return InvalidArgument("snapshot " + s.snapshot_id + ": '" + s.account_id +
                           "' is not an account id");
  }
  if (!s.parent_snapshot_id.empty() && !IsSnapshotId(s.parent_snapshot_id)) {
    return InvalidArgument("snapshot " + s.snapshot_id + ": parent '" + s.parent_snapshot_id +
                           "' is not a snapshot id");
  }
  if (s.block_size == 0) return InvalidArgument("snapshot " + s.snapshot_id + ": block size is 0");
  RETURN_IF_ERROR(ValidateProgress(s.progress, s.snapshot_id));
  return ValidateTags(s.tags, s.snapshot_id);
}

// --- row decoding ---

// Rows come one per (snapshot, tag), ordered so that a snapshot's rows are adjacent and its
// tags sorted by key; a snapshot without tags has one row with NULL key.
constexpr char kSnapshotSelect[] =
    "SELECT s.snapshot_id, s.volume_id, s.account_id, s.state, s.progress, s.start_time_ms,"
    " s.completed_time_ms, s.volume_size_bytes, s.block_size, s.description, s.state_message,"
    " s.parent_snapshot_id, s.encrypted, s.stored_bytes, s.changed_blocks, s.total_blocks,"
    " s.runner, t.key, t.value"
    " FROM snapshots s LEFT JOIN tags t ON t.resource_id = s.snapshot_id";
constexpr char kSnapshotOrder[] = " ORDER BY s.start_time_ms, s.snapshot_id, t.key";

// Every row of st, each made into a T by row(st).
template <typename T, typename RowFn>
Result<std::vector<T>> ReadRows(Statement& st, RowFn row) {
  std::vector<T> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool more, st.Step());
    if (!more) return out;
    out.push_back(row(st));
  }
}

Result<std::vector<SnapshotRecord>> ReadSnapshots(Statement& st) {
  std::vector<SnapshotRecord> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    std::string id = st.Text(0);
    if (out.empty() || out.back().snapshot_id != id) {
      SnapshotRecord s;
      s.snapshot_id = std::move(id);
      s.volume_id = st.Text(1);
      s.account_id = st.Text(2);
      std::string state = st.Text(3);
      auto parsed = ParseSnapshotState(state);
      if (!parsed) {
        return Corruption("catalog database is damaged: snapshot " + s.snapshot_id +
                          " has unknown state '" + state + "'; " + kRebuildHint);
      }
      s.state = *parsed;
      s.progress = st.Text(4);
      s.start_time_ms = st.Int(5);
      s.completed_time_ms = st.Int(6);
      s.volume_size_bytes = st.U64(7);
      s.block_size = static_cast<uint32_t>(st.Int(8));
      s.description = st.Text(9);
      s.state_message = st.Text(10);
      s.parent_snapshot_id = st.Text(11);
      s.encrypted = st.Int(12) != 0;
      s.stored_bytes = st.U64(13);
      s.changed_blocks = st.U64(14);
      s.total_blocks = st.U64(15);
      s.runner = st.Text(16);
      out.push_back(std::move(s));
    }
    if (!st.IsNull(17)) out.back().tags.push_back(Tag{st.Text(17), st.Text(18)});
  }
  return out;
}

constexpr char kVolumeSelect[] =
    "SELECT v.volume_id, v.account_id, v.name, v.path, v.size_bytes, v.block_size,"
    " v.created_ms, t.key, t.value, v.instance_id, v.device, v.boot, v.snapshot_id, v.state,"
    " v.state_message, v.managed, v.attach_ms"
    " FROM volumes v LEFT JOIN tags t ON t.resource_id = v.volume_id";
constexpr char kVolumeOrder[] = " ORDER BY v.created_ms, v.volume_id, t.key";

Result<std::vector<VolumeRecord>> ReadVolumes(Statement& st) {
  std::vector<VolumeRecord> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    std::string id = st.Text(0);
    if (out.empty() || out.back().volume_id != id) {
      VolumeRecord v;
      v.volume_id = std::move(id);
      v.account_id = st.Text(1);
      v.name = st.Text(2);
      v.path = st.Text(3);
      v.size_bytes = st.U64(4);
      v.block_size = static_cast<uint32_t>(st.Int(5));
      v.created_ms = st.Int(6);
      v.instance_id = st.Text(9);
      v.device = st.Text(10);
      v.boot = st.Int(11) != 0;
      v.snapshot_id = st.Text(12);
      v.state = st.Text(13);
      v.state_message = st.Text(14);
      v.managed = st.Int(15) != 0;
      v.attach_ms = st.Int(16);
      out.push_back(std::move(v));
    }
    if (!st.IsNull(7)) out.back().tags.push_back(Tag{st.Text(7), st.Text(8)});
  }
  return out;
}

Result<std::vector<AccountRecord>> ReadAccounts(Statement& st) {
  return ReadRows<AccountRecord>(st, [](Statement& r) { return AccountRecord{r.Text(0), r.Text(1), r.Int(2), r.Int(3) != 0}; });
}

}  // namespace

bool ReadsFromItsSnapshot(const VolumeRecord& v) {
  return !v.snapshot_id.empty() && (v.state == "creating" || PathExists(LoadMapPath(v.path)));
}

const char* SnapshotStateName(SnapshotState state) {
  switch (state) {
    case SnapshotState::kPending:
      return "pending";
    case SnapshotState::kCompleted:
      return "completed";
    case SnapshotState::kError:
      return "error";
  }
  return "unknown";
}

Result<SnapshotState> ParseSnapshotState(std::string_view name) {
  for (SnapshotState s :
       {SnapshotState::kPending, SnapshotState::kCompleted, SnapshotState::kError})
    if (name == SnapshotStateName(s)) return s;
  return InvalidArgument("unknown snapshot state '" + std::string(name) +
                         "' (expected pending, completed or error)");
}

void Catalog::DbCloser::operator()(sqlite3* db) const {
  // Finalizes nothing itself: every Statement is finalized by its owner before this runs.
  sqlite3_close_v2(db);
}

Catalog::Catalog(DbHandle db, Clock* clock)
    : db_(std::move(db)), clock_(clock != nullptr ? clock : Clock::Real()) {}
Catalog::~Catalog() = default;

int Catalog::LatestSchemaVersion() { return kLatestSchemaVersion; }

int Catalog::SchemaVersion() const {
  std::lock_guard lock(mu_);
  return schema_version_;
}

Result<int64_t> Catalog::DataVersion() {
  auto read = [&](sqlite3* db, std::map<std::string, sqlite3_stmt*>* cache) -> Result<int64_t> {
    ASSIGN_OR_RETURN(Statement st, cache ? Statement::PrepareCached(db, *cache, "PRAGMA data_version", "read the data version")
                                         : Statement::Prepare(db, "PRAGMA data_version", "read the data version"));
    ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return Internal("PRAGMA data_version returned nothing");
    // data_version does not count the asking connection's own commits; on the main
    // connection the identity changes made through it are counted by write_generation_.
    return st.Int(0) + write_generation_.load();
  };
  if (version_reader_) {
    std::lock_guard lock(version_reader_->mu);
    return read(version_reader_->db.get(), &version_reader_->statements);
  }
  std::lock_guard lock(mu_);
  return read(db_.get(), nullptr);
}

Catalog::Reader::~Reader() {
  for (auto& [sql, stmt] : statements) sqlite3_finalize(stmt);
}

Result<std::unique_ptr<Catalog>> Catalog::Open(const std::string& path, Clock* clock) {
  const std::string what = "open catalog " + path;
  sqlite3* raw = nullptr;
  // NOMUTEX: mu_ serialises every use of the connection.
  int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  DbHandle db(raw);  // sqlite3_open_v2 allocates a handle even when it fails
  if (rc != SQLITE_OK) return std::unexpected(DbError(raw, rc, what));
  sqlite3_extended_result_codes(raw, 1);
  rc = sqlite3_busy_timeout(raw, kBusyTimeoutMs);
  if (rc != SQLITE_OK) return std::unexpected(DbError(raw, rc, what + ": set busy timeout"));

  std::unique_ptr<Catalog> catalog(new Catalog(std::move(db), clock));
  {
    std::lock_guard lock(catalog->mu_);
    RETURN_IF_ERROR(catalog->Migrate(path));
    RETURN_IF_ERROR(catalog->EnsureDefaultAccount(what));
  }
  // Read-only connections for the hottest reads (a page of snapshots): in WAL mode they read
  // the last committed state while the main connection writes, and in parallel with each
  // other. Without them (e.g. a read-only file system) the main connection serves all.
  if (path != ":memory:" && !path.empty()) {
    for (int i = 0; i <= kReaderConnections; ++i) {
      sqlite3* r = nullptr;
      int rrc = sqlite3_open_v2(path.c_str(), &r, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
      DbHandle handle(r);
      if (rrc != SQLITE_OK) break;
      sqlite3_extended_result_codes(r, 1);
      sqlite3_busy_timeout(r, kBusyTimeoutMs);
      auto reader = std::make_unique<Reader>();
      reader->db = std::move(handle);
      if (i == kReaderConnections) {
        catalog->version_reader_ = std::move(reader);
      } else {
        catalog->readers_.push_back(std::move(reader));
      }
    }
  }
  return catalog;
}

Status Catalog::Migrate(const std::string& path) {
  sqlite3* db = db_.get();
  const std::string what = "open catalog " + path;

  // Identify the file before changing anything in it. This is also the first read of the
  // file, so a damaged or non-SQLite file fails here with SQLITE_NOTADB/CORRUPT.
  ASSIGN_OR_RETURN(int64_t app_id, QueryInt(db, "PRAGMA application_id", what));
  ASSIGN_OR_RETURN(int64_t version, QueryInt(db, "PRAGMA user_version", what));
  if (app_id != kApplicationId) {
    ASSIGN_OR_RETURN(int64_t objects, QueryInt(db, "SELECT count(*) FROM sqlite_schema", what));
    if (app_id != 0 || version != 0 || objects != 0) {
      return InvalidArgument(what + ": the file is a SQLite database but not a snapvol catalog");
    }
  }
  if (version > kLatestSchemaVersion) {
    return MakeError(ErrorCode::kUnsupported,
                     what + ": catalog schema version " + std::to_string(version) +
                         " is newer than this snapvol supports (up to " +
                         std::to_string(kLatestSchemaVersion) + "); upgrade snapvol");
  }

  // journal_mode cannot change inside a transaction, and WAL persists in the file.
  {
    ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db, "PRAGMA journal_mode = WAL", what));
    ASSIGN_OR_RETURN(bool row, st.Step());
    std::string mode = row ? st.Text(0) : "";
    if (mode != "wal" && !(mode == "memory" && path == ":memory:")) {
      return MakeError(ErrorCode::kIoError,
                       what + ": could not switch to WAL journal mode (mode is '" + mode + "')");
    }
  }
  RETURN_IF_ERROR(Exec(db, "PRAGMA foreign_keys = ON", what));
  RETURN_IF_ERROR(Exec(db, "PRAGMA synchronous = FULL", what));

  if (version < kLatestSchemaVersion) {
    auto migrate = [&]() -> Status {
      // Another process may have migrated while this one waited for the write lock.
      ASSIGN_OR_RETURN(version, QueryInt(db, "PRAGMA user_version", what));
      if (version > kLatestSchemaVersion) {
        return MakeError(ErrorCode::kUnsupported,
                         what + ": catalog schema version " + std::to_string(version) +
                             " is newer than this snapvol supports (up to " +
                             std::to_string(kLatestSchemaVersion) + "); upgrade snapvol");
      }
      for (const Migration& m : kMigrations) {
        if (m.version <= version) continue;
        const std::string step = what + ": migrate schema to version " + std::to_string(m.version);
        RETURN_IF_ERROR(Exec(db, m.sql, step));
        const std::string set_version = "PRAGMA user_version = " + std::to_string(m.version);
        RETURN_IF_ERROR(Exec(db, set_version.c_str(), step));
        version = m.version;
      }
      return OkStatus();
    };
    RETURN_IF_ERROR(InTransaction(migrate));
  }
  schema_version_ = static_cast<int>(version);
  return OkStatus();
}

Status Catalog::EnsureDefaultAccount(const std::string& what) {
  sqlite3* db = db_.get();
  // Read first so that opening an existing catalog does not need the write lock.
  ASSIGN_OR_RETURN(Statement find,
                   Statement::Prepare(db, "SELECT 1 FROM accounts WHERE account_id = ?",
                                      what + ": read default account"));
  find.Bind(kDefaultAccountId);
  ASSIGN_OR_RETURN(bool exists, find.Step());
  if (exists) return OkStatus();
  ASSIGN_OR_RETURN(Statement insert,
                   Statement::Prepare(db,
                                      "INSERT INTO accounts (account_id, alias, created_ms)"
                                      " VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                                      what + ": create default account"));
  insert.Bind(kDefaultAccountId).Bind(kDefaultAccountAlias).Bind(clock_->NowMillis());
  RETURN_IF_ERROR(insert.Run());
  return AttachDefaultPolicy(kDefaultAccountId, what);
}

// Every account starts with the built-in 'member' policy (SetAccountAdmin swaps it).
Status Catalog::AttachDefaultPolicy(const std::string& account_id, const std::string& what) {
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(db_.get(),
                                      "INSERT INTO account_policies (account_id, policy_name, attached_ms)"
                                      " VALUES (?, 'member', ?) ON CONFLICT DO NOTHING",
                                      what + ": attach the member policy"));
  st.Bind(account_id).Bind(clock_->NowMillis());
  return st.Run();
}

// --- transactions ---

Status Catalog::Transaction(const std::function<Status()>& fn) {
  std::lock_guard lock(mu_);
  return InTransaction(fn);
}

Status Catalog::InTransaction(const std::function<Status()>& fn, bool write) {
  sqlite3* db = db_.get();
  // A writer takes the write lock up front (IMMEDIATE): in WAL mode a deferred transaction
  // that later upgrades to a writer fails with SQLITE_BUSY instead of waiting.
  const bool outer = sqlite3_get_autocommit(db) != 0;
  const char* begin = !outer ? "SAVEPOINT nested" : write ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED";
  RETURN_IF_ERROR(Exec(db, begin, "begin transaction"));

  // Rolls back unless committed, also if fn throws. SQLite may already have rolled the
  // transaction back itself after some errors (disk full, I/O); then there is nothing to do.
  struct Guard {
    sqlite3* db;
    bool outer;
    bool done = false;
    ~Guard() {
      if (done || sqlite3_get_autocommit(db) != 0) return;
      sqlite3_exec(db, outer ? "ROLLBACK" : "ROLLBACK TO nested; RELEASE nested", nullptr, nullptr,
                   nullptr);
    }
  } guard{db, outer};

  RETURN_IF_ERROR(fn());
  if (outer && sqlite3_get_autocommit(db) != 0) {
    // fn's work was rolled back by SQLite (it swallowed an error that aborted the
    // transaction); committing now would silently lose it.
    return MakeError(ErrorCode::kIoError, "commit transaction: it was rolled back by an error",
                     /*retryable=*/true);
  }
  RETURN_IF_ERROR(Exec(db, outer ? "COMMIT" : "RELEASE nested", "commit transaction"));
  guard.done = true;
  return OkStatus();
}

// --- accounts ---

Result<AccountRecord> Catalog::CreateAccount(const std::string& alias) {
  RETURN_IF_ERROR(ValidateAlias(alias));
  std::lock_guard lock(mu_);
  ++write_generation_;  // identities changed: cached readers must look again
  AccountRecord rec;
  auto create = [&]() -> Status {
    sqlite3* db = db_.get();
    const std::string what = "create account " + alias;
    ASSIGN_OR_RETURN(Statement find,
                     Statement::Prepare(db, "SELECT 1 FROM accounts WHERE alias = ?", what));
    find.Bind(alias);
    ASSIGN_OR_RETURN(bool taken, find.Step());
    if (taken) {
      return MakeError(ErrorCode::kAlreadyExists, "account alias '" + alias + "' is taken");
    }
    ASSIGN_OR_RETURN(Statement insert,
                     Statement::Prepare(db,
                                        "INSERT INTO accounts (account_id, alias, created_ms)"
                                        " VALUES (?, ?, ?) ON CONFLICT (account_id) DO NOTHING",
                                        what));
    // 10^11 possible ids: a collision is rare, several in a row mean a broken generator.
    for (int attempt = 0; attempt < 8; ++attempt) {
      rec = AccountRecord{NewAccountId(), alias, clock_->NowMillis(), false};
      insert.Reset();
      insert.Bind(rec.account_id).Bind(rec.alias).Bind(rec.created_ms);
      RETURN_IF_ERROR(insert.Run());
      if (Changes(db) == 1) return AttachDefaultPolicy(rec.account_id, what);
    }
    return Internal(what + ": could not find an unused account id");
  };
  RETURN_IF_ERROR(InTransaction(create));
  return rec;
}

Result<AccountRecord> Catalog::GetAccount(const std::string& id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(),
                                                    "SELECT account_id, alias, created_ms, is_admin"
                                                    " FROM accounts WHERE account_id = ?",
                                                    "get account " + id));
  st.Bind(id);
  ASSIGN_OR_RETURN(std::vector<AccountRecord> rows, ReadAccounts(st));
  if (rows.empty()) return NotFound("account " + id + " not found");
  return std::move(rows.front());
}

Result<std::vector<AccountRecord>> Catalog::ListAccounts() {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(),
                                                    "SELECT account_id, alias, created_ms, is_admin"
                                                    " FROM accounts"
                                                    " ORDER BY created_ms, account_id",
                                                    "list accounts"));
  return ReadAccounts(st);
}

Status Catalog::SetAccountAdmin(const std::string& id, bool admin) {
  std::lock_guard lock(mu_);
  ++write_generation_;  // identities changed: cached readers must look again
  return InTransaction([&]() -> Status {
    const std::string what = "set admin flag of account " + id;
    ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(),
                                                      "UPDATE accounts SET is_admin = ?"
                                                      " WHERE account_id = ?",
                                                      what));
    st.Bind(admin ? 1 : 0).Bind(id);
    RETURN_IF_ERROR(st.Run());
    if (Changes(db_.get()) == 0) return NotFound("account " + id + " not found");
    // The built-in policy follows the flag: administrator replaces member and back.
    ASSIGN_OR_RETURN(Statement drop, Statement::Prepare(db_.get(),
                                                        "DELETE FROM account_policies WHERE account_id = ?"
                                                        " AND policy_name = ?",
                                                        what));
    drop.Bind(id).Bind(admin ? "member" : "administrator");
    RETURN_IF_ERROR(drop.Run());
    ASSIGN_OR_RETURN(Statement add, Statement::Prepare(db_.get(),
                                                       "INSERT INTO account_policies (account_id, policy_name,"
                                                       " attached_ms) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                                                       what));
    add.Bind(id).Bind(admin ? "administrator" : "member").Bind(clock_->NowMillis());
    return add.Run();
  });
}

// --- IAM policies ---

Status Catalog::PutIamPolicy(const IamPolicyRecord& p) {
  std::lock_guard lock(mu_);
  ++write_generation_;  // identities changed: cached readers must look again
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(),
                                                    "INSERT INTO iam_policies (name, document, created_ms)"
                                                    " VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE"
                                                    " SET document = excluded.document",
                                                    "store IAM policy " + p.name));
  st.Bind(p.name).Bind(p.document).Bind(p.created_ms);
  return st.Run();
}

namespace {
Result<std::vector<IamPolicyRecord>> ReadIamPolicies(Statement& st) {
  return ReadRows<IamPolicyRecord>(st, [](Statement& r) { return IamPolicyRecord{r.Text(0), r.Text(1), r.Int(2)}; });
}
}  // namespace

Result<IamPolicyRecord> Catalog::GetIamPolicy(const std::string& name) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(),
                                                    "SELECT name, document, created_ms FROM iam_policies"
                                                    " WHERE name = ?",
                                                    "read IAM policy " + name));
  st.Bind(name);
  ASSIGN_OR_RETURN(auto rows, ReadIamPolicies(st));
  if (rows.empty()) return NotFound("policy " + name + " not found");
  return rows.front();
}

Result<std::vector<IamPolicyRecord>> Catalog::ListIamPolicies() {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(),
                                                    "SELECT name, document, created_ms FROM iam_policies"
                                                    " ORDER BY name",
                                                    "list IAM policies"));
  return ReadIamPolicies(st);
}

Status Catalog::DeleteIamPolicy(const std::string& name) {
  std::lock_guard lock(mu_);
  ++write_generation_;  // identities changed: cached readers must look again
  return InTransaction([&]() -> Status {
    const std::string what = "delete IAM policy " + name;
    ASSIGN_OR_RETURN(Statement used, Statement::Prepare(db_.get(),
                                                        "SELECT account_id FROM account_policies"
                                                        " WHERE policy_name = ? LIMIT 1",
                                                        what));
    used.Bind(name);
    ASSIGN_OR_RETURN(bool attached, used.Step());
    if (attached) return Conflict("policy " + name + " is attached to account " + used.Text(0) + "; detach it first");
    ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(), "DELETE FROM iam_policies WHERE name = ?", what));
    st.Bind(name);
    RETURN_IF_ERROR(st.Run());
    if (Changes(db_.get()) == 0) return NotFound("policy " + name + " not found");
    return OkStatus();
  });
}

Status Catalog::AttachPolicy(const std::string& account_id, const std::string& policy_name) {
  std::lock_guard lock(mu_);
  ++write_generation_;  // identities changed: cached readers must look again
  return InTransaction([&]() -> Status {
    const std::string what = "attach policy " + policy_name + " to account " + account_id;
    ASSIGN_OR_RETURN(Statement acct, Statement::Prepare(db_.get(),
                                                        "SELECT 1 FROM accounts WHERE account_id = ?", what));
    acct.Bind(account_id);
    ASSIGN_OR_RETURN(bool known, acct.Step());
    if (!known) return NotFound("account " + account_id + " not found");
    ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(),
                                                      "INSERT INTO account_policies (account_id, policy_name,"
                                                      " attached_ms) VALUES (?, ?, ?)",
                                                      what));
    st.Bind(account_id).Bind(policy_name).Bind(clock_->NowMillis());
    return st.Run();
  });
}

Status Catalog::DetachPolicy(const std::string& account_id, const std::string& policy_name) {
  std::lock_guard lock(mu_);
  ++write_generation_;  // identities changed: cached readers must look again
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(),
                                                    "DELETE FROM account_policies WHERE account_id = ?"
                                                    " AND policy_name = ?",
                                                    "detach policy " + policy_name));
  st.Bind(account_id).Bind(policy_name);
  RETURN_IF_ERROR(st.Run());
  if (Changes(db_.get()) == 0)
    return NotFound("policy " + policy_name + " is not attached to account " + account_id);
  return OkStatus();
}

Result<std::vector<PolicyAttachment>> Catalog::ListPolicyAttachments(std::optional<std::string> account_id) {
  std::lock_guard lock(mu_);
  std::string sql = "SELECT account_id, policy_name, attached_ms FROM account_policies";
  if (account_id) sql += " WHERE account_id = ?";
  sql += " ORDER BY account_id, policy_name";
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(), sql, "list policy attachments"));
  if (account_id) st.Bind(*account_id);
  return ReadRows<PolicyAttachment>(st, [](Statement& r) { return PolicyAttachment{r.Text(0), r.Text(1), r.Int(2)}; });
}

// --- access keys ---

namespace {
Result<std::vector<AccessKeyRecord>> ReadKeys(Statement& st) {
  return ReadRows<AccessKeyRecord>(st, [](Statement& r) { return AccessKeyRecord{r.Text(0), r.Text(1), r.Text(2), r.Text(3), r.Int(4)}; });
}
}  // namespace

Status Catalog::InsertAccessKey(const AccessKeyRecord& k) {
  if (k.access_key_id.size() < 16 || k.access_key_id.size() > 128)
    return InvalidArgument("access key id must be 16 to 128 characters");
  if (k.secret_sealed.empty()) return InvalidArgument("access key has no sealed secret");
  std::lock_guard lock(mu_);
  ++write_generation_;  // identities changed: cached readers must look again
  return InTransaction([&]() -> Status {
    const std::string what = "insert access key " + k.access_key_id;
    ASSIGN_OR_RETURN(Statement acct, Statement::Prepare(db_.get(),
                                                        "SELECT 1 FROM accounts WHERE account_id = ?", what));
    acct.Bind(k.account_id);
    ASSIGN_OR_RETURN(bool known, acct.Step());
    if (!known) return NotFound("account " + k.account_id + " not found");
    ASSIGN_OR_RETURN(Statement st,
                     Statement::Prepare(db_.get(),
                                        "INSERT INTO access_keys (access_key_id, account_id,"
                                        " user_name, secret_sealed, created_ms)"
                                        " VALUES (?, ?, ?, ?, ?)",
                                        what));
    st.Bind(k.access_key_id).Bind(k.account_id).Bind(k.user_name).Bind(k.secret_sealed).Bind(k.created_ms);
    return st.Run();
  });
}

Result<AccessKeyRecord> Catalog::GetAccessKey(const std::string& id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(),
                                                    "SELECT access_key_id, account_id, user_name,"
                                                    " secret_sealed, created_ms FROM access_keys"
                                                    " WHERE access_key_id = ?",
                                                    "get access key"));
  st.Bind(id);
  ASSIGN_OR_RETURN(std::vector<AccessKeyRecord> rows, ReadKeys(st));
  if (rows.empty()) return NotFound("access key " + id + " not found");
  return std::move(rows.front());
}

Result<std::vector<AccessKeyRecord>> Catalog::ListAccessKeys(std::optional<std::string> account_id) {
  std::lock_guard lock(mu_);
  std::string sql =
      "SELECT access_key_id, account_id, user_name, secret_sealed, created_ms FROM access_keys";
  if (account_id) sql += " WHERE account_id = ?";
  sql += " ORDER BY created_ms, access_key_id";
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(), sql, "list access keys"));
  if (account_id) st.Bind(*account_id);
  return ReadKeys(st);
}

Status Catalog::DeleteAccessKey(const std::string& id) {
  std::lock_guard lock(mu_);
  ++write_generation_;  // identities changed: cached readers must look again
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(),
                                                    "DELETE FROM access_keys WHERE access_key_id = ?",
                                                    "delete access key " + id));
  st.Bind(id);
  RETURN_IF_ERROR(st.Run());
  if (Changes(db_.get()) == 0) return NotFound("access key " + id + " not found");
  return OkStatus();
}

// --- restore requests ---

namespace {
constexpr char kRestoreRequestSelect[] =
    "SELECT request_id, account_id, snapshot_id, requested_by, reason, state, decided_by,"
    " decision_reason, volume_id, created_ms, decided_ms FROM restore_requests";

Result<std::vector<RestoreRequestRecord>> ReadRestoreRequests(Statement& st) {
  return ReadRows<RestoreRequestRecord>(st, [](Statement& r) { return RestoreRequestRecord{r.Text(0), r.Text(1), r.Text(2), r.Text(3), r.Text(4), r.Text(5),
                                                     r.Text(6), r.Text(7), r.Text(8), r.Int(9), r.Int(10)}; });
}
}  // namespace

Status Catalog::InsertRestoreRequest(const RestoreRequestRecord& r) {
  if (r.reason.size() > 1024) return InvalidArgument("a restore request's reason is at most 1024 bytes");
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(db_.get(),
                                      "INSERT INTO restore_requests (request_id, account_id,"
                                      " snapshot_id, requested_by, reason, state, decided_by,"
                                      " decision_reason, volume_id, created_ms, decided_ms)"
                                      " VALUES (?, ?, ?, ?, ?, 'pending', '', '', '', ?, 0)",
                                      "insert restore request " + r.request_id));
  st.Bind(r.request_id).Bind(r.account_id).Bind(r.snapshot_id).Bind(r.requested_by).Bind(r.reason);
  st.Bind(r.created_ms);
  auto run = st.Run();
  if (!run && st.rc() == SQLITE_CONSTRAINT_FOREIGNKEY)
    return NotFound("account " + r.account_id + " not found");
  return run;
}

Result<RestoreRequestRecord> Catalog::GetRestoreRequest(const std::string& id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(),
                                                    std::string(kRestoreRequestSelect) + " WHERE request_id = ?",
                                                    "get restore request " + id));
  st.Bind(id);
  ASSIGN_OR_RETURN(auto rows, ReadRestoreRequests(st));
  if (rows.empty()) return NotFound("restore request " + id + " not found");
  return std::move(rows.front());
}

Result<std::vector<RestoreRequestRecord>> Catalog::ListRestoreRequests(
    std::optional<std::string> account_id) {
  std::lock_guard lock(mu_);
  std::string sql = kRestoreRequestSelect;
  if (account_id) sql += " WHERE account_id = ?";
  sql += " ORDER BY created_ms, request_id";
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(), sql, "list restore requests"));
  if (account_id) st.Bind(*account_id);
  return ReadRestoreRequests(st);
}

Status Catalog::DecideRestoreRequest(const std::string& id, bool approved, const std::string& decided_by,
                                     const std::string& reason, const std::string& volume_id,
                                     int64_t decided_ms) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(db_.get(),
                                      "UPDATE restore_requests SET state = ?, decided_by = ?,"
                                      " decision_reason = ?, volume_id = ?, decided_ms = ?"
                                      " WHERE request_id = ? AND state = 'pending'",
                                      "decide restore request " + id));
  st.Bind(approved ? "approved" : "rejected").Bind(decided_by).Bind(reason).Bind(volume_id);
  st.Bind(decided_ms).Bind(id);
  RETURN_IF_ERROR(st.Run());
  if (Changes(db_.get()) == 1) return OkStatus();
  ASSIGN_OR_RETURN(Statement find, Statement::Prepare(db_.get(),
                                                      "SELECT state FROM restore_requests WHERE request_id = ?",
                                                      "decide restore request " + id));
  find.Bind(id);
  ASSIGN_OR_RETURN(bool exists, find.Step());
  if (!exists) return NotFound("restore request " + id + " not found");
  return Conflict("restore request " + id + " is already " + find.Text(0));
}

// --- instances ---

namespace {
Result<std::vector<InstanceRecord>> ReadInstances(Statement& st) {
  return ReadRows<InstanceRecord>(st, [](Statement& r) { return InstanceRecord{r.Text(0), r.Text(1), r.Text(2), r.Int(3)}; });
}
}  // namespace

Status Catalog::InsertInstance(const InstanceRecord& i) {
  if (!IsInstanceId(i.instance_id)) return InvalidArgument("'" + i.instance_id + "' is not an instance id (i-…)");
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(),
                                                    "INSERT INTO instances (instance_id, account_id,"
                                                    " name, created_ms) VALUES (?, ?, ?, ?)",
                                                    "insert instance " + i.instance_id));
  st.Bind(i.instance_id).Bind(i.account_id).Bind(i.name).Bind(i.created_ms);
  auto run = st.Run();
  if (!run && st.rc() == SQLITE_CONSTRAINT_FOREIGNKEY)
    return NotFound("account " + i.account_id + " not found");
  if (!run && st.rc() == SQLITE_CONSTRAINT_PRIMARYKEY)
    return MakeError(ErrorCode::kAlreadyExists, "instance " + i.instance_id + " already exists");
  return run;
}

Result<InstanceRecord> Catalog::GetInstance(const std::string& id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(),
                                                    "SELECT instance_id, account_id, name, created_ms"
                                                    " FROM instances WHERE instance_id = ?",
                                                    "get instance " + id));
  st.Bind(id);
  ASSIGN_OR_RETURN(auto rows, ReadInstances(st));
  if (rows.empty()) return NotFound("instance " + id + " not found");
  return std::move(rows.front());
}

Result<std::vector<InstanceRecord>> Catalog::ListInstances(std::optional<std::string> account_id) {
  std::lock_guard lock(mu_);
  std::string sql = "SELECT instance_id, account_id, name, created_ms FROM instances";
  if (account_id) sql += " WHERE account_id = ?";
  sql += " ORDER BY created_ms, instance_id";
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(), sql, "list instances"));
  if (account_id) st.Bind(*account_id);
  return ReadInstances(st);
}

// --- volumes ---

Status Catalog::InsertVolume(const VolumeRecord& v) {
  RETURN_IF_ERROR(ValidateVolume(v));
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(Statement st,
                     Statement::Prepare(db_.get(),
                                        "INSERT INTO volumes (volume_id, account_id, name, path,"
                                        " size_bytes, block_size, created_ms, instance_id,"
                                        " device, boot, snapshot_id, state, state_message, managed,"
                                        " attach_ms)"
                                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                        "insert volume " + v.volume_id));
    st.Bind(v.volume_id).Bind(v.account_id).Bind(v.name).Bind(v.path).Bind(v.size_bytes);
    st.Bind(v.block_size).Bind(v.created_ms).Bind(v.instance_id).Bind(v.device).Bind(v.boot ? 1 : 0);
    st.Bind(v.snapshot_id).Bind(v.state.empty() ? std::string("available") : v.state).Bind(v.state_message);
    st.Bind(v.managed ? 1 : 0).Bind(v.attach_ms);
    auto run = st.Run();
    if (!run && (st.rc() == SQLITE_CONSTRAINT_PRIMARYKEY || st.rc() == SQLITE_CONSTRAINT_UNIQUE)) {
      return MakeError(ErrorCode::kAlreadyExists, "volume " + v.volume_id + " already exists");
    }
    if (!run && st.rc() == SQLITE_CONSTRAINT_FOREIGNKEY) {
      return InvalidArgument("insert volume " + v.volume_id + ": account " + v.account_id +
                             " is not in the catalog");
    }
    RETURN_IF_ERROR(run);
    return WriteTags(v.volume_id, v.tags);
  });
}

Result<VolumeRecord> Catalog::GetVolume(const std::string& id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(),
                                                    std::string(kVolumeSelect) +
                                                        " WHERE v.volume_id = ?" + kVolumeOrder,
                                                    "get volume " + id));
  st.Bind(id);
  ASSIGN_OR_RETURN(std::vector<VolumeRecord> rows, ReadVolumes(st));
  if (rows.empty()) return NotFound("volume " + id + " not found");
  return std::move(rows.front());
}

Result<std::vector<VolumeRecord>> Catalog::ListVolumes(std::optional<std::string> account_id) {
  std::lock_guard lock(mu_);
  std::string sql = kVolumeSelect;
  if (account_id) sql += " WHERE v.account_id = ?";
  sql += kVolumeOrder;
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(), sql, "list volumes"));
  if (account_id) st.Bind(*account_id);
  return ReadVolumes(st);
}

Status Catalog::SetVolumeState(const std::string& id, const std::string& state,
                               const std::string& message) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(),
                                                    "UPDATE volumes SET state = ?, state_message = ?"
                                                    " WHERE volume_id = ?",
                                                    "set state of volume " + id));
  st.Bind(state).Bind(message).Bind(id);
  RETURN_IF_ERROR(st.Run());
  if (Changes(db_.get()) == 0) return NotFound("volume " + id + " not found");
  return OkStatus();
}

Status Catalog::SetVolumeAttachment(const std::string& id, const std::string& instance_id,
                                    const std::string& device, int64_t attach_ms) {
  std::lock_guard lock(mu_);
  // Attaching needs a detached volume and detaching an attached one, checked in the UPDATE so
  // that two callers cannot both succeed.
  const bool attach = !instance_id.empty();
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(db_.get(),
                                      attach ? "UPDATE volumes SET instance_id = ?, device = ?, attach_ms = ?"
                                               " WHERE volume_id = ? AND instance_id = ''"
                                             : "UPDATE volumes SET instance_id = ?, device = ?, attach_ms = ?,"
                                               " boot = 0 WHERE volume_id = ? AND instance_id <> ''",
                                      (attach ? "attach volume " : "detach volume ") + id));
  st.Bind(instance_id).Bind(device).Bind(attach_ms).Bind(id);
  RETURN_IF_ERROR(st.Run());
  if (Changes(db_.get()) == 1) return OkStatus();
  ASSIGN_OR_RETURN(Statement find, Statement::Prepare(db_.get(), "SELECT instance_id FROM volumes WHERE volume_id = ?",
                                                      "find volume " + id));
  find.Bind(id);
  ASSIGN_OR_RETURN(bool exists, find.Step());
  if (!exists) return NotFound("volume " + id + " not found");
  return Conflict(attach ? "volume " + id + " is already attached to " + find.Text(0)
                         : "volume " + id + " is not attached");
}

Status Catalog::DeleteVolume(const std::string& id) {
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(Statement tags, Statement::Prepare(db_.get(), "DELETE FROM tags WHERE resource_id = ?",
                                                        "delete volume " + id));
    tags.Bind(id);
    RETURN_IF_ERROR(tags.Run());
    ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(), "DELETE FROM volumes WHERE volume_id = ?",
                                                      "delete volume " + id));
    st.Bind(id);
    RETURN_IF_ERROR(st.Run());
    if (Changes(db_.get()) == 0) return NotFound("volume " + id + " not found");
    return OkStatus();
  });
}

Status Catalog::UpdateVolumeSize(const std::string& id, uint64_t size) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(
      Statement st,
      Statement::Prepare(db_.get(), "UPDATE volumes SET size_bytes = ? WHERE volume_id = ?",
                         "update size of volume " + id));
  st.Bind(size).Bind(id);
  RETURN_IF_ERROR(st.Run());
  if (Changes(db_.get()) == 0) return NotFound("volume " + id + " not found");
  return OkStatus();
}

// --- snapshots ---

Status Catalog::WriteTags(const std::string& resource_id, const std::vector<Tag>& tags) {
  sqlite3* db = db_.get();
  const std::string what = "write tags of " + resource_id;
  if (!tags.empty()) {
    ASSIGN_OR_RETURN(Statement st,
                     Statement::Prepare(db,
                                        "INSERT INTO tags (resource_id, key, value)"
                                        " VALUES (?, ?, ?) ON CONFLICT (resource_id, key)"
                                        " DO UPDATE SET value = excluded.value",
                                        what));
    for (const Tag& t : tags) {
      st.Reset();
      st.Bind(resource_id).Bind(t.key).Bind(t.value);
      RETURN_IF_ERROR(st.Run());
    }
  }
  ASSIGN_OR_RETURN(Statement count,
                   Statement::Prepare(db, "SELECT count(*) FROM tags WHERE resource_id = ?", what));
  count.Bind(resource_id);
  ASSIGN_OR_RETURN(bool row, count.Step());
  int64_t n = row ? count.Int(0) : 0;
  if (n > static_cast<int64_t>(kMaxTagsPerResource)) {
    return InvalidArgument(resource_id + " would have " + std::to_string(n) +
                           " tags; the limit is " + std::to_string(kMaxTagsPerResource));
  }
  return OkStatus();
}

Status Catalog::WriteSnapshot(const SnapshotRecord& s, bool replace) {
  sqlite3* db = db_.get();
  const std::string what = (replace ? "upsert snapshot " : "insert snapshot ") + s.snapshot_id;
  if (replace) {
    ASSIGN_OR_RETURN(Statement del,
                     Statement::Prepare(db, "DELETE FROM tags WHERE resource_id = ?", what));
    del.Bind(s.snapshot_id);
    RETURN_IF_ERROR(del.Run());
  }
  std::string sql = replace ? "INSERT OR REPLACE" : "INSERT";
  sql +=
      " INTO snapshots (snapshot_id, volume_id, account_id, state, progress, start_time_ms,"
      " completed_time_ms, volume_size_bytes, block_size, description, state_message,"
      " parent_snapshot_id, encrypted, stored_bytes, changed_blocks, total_blocks, runner)"
      " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db, sql, what));
  st.Bind(s.snapshot_id).Bind(s.volume_id).Bind(s.account_id).Bind(SnapshotStateName(s.state));
  st.Bind(s.progress).Bind(s.start_time_ms).Bind(s.completed_time_ms).Bind(s.volume_size_bytes);
  st.Bind(s.block_size).Bind(s.description).Bind(s.state_message).Bind(s.parent_snapshot_id);
  st.Bind(s.encrypted).Bind(s.stored_bytes).Bind(s.changed_blocks).Bind(s.total_blocks);
  st.Bind(s.runner);
  auto run = st.Run();
  if (!run && (st.rc() == SQLITE_CONSTRAINT_PRIMARYKEY || st.rc() == SQLITE_CONSTRAINT_UNIQUE)) {
    return MakeError(ErrorCode::kAlreadyExists, "snapshot " + s.snapshot_id + " already exists");
  }
  if (!run && st.rc() == SQLITE_CONSTRAINT_FOREIGNKEY) {
    return InvalidArgument(what + ": account " + s.account_id + " is not in the catalog");
  }
  RETURN_IF_ERROR(run);
  return WriteTags(s.snapshot_id, s.tags);
}

Status Catalog::InsertSnapshot(const SnapshotRecord& s) {
  RETURN_IF_ERROR(ValidateSnapshot(s));
  std::lock_guard lock(mu_);
  return InTransaction([&] { return WriteSnapshot(s, /*replace=*/false); });
}

Status Catalog::UpsertSnapshot(const SnapshotRecord& s) {
  RETURN_IF_ERROR(ValidateSnapshot(s));
  std::lock_guard lock(mu_);
  return InTransaction([&] { return WriteSnapshot(s, /*replace=*/true); });
}

Result<SnapshotRecord> Catalog::GetSnapshot(const std::string& id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(),
                                                    std::string(kSnapshotSelect) +
                                                        " WHERE s.snapshot_id = ?" + kSnapshotOrder,
                                                    "get snapshot " + id));
  st.Bind(id);
  ASSIGN_OR_RETURN(std::vector<SnapshotRecord> rows, ReadSnapshots(st));
  if (rows.empty()) return NotFound("snapshot " + id + " not found");
  return std::move(rows.front());
}

Result<std::vector<SnapshotRecord>> Catalog::ListSnapshots(const SnapshotFilter& f) {
  std::string where;
  std::vector<std::string> params;
  auto add = [&](const char* cond, std::string value) {
    where += where.empty() ? " WHERE " : " AND ";
    where += cond;
    params.push_back(std::move(value));
  };
  if (f.volume_id) add("s.volume_id = ?", *f.volume_id);
  if (f.account_id) add("s.account_id = ?", *f.account_id);
  if (f.state) add("s.state = ?", SnapshotStateName(*f.state));
  if (f.tag) {
    add("EXISTS (SELECT 1 FROM tags t WHERE t.resource_id = s.snapshot_id AND t.key = ?", f.tag->key);
    where += " AND t.value = ?)";
    params.push_back(f.tag->value);
  }

  // Each query carries at most kMaxIdsPerQuery ids; an empty chunk list means "any id".
  std::vector<std::vector<std::string>> chunks;
  if (!f.snapshot_ids.empty()) {
    std::set<std::string> unique(f.snapshot_ids.begin(), f.snapshot_ids.end());
    for (const std::string& id : unique) {
      if (chunks.empty() || chunks.back().size() == kMaxIdsPerQuery) chunks.emplace_back();
      chunks.back().push_back(id);
    }
  }

  std::lock_guard lock(mu_);
  auto query = [&](const std::vector<std::string>* ids) -> Result<std::vector<SnapshotRecord>> {
    std::string sql = std::string(kSnapshotSelect) + where;
    if (ids != nullptr) {
      sql += where.empty() ? " WHERE " : " AND ";
      sql += "s.snapshot_id IN (?";
      for (size_t i = 1; i < ids->size(); ++i) sql += ", ?";
      sql += ")";
    }
    sql += kSnapshotOrder;
    ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(), sql, "list snapshots"));
    for (const std::string& p : params) st.Bind(p);
    if (ids != nullptr)
      for (const std::string& id : *ids) st.Bind(id);
    return ReadSnapshots(st);
  };

  if (chunks.empty()) return query(nullptr);
  if (chunks.size() == 1) return query(&chunks.front());
  std::vector<SnapshotRecord> all;
  // One read transaction so that every chunk sees the same state of the catalog.
  auto query_all = [&]() -> Status {
    for (const auto& chunk : chunks) {
      ASSIGN_OR_RETURN(std::vector<SnapshotRecord> part, query(&chunk));
      std::move(part.begin(), part.end(), std::back_inserter(all));
    }
    return OkStatus();
  };
  RETURN_IF_ERROR(InTransaction(query_all, /*write=*/false));
  std::sort(all.begin(), all.end(), [](const SnapshotRecord& a, const SnapshotRecord& b) {
    return std::tie(a.start_time_ms, a.snapshot_id) < std::tie(b.start_time_ms, b.snapshot_id);
  });
  return all;
}

Result<std::vector<SnapshotRecord>> Catalog::ListSnapshotsPage(const std::string& account_id,
                                                               const std::string& after_id,
                                                               size_t limit) {
  static const std::string sql = std::string(kSnapshotSelect) +
                                 " WHERE s.snapshot_id IN (SELECT snapshot_id FROM snapshots"
                                 " WHERE account_id = ? AND snapshot_id > ? ORDER BY snapshot_id LIMIT ?)"
                                 " ORDER BY s.snapshot_id, t.key";
  auto run = [&](sqlite3* db, std::map<std::string, sqlite3_stmt*>* cache) -> Result<std::vector<SnapshotRecord>> {
    ASSIGN_OR_RETURN(Statement st, cache ? Statement::PrepareCached(db, *cache, sql, "list a page of snapshots")
                                         : Statement::Prepare(db, sql, "list a page of snapshots"));
    st.Bind(account_id).Bind(after_id).Bind(static_cast<int64_t>(std::min<size_t>(limit, 1u << 30)));
    return ReadSnapshots(st);
  };
  if (!readers_.empty()) {
    Reader& r = *readers_[next_reader_++ % readers_.size()];
    std::lock_guard lock(r.mu);
    return run(r.db.get(), &r.statements);
  }
  std::lock_guard lock(mu_);
  return run(db_.get(), nullptr);
}

Result<std::string> Catalog::SnapshotStateOf(const std::string& id) {
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(
                                     db_.get(), "SELECT state FROM snapshots WHERE snapshot_id = ?",
                                     "get state of snapshot " + id));
  st.Bind(id);
  ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return NotFound("snapshot " + id + " not found");
  return st.Text(0);
}

// Explains why an update guarded by "state = 'pending'" changed nothing.
Status Catalog::CheckPendingTransition(const std::string& id, const char* action) {
  ASSIGN_OR_RETURN(std::string state, SnapshotStateOf(id));
  return Conflict(std::string("cannot ") + action + " snapshot " + id + ": it is " + state +
                  ", not pending");
}

Status Catalog::UpdateProgress(const std::string& id, const std::string& progress) {
  RETURN_IF_ERROR(ValidateProgress(progress, id));
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(Statement st,
                     Statement::Prepare(db_.get(),
                                        "UPDATE snapshots SET progress = ?"
                                        " WHERE snapshot_id = ? AND state = 'pending'",
                                        "update progress of snapshot " + id));
    st.Bind(progress).Bind(id);
    RETURN_IF_ERROR(st.Run());
    if (Changes(db_.get()) == 0) return CheckPendingTransition(id, "update progress of");
    return OkStatus();
  });
}

Status Catalog::MarkCompleted(const std::string& id, int64_t completed_ms, uint64_t stored_bytes,
                              uint64_t changed_blocks, uint64_t total_blocks) {
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(Statement st,
                     Statement::Prepare(db_.get(),
                                        "UPDATE snapshots SET state = 'completed',"
                                        " progress = '100%', completed_time_ms = ?,"
                                        " stored_bytes = ?, changed_blocks = ?,"
                                        " total_blocks = ?, runner = ''"
                                        " WHERE snapshot_id = ? AND state = 'pending'",
                                        "mark snapshot " + id + " completed"));
    st.Bind(completed_ms).Bind(stored_bytes).Bind(changed_blocks).Bind(total_blocks).Bind(id);
    RETURN_IF_ERROR(st.Run());
    if (Changes(db_.get()) == 0) return CheckPendingTransition(id, "complete");
    return OkStatus();
  });
}

Status Catalog::MarkError(const std::string& id, const std::string& message) {
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(Statement st,
                     Statement::Prepare(db_.get(),
                                        "UPDATE snapshots SET state = 'error',"
                                        " state_message = ?, runner = ''"
                                        " WHERE snapshot_id = ? AND state = 'pending'",
                                        "mark snapshot " + id + " failed"));
    st.Bind(message).Bind(id);
    RETURN_IF_ERROR(st.Run());
    if (Changes(db_.get()) == 0) return CheckPendingTransition(id, "fail");
    return OkStatus();
  });
}

std::string LockStateAt(const SnapshotLockRecord& lock, int64_t now_ms) {
  if (now_ms >= lock.expires_ms) return "expired";
  if (lock.mode == "compliance" && now_ms < lock.cool_off_expires_ms) return "compliance-cooloff";
  return lock.mode;
}

namespace {
constexpr char kLockColumns[] =
    "snapshot_id, account_id, mode, created_ms, duration_start_ms, expires_ms, duration_days,"
    " cool_off_hours, cool_off_expires_ms";

Result<std::vector<SnapshotLockRecord>> ReadSnapshotLocks(Statement& st) {
  return ReadRows<SnapshotLockRecord>(st, [](Statement& r) {
    return SnapshotLockRecord{r.Text(0), r.Text(1), r.Text(2), r.Int(3), r.Int(4),
                              r.Int(5),  r.Int(6),  r.Int(7),  r.Int(8)};
  });
}
}  // namespace

Status Catalog::DeleteSnapshot(const std::string& id, int64_t now_ms, const std::function<Status()>& before_delete) {
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    const std::string what = "delete snapshot " + id;
    ASSIGN_OR_RETURN(Statement locked,
                     Statement::Prepare(db_.get(), std::string("SELECT ") + kLockColumns +
                                                       " FROM snapshot_locks WHERE snapshot_id = ?",
                                        what));
    locked.Bind(id);
    ASSIGN_OR_RETURN(auto locks, ReadSnapshotLocks(locked));
    if (!locks.empty() && LockStateAt(locks.front(), now_ms) != "expired")
      return Conflict("snapshot " + id + " is locked (" + LockStateAt(locks.front(), now_ms) + ") until " +
                      FormatIso8601(locks.front().expires_ms) + "; it cannot be deleted before then");
    ASSIGN_OR_RETURN(Statement exists,
                     Statement::Prepare(db_.get(), "SELECT 1 FROM snapshots WHERE snapshot_id = ?", what));
    exists.Bind(id);
    ASSIGN_OR_RETURN(bool found, exists.Step());
    if (!found) return NotFound("snapshot " + id + " not found");
    if (before_delete) RETURN_IF_ERROR(before_delete());
    for (const char* sql : {"DELETE FROM snapshots WHERE snapshot_id = ?", "DELETE FROM tags WHERE resource_id = ?",
                            "DELETE FROM snapshot_locks WHERE snapshot_id = ?"}) {
      ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(), sql, what));
      st.Bind(id);
      RETURN_IF_ERROR(st.Run());
    }
    return OkStatus();
  });
}

Status Catalog::PutSnapshotLock(const SnapshotLockRecord& l) {
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    const std::string what = "lock snapshot " + l.snapshot_id;
    ASSIGN_OR_RETURN(Statement exists,
                     Statement::Prepare(db_.get(), "SELECT 1 FROM snapshots WHERE snapshot_id = ?", what));
    exists.Bind(l.snapshot_id);
    ASSIGN_OR_RETURN(bool found, exists.Step());
    if (!found) return NotFound("snapshot " + l.snapshot_id + " not found");
    ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(),
                                                      std::string("INSERT OR REPLACE INTO snapshot_locks (") +
                                                          kLockColumns + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                                      what));
    st.Bind(l.snapshot_id).Bind(l.account_id).Bind(l.mode).Bind(l.created_ms).Bind(l.duration_start_ms);
    st.Bind(l.expires_ms).Bind(l.duration_days).Bind(l.cool_off_hours).Bind(l.cool_off_expires_ms);
    return st.Run();
  });
}

Result<SnapshotLockRecord> Catalog::GetSnapshotLock(const std::string& snapshot_id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(),
                                                    std::string("SELECT ") + kLockColumns +
                                                        " FROM snapshot_locks WHERE snapshot_id = ?",
                                                    "read the lock of snapshot " + snapshot_id));
  st.Bind(snapshot_id);
  ASSIGN_OR_RETURN(auto rows, ReadSnapshotLocks(st));
  if (rows.empty()) return NotFound("snapshot " + snapshot_id + " is not locked");
  return rows.front();
}

Result<std::vector<SnapshotLockRecord>> Catalog::ListSnapshotLocks(std::optional<std::string> account_id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(db_.get(),
                                      std::string("SELECT ") + kLockColumns + " FROM snapshot_locks" +
                                          (account_id ? " WHERE account_id = ?" : "") + " ORDER BY snapshot_id",
                                      "list snapshot locks"));
  if (account_id) st.Bind(*account_id);
  return ReadSnapshotLocks(st);
}

Status Catalog::DeleteSnapshotLock(const std::string& snapshot_id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(), "DELETE FROM snapshot_locks WHERE snapshot_id = ?",
                                                    "unlock snapshot " + snapshot_id));
  st.Bind(snapshot_id);
  RETURN_IF_ERROR(st.Run());
  if (Changes(db_.get()) == 0) return NotFound("snapshot " + snapshot_id + " is not locked");
  return OkStatus();
}

Status Catalog::SetTags(const std::string& snapshot_id, const std::vector<Tag>& tags) {
  RETURN_IF_ERROR(ValidateTags(tags, snapshot_id));
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    RETURN_IF_ERROR(SnapshotStateOf(snapshot_id));
    return WriteTags(snapshot_id, tags);
  });
}

Status Catalog::RemoveTags(const std::string& snapshot_id, const std::vector<std::string>& keys) {
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    RETURN_IF_ERROR(SnapshotStateOf(snapshot_id));
    ASSIGN_OR_RETURN(
        Statement st,
        Statement::Prepare(db_.get(), "DELETE FROM tags WHERE resource_id = ? AND key = ?",
                           "remove tags of " + snapshot_id));
    for (const std::string& key : keys) {
      st.Reset();
      st.Bind(snapshot_id).Bind(key);
      RETURN_IF_ERROR(st.Run());
    }
    return OkStatus();
  });
}

Result<SnapshotRecord> Catalog::LatestCompletedSnapshot(const std::string& volume_id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(db_.get(),
                                      std::string(kSnapshotSelect) +
                                          " WHERE s.snapshot_id = (SELECT snapshot_id"
                                          " FROM snapshots WHERE volume_id = ?"
                                          " AND state = 'completed'"
                                          " ORDER BY start_time_ms DESC, snapshot_id DESC"
                                          " LIMIT 1)" +
                                          kSnapshotOrder,
                                      "find latest completed snapshot of volume " + volume_id));
  st.Bind(volume_id);
  ASSIGN_OR_RETURN(std::vector<SnapshotRecord> rows, ReadSnapshots(st));
  if (rows.empty()) return NotFound("volume " + volume_id + " has no completed snapshot");
  return std::move(rows.front());
}

Status Catalog::DeleteAllSnapshots() {
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    sqlite3* db = db_.get();
    RETURN_IF_ERROR(
        Exec(db,
             "DELETE FROM tags WHERE resource_id IN (SELECT snapshot_id FROM snapshots);"
             " DELETE FROM snapshots;",
             "delete all snapshots"));
    return OkStatus();
  });
}

// --- lifecycle policies and runs ---

namespace {
constexpr char kLifecycleSelect[] =
    "SELECT policy_id, account_id, description, state, role_arn, details, tags, created_ms, modified_ms"
    " FROM lifecycle_policies";

Result<std::vector<LifecyclePolicyRecord>> ReadLifecyclePolicies(Statement& st) {
  return ReadRows<LifecyclePolicyRecord>(st, [](Statement& r) { return LifecyclePolicyRecord{r.Text(0), r.Text(1), r.Text(2), r.Text(3), r.Text(4), r.Text(5),
                                                      r.Text(6), r.Int(7), r.Int(8)}; });
}

constexpr char kRunSelect[] =
    "SELECT policy_id, schedule_name, scheduled_ms, started_ms, finished_ms, state, created, failed,"
    " deleted, missed, message FROM lifecycle_runs";

Result<std::vector<LifecycleRunRecord>> ReadRuns(Statement& st) {
  return ReadRows<LifecycleRunRecord>(st, [](Statement& r) { return LifecycleRunRecord{r.Text(0), r.Text(1), r.Int(2), r.Int(3), r.Int(4), r.Text(5), r.Int(6),
                                                   r.Int(7), r.Int(8), r.Int(9), r.Text(10)}; });
}
}  // namespace

Status Catalog::InsertLifecyclePolicy(const LifecyclePolicyRecord& p) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(db_.get(),
                                      "INSERT INTO lifecycle_policies (policy_id, account_id, description, state,"
                                      " role_arn, details, tags, created_ms, modified_ms)"
                                      " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                      "insert lifecycle policy " + p.policy_id));
  st.Bind(p.policy_id).Bind(p.account_id).Bind(p.description).Bind(p.state).Bind(p.role_arn);
  st.Bind(p.details).Bind(p.tags).Bind(p.created_ms).Bind(p.modified_ms);
  return st.Run();
}

Status Catalog::InsertDefaultLifecyclePolicy(const LifecyclePolicyRecord& p) {
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    const std::string what = "default lifecycle policy of " + p.account_id;
    ASSIGN_OR_RETURN(Statement mark, Statement::Prepare(db_.get(),
                                                        "UPDATE accounts SET lifecycle_default_made = 1"
                                                        " WHERE account_id = ? AND lifecycle_default_made = 0",
                                                        what));
    mark.Bind(p.account_id);
    RETURN_IF_ERROR(mark.Run());
    if (Changes(db_.get()) == 0) return MakeError(ErrorCode::kAlreadyExists, what + " was already made");
    return InsertLifecyclePolicy(p);
  });
}

Result<std::vector<std::string>> Catalog::AccountsWithoutDefaultLifecyclePolicy() {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(),
                                                    "SELECT account_id FROM accounts WHERE lifecycle_default_made = 0"
                                                    " ORDER BY account_id",
                                                    "list accounts without a default lifecycle policy"));
  return ReadRows<std::string>(st, [](Statement& r) { return r.Text(0); });
}

Result<LifecyclePolicyRecord> Catalog::GetLifecyclePolicy(const std::string& id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(), std::string(kLifecycleSelect) + " WHERE policy_id = ?",
                                                    "read lifecycle policy " + id));
  st.Bind(id);
  ASSIGN_OR_RETURN(auto rows, ReadLifecyclePolicies(st));
  if (rows.empty()) return NotFound("lifecycle policy " + id + " not found");
  return rows.front();
}

Result<std::vector<LifecyclePolicyRecord>> Catalog::ListLifecyclePolicies(std::optional<std::string> account_id) {
  std::lock_guard lock(mu_);
  std::string sql = kLifecycleSelect;
  if (account_id) sql += " WHERE account_id = ?";
  sql += " ORDER BY created_ms, policy_id";
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(), sql, "list lifecycle policies"));
  if (account_id) st.Bind(*account_id);
  return ReadLifecyclePolicies(st);
}

Status Catalog::UpdateLifecyclePolicy(const LifecyclePolicyRecord& p) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(db_.get(),
                                      "UPDATE lifecycle_policies SET description = ?, state = ?, role_arn = ?,"
                                      " details = ?, tags = ?, modified_ms = ? WHERE policy_id = ?",
                                      "update lifecycle policy " + p.policy_id));
  st.Bind(p.description).Bind(p.state).Bind(p.role_arn).Bind(p.details).Bind(p.tags).Bind(p.modified_ms);
  st.Bind(p.policy_id);
  RETURN_IF_ERROR(st.Run());
  if (Changes(db_.get()) == 0) return NotFound("lifecycle policy " + p.policy_id + " not found");
  return OkStatus();
}

Status Catalog::DeleteLifecyclePolicy(const std::string& id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(), "DELETE FROM lifecycle_policies WHERE policy_id = ?",
                                                    "delete lifecycle policy " + id));
  st.Bind(id);
  RETURN_IF_ERROR(st.Run());
  if (Changes(db_.get()) == 0) return NotFound("lifecycle policy " + id + " not found");
  return OkStatus();
}

Status Catalog::InsertLifecycleRun(const LifecycleRunRecord& r) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(db_.get(),
                                      "INSERT INTO lifecycle_runs (policy_id, schedule_name, scheduled_ms, started_ms,"
                                      " finished_ms, state, created, failed, deleted, missed, message)"
                                      " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                      "insert lifecycle run of " + r.policy_id));
  st.Bind(r.policy_id).Bind(r.schedule_name).Bind(r.scheduled_ms).Bind(r.started_ms).Bind(r.finished_ms);
  st.Bind(r.state).Bind(r.created).Bind(r.failed).Bind(r.deleted).Bind(r.missed).Bind(r.message);
  return st.Run();
}

Status Catalog::UpdateLifecycleRun(const LifecycleRunRecord& r) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(db_.get(),
                                      "UPDATE lifecycle_runs SET finished_ms = ?, state = ?, created = ?, failed = ?,"
                                      " deleted = ?, missed = ?, message = ?"
                                      " WHERE policy_id = ? AND schedule_name = ? AND scheduled_ms = ?",
                                      "update lifecycle run of " + r.policy_id));
  st.Bind(r.finished_ms).Bind(r.state).Bind(r.created).Bind(r.failed).Bind(r.deleted).Bind(r.missed);
  st.Bind(r.message).Bind(r.policy_id).Bind(r.schedule_name).Bind(r.scheduled_ms);
  RETURN_IF_ERROR(st.Run());
  if (Changes(db_.get()) == 0) return NotFound("lifecycle run of " + r.policy_id + " not found");
  return OkStatus();
}

Result<std::vector<LifecycleRunRecord>> Catalog::ListLifecycleRuns(std::optional<std::string> policy_id,
                                                                   size_t limit) {
  std::lock_guard lock(mu_);
  std::string sql = kRunSelect;
  if (policy_id) sql += " WHERE policy_id = ?";
  sql += " ORDER BY scheduled_ms DESC, policy_id, schedule_name LIMIT ?";
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(), sql, "list lifecycle runs"));
  if (policy_id) st.Bind(*policy_id);
  st.Bind(static_cast<int64_t>(std::min<size_t>(limit, 1u << 30)));
  return ReadRuns(st);
}

Result<std::vector<LifecycleRunRecord>> Catalog::ListRunningLifecycleRuns() {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(),
                                                    std::string(kRunSelect) +
                                                        " WHERE state = 'running' ORDER BY scheduled_ms",
                                                    "list running lifecycle runs"));
  return ReadRuns(st);
}

Result<std::optional<LifecycleRunRecord>> Catalog::LatestLifecycleRun(const std::string& policy_id,
                                                                      const std::string& schedule_name) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(),
                                                    std::string(kRunSelect) +
                                                        " WHERE policy_id = ? AND schedule_name = ?"
                                                        " ORDER BY scheduled_ms DESC LIMIT 1",
                                                    "read the latest lifecycle run of " + policy_id));
  st.Bind(policy_id).Bind(schedule_name);
  ASSIGN_OR_RETURN(auto rows, ReadRuns(st));
  if (rows.empty()) return std::optional<LifecycleRunRecord>();
  return std::optional<LifecycleRunRecord>(rows.front());
}

}  // namespace snapvol
