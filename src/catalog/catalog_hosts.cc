// Catalog: the hosts of the service (hosts), each registered by its snapvold with a heartbeat
// (docs/multi-host.md part 2), and which host owns each volume and instance (part 3).
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/catalog_sql.h"

namespace snapvol {
using catalog_internal::Changes;
using catalog_internal::Statement;

namespace {

constexpr char kHostColumns[] = "host_id, name, api_url, nbd_endpoint, version, started_ms, heartbeat_ms";

HostRecord ReadHost(Statement& st) {
  return HostRecord{st.Text(0), st.Text(1), st.Text(2), st.Text(3), st.Text(4), st.Int(5), st.Int(6)};
}

}  // namespace

std::string NbdExportUri(const std::string& nbd_endpoint, const std::string& export_name) {
  std::istringstream words(nbd_endpoint);
  std::string word, unix_path, tcp;
  while (words >> word) {
    if (word.starts_with("unix:")) unix_path = word.substr(5);
    if (word.starts_with("tcp:")) tcp = word.substr(4);
  }
  if (!tcp.empty()) return "nbds://" + tcp + "/" + export_name;
  if (!unix_path.empty()) return "nbd+unix:///" + export_name + "?socket=" + unix_path;
  return "";
}

std::string HostStateAt(const HostRecord& host, int64_t now_ms, int64_t timeout_ms) {
  if (host.heartbeat_ms == 0) return "stopped";
  return now_ms - host.heartbeat_ms <= timeout_ms ? "up" : "unreachable";
}

std::string VolumeHostState(const std::vector<HostRecord>& hosts, const std::string& host_id, int64_t now_ms,
                            int64_t timeout_ms) {
  if (host_id.empty()) return "";
  for (const HostRecord& h : hosts)
    if (h.host_id == host_id) return HostStateAt(h, now_ms, timeout_ms);
  return "unregistered";
}

Status Catalog::UpsertHost(const HostRecord& h) {
  if (h.host_id.empty()) return InvalidArgument("a host needs an id");
  if (h.heartbeat_ms < 0) return InvalidArgument("host " + h.host_id + ": a heartbeat time cannot be negative");
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(Statement st,
                     Statement::Prepare(*db_,
                                        std::string("INSERT INTO hosts (") + kHostColumns +
                                            ") VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (host_id) DO UPDATE SET"
                                            " name = excluded.name, api_url = excluded.api_url,"
                                            " nbd_endpoint = excluded.nbd_endpoint, version = excluded.version,"
                                            " started_ms = excluded.started_ms, heartbeat_ms = excluded.heartbeat_ms",
                                        "register host " + h.host_id));
    st.Bind(h.host_id).Bind(h.name).Bind(h.api_url).Bind(h.nbd_endpoint).Bind(h.version);
    st.Bind(h.started_ms).Bind(h.heartbeat_ms);
    RETURN_IF_ERROR(st.Run());
    return SyncHostTags("v.host_id = ?", h.host_id);
  });
}

Status Catalog::Heartbeat(const std::string& host_id, int64_t now_ms) {
  if (now_ms < 0) return InvalidArgument("host " + host_id + ": a heartbeat time cannot be negative");
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    // A heartbeat lost in a crash of the database server is followed by the next one within
    // heartbeat_ms, well inside the host timeout: no host is judged dead for it (scale.md).
    RETURN_IF_ERROR(db_->RelaxCommitDurability());
    ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_, "UPDATE hosts SET heartbeat_ms = ? WHERE host_id = ?",
                                                      "heartbeat of host " + host_id));
    st.Bind(now_ms).Bind(host_id);
    RETURN_IF_ERROR(st.Run());
    if (Changes(*db_) == 0) return NotFound("host " + host_id + " is not registered");
    return OkStatus();
  });
}

Result<std::vector<HostRecord>> Catalog::ListHosts() {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_, std::string("SELECT ") + kHostColumns +
                                                              " FROM hosts ORDER BY host_id",
                                                    "list hosts"));
  std::vector<HostRecord> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return out;
    out.push_back(ReadHost(st));
  }
}

namespace catalog_internal {

Result<std::optional<HostRecord>> FindHost(Connection& db, const std::string& host_id) {
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db, std::string("SELECT ") + kHostColumns +
                                                            " FROM hosts WHERE host_id = ?",
                                                    "read host " + host_id));
  st.Bind(host_id);
  ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return std::optional<HostRecord>{};
  return std::optional<HostRecord>{ReadHost(st)};
}

}  // namespace catalog_internal

Result<HostRecord> Catalog::GetHost(const std::string& host_id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(std::optional<HostRecord> found, catalog_internal::FindHost(*db_, host_id));
  if (!found) return NotFound("host " + host_id + " is not registered");
  return *found;
}

void Catalog::SetLocalHost(const std::string& host_id) {
  std::lock_guard lock(mu_);
  local_host_ = host_id;
}

