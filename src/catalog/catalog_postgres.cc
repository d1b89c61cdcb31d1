// The PostgreSQL backend of the catalog's database seam: connection, statements, transactions
// and the SQLSTATE → Error mapping (catalog_postgres.h).
#include "catalog/catalog_postgres.h"

#include <libpq-fe.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace snapvol::catalog_internal {
namespace {

// Type OIDs from the server's catalog (pg_type.dat); stable across versions.
constexpr Oid kBoolOid = 16;
constexpr Oid kByteaOid = 17;
constexpr Oid kInt8Oid = 20;

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using ResultHandle = std::unique_ptr<PGresult, ResultDeleter>;
struct ConnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using ConnHandle = std::unique_ptr<PGconn, ConnDeleter>;

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

std::string Trimmed(const char* message) {
  std::string s = message != nullptr ? message : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// Strict: the whole text is one decimal int64.
std::optional<int64_t> ParseInt(std::string_view text) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return v;
}

std::string StatementDetail(const PGresult* res) {
  const char* state = res != nullptr ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  return state != nullptr ? std::string(" (SQLSTATE ") + state + ")" : "";
}

class PgStatement;

class PgConnection final : public Connection {
 public:
  PgConnection(ConnHandle conn, std::string describe)
      : conn_(std::move(conn)), describe_(std::move(describe)) {}
  ~PgConnection() override;

  Backend backend() const override { return Backend::kPostgres; }
  std::string Describe() const override { return describe_; }

  Result<std::unique_ptr<StatementImpl>> Prepare(std::string_view sql,
                                                 const std::string& what) override;
  Result<StatementImpl*> PrepareCached(const std::string& sql, const std::string& what) override;
  void Release(StatementImpl* cached) override;

  Status Exec(std::string_view sql, std::string_view what) override;
  int64_t Changes() const override { return changes_; }

  Status Begin(bool write) override;
  bool InTransaction() const override {
    PGTransactionStatusType ts = PQtransactionStatus(conn_.get());
    return depth_ > 0 && (ts == PQTRANS_INTRANS || ts == PQTRANS_ACTIVE);
  }
  Status Commit() override;
  void Rollback() noexcept override;

  Result<int64_t> DataVersion() override;
  // Runs write, one statement that may write, in a write transaction of its own (see the
  // header): Changes() is then the statement's, not the version bump's.
  Result<bool> InOwnWriteTransaction(const std::function<Result<bool>()>& write);
  Status RelaxCommitDurability() override {
    if (depth_ == 0 || !write_)
      return Internal("relax the durability of a commit on " + describe_ + ": not in a write transaction");
    if (depth_ > 1) return OkStatus();  // a savepoint: the outer transaction's commit stays durable
    return Exec("SET LOCAL synchronous_commit = off", "relax the durability of this commit");
  }

  // For statements.
  PGconn* conn() const { return conn_.get(); }
  bool OutsideTransaction() const { return depth_ == 0; }
  uint64_t session() const { return session_; }
  std::string NextStatementName() { return "snapvol_" + std::to_string(++statement_names_); }
  // Re-establishes a connection found dead, when no transaction was lost with it.
  Status EnsureConnected(std::string_view what);
  // Checks res (null: libpq could not even send); on success records Changes().
  Status Check(const PGresult* res, std::string_view what, Violation* violation = nullptr);

 private:
  // PQexec: sql may hold several statements; the last one's result comes back.
  Result<ResultHandle> Run(const char* sql, std::string_view what);

  ConnHandle conn_;
  std::string describe_;
  uint64_t session_ = 1;  // bumped by a reconnect: the new session has no prepared statements
  uint64_t statement_names_ = 0;
  int depth_ = 0;       // 0 outside a transaction, 1 in one, +1 per savepoint
  bool write_ = false;  // the outermost transaction took the write lock
  bool bump_version_ = false;
  int64_t changes_ = 0;
  std::map<std::string, std::unique_ptr<PgStatement>, std::less<>> cache_;
};

class PgStatement final : public StatementImpl {
 public:
  PgStatement(PgConnection* db, std::string sql, int params, std::string what, bool cached)
      : db_(db),
        sql_(std::move(sql)),
        what_(std::move(what)),
        cached_(cached),
        may_write_(MayWrite(sql_)),
        params_(params) {}

