// `snapvol host list`: the snapvold hosts registered in the catalog (docs/multi-host.md part 2)
// with their last heartbeat and state (up / unreachable / stopped); `snapvol host leases`: the
// cluster leases, which host holds each once-per-cluster duty (part 4); `snapvol host evacuate`:
// a host that is not up has its managed volumes restored elsewhere (part 5).
// Thread-safety: call from one thread (the CLI's).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <ostream>

#include "catalog/catalog.h"
#include "cli/api_client.h"
#include "cli/cli_support.h"

namespace snapvol {

// Prints every host as a table (or JSON: {"Hosts": [...]}), its state judged at now_ms with
// timeout_ms (HostStateAt).
Status HostListCommand(Catalog* catalog, int64_t now_ms, int64_t timeout_ms, bool json, std::ostream& out);

// Prints every cluster lease as a table (or JSON: {"Leases": [...]}) with its holder's host
// name when the holder is a registered host, its state judged at now_ms (ClusterLeaseStateAt).
Status HostLeasesCommand(Catalog* catalog, int64_t now_ms, bool json, std::ostream& out);

// `snapvol host evacuate HOST-ID`: asks the snapvold at api.endpoint (POST
// /api/v1/hosts/HOST-ID/evacuate, administrators) to restore the latest completed snapshot of
// each managed volume of host_id, a host that is not up, as a new managed volume there (part 5),
// and prints what it did per volume (a table, or the answer's JSON). An answer that is not 200,
// or any volume that failed → an error saying so.
Status HostEvacuateCommand(const ApiClientOptions& api, const std::string& host_id, bool dry_run, bool json,
                           std::ostream& out);

// Adds the `host` command group; its callbacks set *action (run after parsing).
void AddHostCommands(CLI::App& app, cli::Globals& g, std::function<void()>* action);

}  // namespace snapvol
