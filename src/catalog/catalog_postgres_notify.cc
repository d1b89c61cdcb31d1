#include "catalog/catalog_postgres_notify.h"

#include <libpq-fe.h>
#include <poll.h>

#include <cerrno>
#include <chrono>
#include <string>

#include "catalog/catalog_postgres.h"

namespace snapvol::catalog_internal {
namespace {

std::string Trim(const char* message) {
  std::string s = message != nullptr ? message : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

class PgListener final : public PostgresListener {
 public:
  PgListener(PGconn* conn, std::string what) : conn_(conn), what_(std::move(what)) {}
  ~PgListener() override { PQfinish(conn_); }
  PgListener(const PgListener&) = delete;
  PgListener& operator=(const PgListener&) = delete;

  Result<bool> Wait(int64_t timeout_ms) override {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      if (PQconsumeInput(conn_) == 0)
        return MakeError(ErrorCode::kIoError, what_ + ": " + Trim(PQerrorMessage(conn_)), /*retryable=*/true);
      bool got = false;
      while (PGnotify* n = PQnotifies(conn_)) {
        got = true;
        PQfreemem(n);
      }
      if (got) return true;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{PQsocket(conn_), POLLIN, 0};
      if (p.fd < 0) return MakeError(ErrorCode::kIoError, what_ + ": the connection is closed", true);
      if (::poll(&p, 1, static_cast<int>(left.count())) < 0 && errno != EINTR)
        return MakeError(ErrorCode::kIoError, what_ + ": poll failed (errno " + std::to_string(errno) + ")", true);
    }
  }

 private:
  PGconn* conn_;
  std::string what_;
};

}  // namespace

Result<std::unique_ptr<PostgresListener>> OpenPostgresListener(const std::string& url, const std::string& channel) {
  const std::string what = "listen on " + channel + " at " + RedactPassword(url);
  for (char c : channel)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
      return InvalidArgument(what + ": not a plain channel name");
  const char* keys[] = {"dbname", "connect_timeout", "application_name", nullptr};
  const char* values[] = {url.c_str(), "10", "snapvol-listener", nullptr};
  // expand_dbname: the URL's own settings win over the defaults before it.
  PGconn* conn = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (conn == nullptr) return MakeError(ErrorCode::kIoError, what + ": out of memory");
  auto listener = std::make_unique<PgListener>(conn, what);
  if (PQstatus(conn) != CONNECTION_OK)
    return MakeError(ErrorCode::kIoError, what + ": " + Trim(PQerrorMessage(conn)), /*retryable=*/true);
  PGresult* res = PQexec(conn, ("LISTEN " + channel).c_str());
  const bool ok = res != nullptr && PQresultStatus(res) == PGRES_COMMAND_OK;
  PQclear(res);
  if (!ok) return MakeError(ErrorCode::kIoError, what + ": " + Trim(PQerrorMessage(conn)), /*retryable=*/true);
  return listener;
}

}  // namespace snapvol::catalog_internal