  void set_what(const std::string& what) { what_ = what; }

  void BindText(int index, std::string_view v) override { Set(index, v, 0, 0); }
  void BindInt(int index, int64_t v) override { Set(index, std::to_string(v), kInt8Oid, 0); }
  void BindBlob(int index, std::string_view v) override { Set(index, v, kByteaOid, 1); }

  Result<bool> Step() override;
  // Sends the statement (preparing it first when cached) and keeps its result.
  Result<bool> Execute();
  Violation violation() const override { return violation_; }
  void Reset() override {
    result_.reset();
    ran_ = false;
    row_ = 0;
    for (Param& p : params_) p = Param{};
    bind_error_.reset();
    read_error_.reset();
    violation_ = Violation::kNone;
  }

  std::string Text(int col) const override {
    if (!Readable(col) || PQgetisnull(result_.get(), row_, col)) return "";
    return std::string(PQgetvalue(result_.get(), row_, col),
                       static_cast<size_t>(PQgetlength(result_.get(), row_, col)));
  }
  int64_t Int(int col) const override;
  std::string Blob(int col) const override;
  bool IsNull(int col) const override {
    return !Readable(col) || PQgetisnull(result_.get(), row_, col) != 0;
  }

 private:
  struct Param {
    std::string value;
    Oid type = 0;  // 0: the server infers it from the statement (text parameters)
    int format = 0;
    bool set = false;  // unset parameters are NULL, as in SQLite
  };

  void Set(int index, std::string_view v, Oid type, int format) {
    if (index < 1 || index > static_cast<int>(params_.size())) {
      if (!bind_error_) {
        bind_error_ = Error(ErrorCode::kInternal, what_ + ": parameter " + std::to_string(index) +
                                                      " is out of range (the statement has " +
                                                      std::to_string(params_.size()) + ")");
      }
      return;
    }
    params_[index - 1] = Param{std::string(v), type, format, true};
  }

  // A row is current and col is one of its columns; else the read is a caller's bug, kept
  // for the next Step to report.
  bool Readable(int col) const {
    if (result_ && row_ < PQntuples(result_.get()) && col >= 0 && col < PQnfields(result_.get()))
      return true;
    if (!read_error_) {
      read_error_ = Error(ErrorCode::kInternal, what_ + ": column " + std::to_string(col) +
                                                    " read with no such column or row");
    }
    return false;
  }

