// DataDir's catalog settings (DIR/catalog.json), the wording of PostgreSQL catalog errors, and
// the data dir's lock (DIR/lock): see data_dir.h.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/data_dir.h"
#include "core/file_util.h"

namespace snapvol {
namespace {

using json = nlohmann::json;

constexpr char kCatalogJson[] = "/catalog.json";
constexpr char kCatalogDb[] = "/catalog.db";
constexpr char kLockFile[] = "/lock";

// Opens (creating it 0600) and flocks DIR/lock; kConflict when another process holds it in a
// mode that excludes `how`.
Result<UniqueFd> LockDataDir(const std::string& dir, int how) {
  const std::string path = dir + kLockFile;
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return std::unexpected(PosixError("open " + path, errno));
  UniqueFd owned(fd);
  if (::flock(owned.get(), how | LOCK_NB) != 0) {
    int err = errno;
    if (err != EWOULDBLOCK) return std::unexpected(PosixError("lock " + path, err));
    if (how == LOCK_EX)
      return Conflict(
          dir + " is in use (snapvold or another snapvol command holds " + path +
          "); stop snapvold and wait for other commands to finish, then run this again");
    return Conflict(dir +
                    " is held by a command that must run alone (snapvol catalog migrate-to holds " +
                    path + "); wait for it to finish");
  }
  return owned;
}

}  // namespace

Result<std::string> DataDir::CatalogLocation(const std::string& dir) {
  const std::string path = dir + kCatalogJson;
  if (!PathExists(path)) return dir + kCatalogDb;
  ASSIGN_OR_RETURN(auto raw, ReadWholeFile(path));
  json j = json::parse(raw.begin(), raw.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || j.value("type", "") != "postgresql" ||
      !j.contains("url") || !j["url"].is_string() ||
      !Catalog::IsPostgresUrl(j["url"].get<std::string>()))
    return Corruption(
        path +
        " is not a catalog config this snapvol understands (want {\"type\": \"postgresql\", "
        "\"url\": \"postgresql://…\"})");
  return j["url"].get<std::string>();
}

Status DataDir::WriteCatalogUrl(const std::string& dir, const std::string& url) {
  if (!Catalog::IsPostgresUrl(url))
    return InvalidArgument("the catalog must be a postgresql:// (or postgres://) URL");
  std::string text = json{{"type", "postgresql"}, {"url", url}}.dump(2) + "\n";
  return WriteFileAtomic(dir + kCatalogJson, AsBytes(text), 0600);
}

Error DataDir::ExplainCatalogError(const Error& raw) {
  // libpq's own words name the host and port (never the password: messages are built from
  // the URL without it); what the operator should do comes first. Its hints come on lines of
  // their own, indented: one line here, as every CLI error is.
  std::string m;
  for (char c : raw.message()) {
    if (c == '\n' || c == '\t' || c == '\r') {
      if (!m.empty() && m.back() != ' ') m += ' ';
    } else {
      m += c;
    }
  }
  while (!m.empty() && m.back() == ' ') m.pop_back();
  const Error e(raw.code(), m, raw.retryable());
  if (e.code() == ErrorCode::kUnauthorized)
    return Error(ErrorCode::kUnauthorized,
                 "the catalog's PostgreSQL server refused the credentials (wrong user or "
                 "password in the URL, PGPASSFILE or PGPASSWORD): " +
                     m);
  if (m.find("database \"") != std::string::npos && m.find("does not exist") != std::string::npos)
    return Error(ErrorCode::kNotFound,
                 "the catalog's PostgreSQL database does not exist; create it first (e.g. createdb "
                 "-O USER NAME): " +
                     m);
  if (e.code() == ErrorCode::kIoError && e.retryable() &&
      (m.find("connection to server") != std::string::npos ||
       m.find("could not") != std::string::npos || m.find("timeout") != std::string::npos))
    return Error(ErrorCode::kIoError,
                 "the catalog's PostgreSQL server is unreachable (retry once it is up): " + m,
                 /*retryable=*/true);
  return e;
}

Result<std::unique_ptr<Catalog>> DataDir::OpenCatalog(const std::string& location) {
  auto catalog = Catalog::Open(location);
  if (catalog || !Catalog::IsPostgresUrl(location)) return catalog;
  return std::unexpected(ExplainCatalogError(catalog.error()));
}

Result<UniqueFd> DataDir::LockExclusive(const std::string& dir) {
  return LockDataDir(dir, LOCK_EX);
}

Result<UniqueFd> DataDir::LockShared(const std::string& dir) { return LockDataDir(dir, LOCK_SH); }

}  // namespace snapvol