std::string Catalog::LocalHost() const {
  std::lock_guard lock(mu_);
  return local_host_;
}

std::string Catalog::HostElsewhere(const std::string& volume_host) const {
  const std::string local = LocalHost();
  if (local.empty() || volume_host.empty() || volume_host == local) return "";
  return volume_host;
}

namespace catalog_internal {

std::string DescribeHostRecord(const HostRecord& host) {
  std::string out = host.name.empty() ? host.host_id : host.name + " (" + host.host_id;
  if (!host.api_url.empty()) out += (host.name.empty() ? " (API " : ", API ") + host.api_url + ")";
  else if (!host.name.empty()) out += ")";
  return out;
}

}  // namespace catalog_internal

std::string Catalog::DescribeHost(const std::string& host_id) {
  auto host = GetHost(host_id);
  if (!host) return host_id;
  return catalog_internal::DescribeHostRecord(*host);
}

Status Catalog::SyncHostTags(const char* where, const std::string& value) {
  const std::string what = "write where volumes live (" + value + ")";
  struct Where {
    std::string volume_id, host, nbd;
  };
  std::vector<Where> found;
  {
    ASSIGN_OR_RETURN(Statement st,
                     Statement::Prepare(*db_,
                                        std::string("SELECT v.volume_id, v.host_id, v.managed, h.name, h.nbd_endpoint"
                                                    " FROM volumes v LEFT JOIN hosts h ON h.host_id = v.host_id"
                                                    " WHERE v.host_id IS NOT NULL AND ") +
                                            where + " ORDER BY v.volume_id",
                                        what));
    st.Bind(value);
    for (;;) {
      ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      Where w{st.Text(0), st.Text(1), ""};
      // A host without a row (a CLI process before its snapvold registered) is named by its id.
      if (!st.IsNull(3) && !st.Text(3).empty()) w.host = st.Text(3);
      if (st.Int(2) != 0 && !st.IsNull(4)) w.nbd = NbdExportUri(st.Text(4), w.volume_id);
      found.push_back(std::move(w));
    }
  }
  ASSIGN_OR_RETURN(Statement put, Statement::Prepare(*db_,
                                                     "INSERT INTO tags (resource_id, key, value) VALUES (?, ?, ?)"
                                                     " ON CONFLICT (resource_id, key) DO UPDATE SET value = excluded.value",
                                                     what));
  ASSIGN_OR_RETURN(Statement drop, Statement::Prepare(*db_, "DELETE FROM tags WHERE resource_id = ? AND key = ?", what));
  for (const Where& w : found) {
    put.Reset();
    put.Bind(w.volume_id).Bind(std::string(kHostTag)).Bind(ClipTagValue(w.host));
    RETURN_IF_ERROR(put.Run());
    if (w.nbd.empty()) {
      drop.Reset();
      drop.Bind(w.volume_id).Bind(std::string(kNbdTag));
      RETURN_IF_ERROR(drop.Run());
    } else {
      put.Reset();
      put.Bind(w.volume_id).Bind(std::string(kNbdTag)).Bind(ClipTagValue(w.nbd));
      RETURN_IF_ERROR(put.Run());
    }
  }
  return OkStatus();
}

Result<size_t> Catalog::ClaimOwnerless(const std::string& host_id) {
  if (host_id.empty()) return InvalidArgument("claim volumes and instances without a host: no host id");
  const std::string what = "give volumes and instances without a host to " + host_id;
  std::lock_guard lock(mu_);
  // Read first: a catalog whose rows all have a host (every open after the first) writes nothing.
  {
    ASSIGN_OR_RETURN(Statement any, Statement::Prepare(*db_,
                                                       "SELECT 1 FROM volumes WHERE host_id IS NULL"
                                                       " UNION ALL SELECT 1 FROM instances WHERE host_id IS NULL",
                                                       what));
    ASSIGN_OR_RETURN(bool ownerless, any.Step());
    if (!ownerless) return size_t{0};
  }
  size_t claimed = 0;
  Status done = InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(Statement vols, Statement::Prepare(*db_, "UPDATE volumes SET host_id = ? WHERE host_id IS NULL", what));
    vols.Bind(host_id);
    RETURN_IF_ERROR(vols.Run());
    claimed += static_cast<size_t>(Changes(*db_));
    ASSIGN_OR_RETURN(Statement insts,
                     Statement::Prepare(*db_, "UPDATE instances SET host_id = ? WHERE host_id IS NULL", what));
    insts.Bind(host_id);
    RETURN_IF_ERROR(insts.Run());
    claimed += static_cast<size_t>(Changes(*db_));
    return SyncHostTags("v.host_id = ?", host_id);
  });
  if (!done) return std::unexpected(done.error());
  return claimed;
}

}  // namespace snapvol