  PgConnection* db_;
  std::string sql_;
  std::string what_;
  bool cached_;
  bool may_write_;  // MayWrite(sql_): outside a transaction it runs in a write transaction
  std::vector<Param> params_;
  std::optional<Error> bind_error_;
  mutable std::optional<Error> read_error_;
  Violation violation_ = Violation::kNone;
  ResultHandle result_;
  bool ran_ = false;
  int row_ = 0;
  // Cached statements: the server-side name, and the session and parameter types it was
  // prepared with (a statement bound with other types is prepared again).
  std::string name_;
  uint64_t prepared_session_ = 0;
  std::vector<Oid> prepared_types_;
};

Result<bool> PgStatement::Step() {
  if (read_error_) {
    Error e = *read_error_;
    read_error_.reset();
    return std::unexpected(e);
  }
  if (ran_) {
    if (result_ && row_ + 1 < PQntuples(result_.get())) {
      ++row_;
      return true;
    }
    if (result_) row_ = PQntuples(result_.get());
    return false;
  }
  ran_ = true;
  violation_ = Violation::kNone;
  if (bind_error_) return std::unexpected(*bind_error_);
  if (may_write_ && db_->OutsideTransaction()) {
    return db_->InOwnWriteTransaction([this] { return Execute(); });
  }
  return Execute();
}

Result<bool> PgStatement::Execute() {
  RETURN_IF_ERROR(db_->EnsureConnected(what_));

  const int n = static_cast<int>(params_.size());
  std::vector<const char*> values(n);
  std::vector<int> lengths(n), formats(n);
  std::vector<Oid> types(n);
  for (int i = 0; i < n; ++i) {
    const Param& p = params_[i];
    values[i] = p.set ? p.value.data() : nullptr;
    lengths[i] = static_cast<int>(p.value.size());
    formats[i] = p.format;
    types[i] = p.type;
  }
  PGresult* raw = nullptr;
  if (cached_) {
    if (prepared_session_ != db_->session() || types != prepared_types_) {
      // A statement prepared under an older name stays in the session unused (rare: only
      // when a call site binds other types than before).
      name_ = db_->NextStatementName();
      ResultHandle prepared(PQprepare(db_->conn(), name_.c_str(), sql_.c_str(), n, types.data()));
      RETURN_IF_ERROR(db_->Check(prepared.get(), what_, &violation_));
      prepared_session_ = db_->session();
      prepared_types_ = types;
    }
    raw = PQexecPrepared(db_->conn(), name_.c_str(), n, values.data(), lengths.data(),
                         formats.data(), /*resultFormat=*/0);
  } else {
    raw = PQexecParams(db_->conn(), sql_.c_str(), n, types.data(), values.data(), lengths.data(),
                       formats.data(), /*resultFormat=*/0);
  }
  result_.reset(raw);
  RETURN_IF_ERROR(db_->Check(result_.get(), what_, &violation_));
  row_ = 0;
  return PQntuples(result_.get()) > 0;
}

int64_t PgStatement::Int(int col) const {
  if (!Readable(col) || PQgetisnull(result_.get(), row_, col)) return 0;
  std::string_view text(PQgetvalue(result_.get(), row_, col),
                        static_cast<size_t>(PQgetlength(result_.get(), row_, col)));
  // A comparison is a boolean in PostgreSQL and 0/1 in SQLite.
  if (PQftype(result_.get(), col) == kBoolOid) return text == "t" ? 1 : 0;
  std::optional<int64_t> v = ParseInt(text);
  if (!v) {
    if (!read_error_) {
      read_error_ = Error(ErrorCode::kInternal, what_ + ": column " + std::to_string(col) +
                                                    " is not a 64-bit integer: '" +
                                                    std::string(text.substr(0, 40)) + "'");
    }
    return 0;
  }
  return *v;
}

std::string PgStatement::Blob(int col) const {
  if (!Readable(col) || PQgetisnull(result_.get(), row_, col)) return "";
  const char* text = PQgetvalue(result_.get(), row_, col);
  if (PQftype(result_.get(), col) != kByteaOid) return Text(col);
  size_t size = 0;
  unsigned char* bytes = PQunescapeBytea(reinterpret_cast<const unsigned char*>(text), &size);
  if (bytes == nullptr) {
    if (!read_error_) read_error_ = Error(ErrorCode::kInternal, what_ + ": cannot decode bytea");
    return "";
  }
  std::string out(reinterpret_cast<const char*>(bytes), size);
  PQfreemem(bytes);
  return out;
}

PgConnection::~PgConnection() {
  cache_.clear();  // statements hold a pointer to this connection
}

Result<std::unique_ptr<StatementImpl>> PgConnection::Prepare(std::string_view sql,
                                                             const std::string& what) {
  // Nothing goes to the server yet: errors in the SQL come from the first Step.
  int params = 0;
  std::string numbered = NumberParameters(sql, &params);
  return std::make_unique<PgStatement>(this, std::move(numbered), params, what, false);
}

Result<StatementImpl*> PgConnection::PrepareCached(const std::string& sql,
                                                   const std::string& what) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    int params = 0;
    std::string numbered = NumberParameters(sql, &params);
    it = cache_
             .emplace(sql,
                      std::make_unique<PgStatement>(this, std::move(numbered), params, what, true))
             .first;
  }
  it->second->set_what(what);
  return it->second.get();
}

