// Catalog: the hosts of the service (hosts), each registered by its snapvold with a heartbeat
// (docs/multi-host.md part 2).
#include <mutex>
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

std::string HostStateAt(const HostRecord& host, int64_t now_ms, int64_t timeout_ms) {
  if (host.heartbeat_ms == 0) return "stopped";
  return now_ms - host.heartbeat_ms <= timeout_ms ? "up" : "unreachable";
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
    return st.Run();
  });
}

Status Catalog::Heartbeat(const std::string& host_id, int64_t now_ms) {
  if (now_ms < 0) return InvalidArgument("host " + host_id + ": a heartbeat time cannot be negative");
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
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

Result<HostRecord> Catalog::GetHost(const std::string& host_id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_, std::string("SELECT ") + kHostColumns +
                                                              " FROM hosts WHERE host_id = ?",
                                                    "read host " + host_id));
  st.Bind(host_id);
  ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return NotFound("host " + host_id + " is not registered");
  return ReadHost(st);
}

}  // namespace snapvol