void PgConnection::Release(StatementImpl* cached) {
  if (cached != nullptr) cached->Reset();
}

Status PgConnection::EnsureConnected(std::string_view what) {
  if (PQstatus(conn_.get()) == CONNECTION_OK) return OkStatus();
  if (depth_ > 0) {
    return MakeError(ErrorCode::kIoError,
                     std::string(what) + ": the connection to " + describe_ +
                         " was lost inside a transaction; retry",
                     /*retryable=*/true);
  }
  PQreset(conn_.get());
  ++session_;
  if (PQstatus(conn_.get()) != CONNECTION_OK) {
    return MakeError(ErrorCode::kIoError,
                     std::string(what) + ": reconnect to " + describe_ + ": " +
                         Trimmed(PQerrorMessage(conn_.get())),
                     /*retryable=*/true);
  }
  return OkStatus();
}

Status PgConnection::Check(const PGresult* res, std::string_view what, Violation* violation) {
  ExecStatusType st = res != nullptr ? PQresultStatus(res) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
    std::string_view cmd = PQcmdStatus(const_cast<PGresult*>(res));
    // As SQLite's changes(): only rows written by INSERT, UPDATE, DELETE (and MERGE) count.
    if (StartsWith(cmd, "INSERT") || StartsWith(cmd, "UPDATE") || StartsWith(cmd, "DELETE") ||
        StartsWith(cmd, "MERGE")) {
      changes_ = ParseInt(PQcmdTuples(const_cast<PGresult*>(res))).value_or(0);
    }
    return OkStatus();
  }
  const char* state = res != nullptr ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  const char* constraint =
      res != nullptr ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : nullptr;
  std::string server = res != nullptr && *PQresultErrorMessage(res) != '\0'
                           ? Trimmed(PQresultErrorMessage(res))
                           : Trimmed(PQerrorMessage(conn_.get()));
  if (st != PGRES_FATAL_ERROR && st != PGRES_NONFATAL_ERROR && server.empty()) {
    server = std::string("unexpected result ") + PQresStatus(st);
  }
  std::string msg = std::string(what) + ": " + server + StatementDetail(res);
  ErrorInfo info =
      ClassifySqlState(state != nullptr ? state : "", constraint != nullptr ? constraint : "",
                       PQstatus(conn_.get()) == CONNECTION_BAD);
  if (violation != nullptr) *violation = info.violation;
  if (info.code == ErrorCode::kCorruption) msg = "catalog database is damaged: " + msg;
  if (info.retryable && PQstatus(conn_.get()) == CONNECTION_BAD) {
    msg += " (the connection to " + describe_ + " is lost; retry)";
  }
  return std::unexpected(Error(info.code, std::move(msg), info.retryable));
}

Result<ResultHandle> PgConnection::Run(const char* sql, std::string_view what) {
  ResultHandle res(PQexec(conn_.get(), sql));
  RETURN_IF_ERROR(Check(res.get(), what));
  return res;
}

Status PgConnection::Exec(std::string_view sql, std::string_view what) {
  const std::string text(sql);
  auto run = [&]() -> Result<bool> {
    RETURN_IF_ERROR(EnsureConnected(what));
    RETURN_IF_ERROR(Run(text.c_str(), what));
    return true;
  };
  Result<bool> done = MayWrite(text) && OutsideTransaction() ? InOwnWriteTransaction(run) : run();
  if (!done) return std::unexpected(done.error());
  return OkStatus();
}

Status PgConnection::Begin(bool write) {
  const PGTransactionStatusType ts = PQtransactionStatus(conn_.get());
  if (ts == PQTRANS_IDLE || ts == PQTRANS_UNKNOWN) {
    depth_ = 0;
    RETURN_IF_ERROR(EnsureConnected("begin transaction"));
    if (write) {
      // One round trip: the lock, and whether the schema has the data version to bump (not
      // before MigratePostgres made it).
      static const std::string kBeginWrite = "BEGIN; SELECT pg_advisory_xact_lock(" +
                                             std::to_string(kPostgresWriteLockKey) +
                                             "), to_regclass('snapvol_data_version') IS NOT NULL";
      Result<ResultHandle> r =
          Run(kBeginWrite.c_str(), "begin write transaction (wait for the write lock)");
      if (!r) {
        if (PQtransactionStatus(conn_.get()) != PQTRANS_IDLE)
          PQclear(PQexec(conn_.get(), "ROLLBACK"));
        return std::unexpected(r.error());
      }
      bump_version_ = PQntuples(r->get()) == 1 && std::strcmp(PQgetvalue(r->get(), 0, 1), "t") == 0;
    } else {
      RETURN_IF_ERROR(
          Run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "begin read transaction"));
      bump_version_ = false;
    }
    depth_ = 1;
    write_ = write;
    return OkStatus();
  }
  if (depth_ == 0) {
    return Internal("begin transaction on " + describe_ +
                    ": the connection is in a transaction that Begin did not start");
  }
  if (write && !write_) {
    return Internal("begin write transaction on " + describe_ + ": inside a read transaction");
  }
  RETURN_IF_ERROR(Run("SAVEPOINT nested", "begin nested transaction"));
  ++depth_;
  return OkStatus();
}

Status PgConnection::Commit() {
  if (depth_ == 0) return Internal("commit transaction on " + describe_ + ": no transaction");
  const PGTransactionStatusType ts = PQtransactionStatus(conn_.get());
  if (ts != PQTRANS_INTRANS) {
    // PostgreSQL answers COMMIT of a failed transaction with a silent ROLLBACK: the work
    // would be lost without an error.
    if (depth_ == 1) Rollback();
    return MakeError(ErrorCode::kIoError,
                     "commit transaction on " + describe_ +
                         ": it was rolled back by an error (or the connection was lost)",
                     /*retryable=*/true);
  }
  if (depth_ > 1) {
    RETURN_IF_ERROR(Run("RELEASE SAVEPOINT nested", "commit nested transaction"));
    --depth_;
    return OkStatus();
  }
  if (write_ && bump_version_) {
    Result<ResultHandle> bumped = Run("UPDATE snapvol_data_version SET version = version + 1",
                                      "commit transaction: bump the data version");
    if (!bumped) {
      Rollback();
      return std::unexpected(bumped.error());
    }
  }
  Result<ResultHandle> done = Run("COMMIT", "commit transaction");
  depth_ = 0;
  if (!done) return std::unexpected(done.error());
  if (std::string_view(PQcmdStatus(done->get())) != "COMMIT") {
    return MakeError(ErrorCode::kIoError,
                     "commit transaction on " + describe_ + ": the server rolled it back",
                     /*retryable=*/true);
  }
  return OkStatus();
}

void PgConnection::Rollback() noexcept {
  if (depth_ == 0) return;
  const PGTransactionStatusType ts = PQtransactionStatus(conn_.get());
  if (ts == PQTRANS_IDLE || ts == PQTRANS_UNKNOWN) {  // ended by the server or a lost connection
    depth_ = 0;
    return;
  }
  if (depth_ > 1) {
    // Allowed in a failed transaction, and makes the outer one usable again.
    ResultHandle res(PQexec(conn_.get(), "ROLLBACK TO SAVEPOINT nested; RELEASE SAVEPOINT nested"));
    if (res && PQresultStatus(res.get()) == PGRES_COMMAND_OK) {
      --depth_;
      return;
    }
  }
  PQclear(PQexec(conn_.get(), "ROLLBACK"));
  depth_ = 0;
}

Result<bool> PgConnection::InOwnWriteTransaction(const std::function<Result<bool>()>& write) {
  RETURN_IF_ERROR(Begin(/*write=*/true));
  Result<bool> done = write();
  if (!done) {
    Rollback();
    return done;
  }
  const int64_t changes = changes_;
  Status committed = Commit();
  changes_ = changes;
  if (!committed) return std::unexpected(committed.error());
  return done;
}

Result<int64_t> PgConnection::DataVersion() {
  const char* what = "read the data version";
  RETURN_IF_ERROR(EnsureConnected(what));
  ASSIGN_OR_RETURN(ResultHandle res, Run("SELECT version FROM snapvol_data_version", what));
  std::optional<int64_t> v;
  if (PQntuples(res.get()) == 1) v = ParseInt(PQgetvalue(res.get(), 0, 0));
  if (!v) return Internal(std::string(what) + " on " + describe_ + ": not one integer row");
  return *v;
}

}  // namespace

Result<std::unique_ptr<Connection>> OpenPostgres(const std::string& url) {
  const std::string shown = RedactPassword(url);
  const std::string what = "open catalog database " + shown;
  char* parse_error = nullptr;
  PQconninfoOption* options = PQconninfoParse(url.c_str(), &parse_error);
  if (options == nullptr) {
    std::string detail = parse_error != nullptr ? Trimmed(parse_error) : "out of memory";
    if (parse_error != nullptr) PQfreemem(parse_error);
    return InvalidArgument(what + ": " + detail);
  }
  std::vector<std::pair<std::string, std::string>> params;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val != nullptr && *o->val != '\0') params.emplace_back(o->keyword, o->val);
  }
  PQconninfoFree(options);

  auto find = [&](std::string_view key) -> std::string* {
    for (auto& [k, v] : params) {
      if (k == key) return &v;
    }
    return nullptr;
  };
  // Bounded by default: a server that does not answer, a peer that vanished and a statement
  // that waits (e.g. for the write lock) all end in an error instead of a hang.
  const std::pair<const char*, const char*> kDefaults[] = {
      {"connect_timeout", "10"},       {"keepalives", "1"},       {"keepalives_idle", "30"},
      {"keepalives_interval", "10"},   {"keepalives_count", "3"}, {"client_encoding", "UTF8"},
      {"application_name", "snapvol"},
  };
  for (const auto& [key, value] : kDefaults) {
    if (find(key) == nullptr) params.emplace_back(key, value);
  }
  const std::string timeout = "-c statement_timeout=" + std::to_string(kPostgresStatementTimeoutMs);
  if (std::string* opts = find("options")) {
    if (opts->find("statement_timeout") == std::string::npos) *opts += " " + timeout;
  } else {
    params.emplace_back("options", timeout);
  }

  std::vector<const char*> keys, values;
  for (const auto& [k, v] : params) {
    keys.push_back(k.c_str());
    values.push_back(v.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  ConnHandle conn(PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/0));
  if (conn == nullptr) return MakeError(ErrorCode::kIoError, what + ": out of memory");
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    std::string detail = Trimmed(PQerrorMessage(conn.get()));
    if (detail.find("authentication failed") != std::string::npos ||
        detail.find("no password supplied") != std::string::npos) {
      return MakeError(ErrorCode::kUnauthorized, what + ": " + detail);
    }
    return MakeError(ErrorCode::kIoError, what + ": " + detail, /*retryable=*/true);
  }
  // NOTICEs (e.g. "relation already exists, skipping") are not errors and go nowhere.
  PQsetNoticeProcessor(
      conn.get(), [](void*, const char*) {}, nullptr);
  return std::make_unique<PgConnection>(std::move(conn), shown);
}

}  // namespace snapvol::catalog_internal
