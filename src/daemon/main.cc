// snapvold: the snapvol daemon. Serves the EC2 Query API (SigV4-signed, IAM-authorised) over
// HTTP, runs snapshots in the background, and keeps everything in one data dir.
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "api/accounts.h"
#include "cli/data_dir.h"
#include "cli/host_sweep.h"
#include "daemon/daemon_flags.h"
#include "engine/qemu_cut_driver.h"
#include "daemon/guarded_http_server.h"
#include "daemon/daemon_log.h"
#include "daemon/host_heartbeat.h"
#include "daemon/lease_keeper.h"
#include "daemon/snapshot_claimer.h"
#include "daemon/http_routes.h"
#include "daemon/metrics_endpoint.h"
#include "daemon/maintenance_flags.h"
#include "daemon/managed_roots.h"
#include "daemon/nbd_exports.h"
#include "daemon/settings_file.h"
#include "daemon/notifications.h"
#include "core/allocator.h"
#include "core/fair_gate.h"
#include "core/process_holder.h"
#include "core/file_util.h"
#include "api/ec2_service.h"
#include "engine/rollback_tasks.h"
#include "engine/registered_sources.h"
#include "engine/snapshot_jobs.h"
#include "engine/usage_accounting.h"
#include "core/ids.h"
#include "lifecycle/maintenance.h"
#include "lifecycle/scheduler.h"
#include "managed/managed_volume.h"
#include "nbd/nbd_server.h"

namespace snapvol {
namespace {

// Creates the administrator account and its key on first start; writes admin-credentials.
Status Bootstrap(DataDir* dir, Accounts* accounts, const std::string& endpoint) {
  auto all = dir->catalog()->ListAccounts();
  if (!all) return std::unexpected(all.error());
  for (const auto& a : *all)
    if (a.is_admin) return OkStatus();
  ASSIGN_OR_RETURN(AccountRecord admin, accounts->CreateAccount("admin", true));
  ASSIGN_OR_RETURN(NewAccessKey key, accounts->CreateKey(admin.account_id, "admin"));
  std::string path = dir->path() + "/admin-credentials";
  RETURN_IF_ERROR(WriteFileAtomic(path, AsBytes(Accounts::CredentialsProfile("snapvol-admin", key)), 0600));
  std::cerr << "created the administrator account " << admin.account_id << "; its key is in " << path
            << " (AWS shared-credentials format, profile snapvol-admin)\n"
            << "point the AWS CLI at this service:\n"
            << "  export AWS_SHARED_CREDENTIALS_FILE=" << path << " AWS_PROFILE=snapvol-admin AWS_DEFAULT_REGION=us-east-1\n"
            << "  aws --endpoint-url " << endpoint << " ec2 describe-snapshots --owner-ids self\n";
  return OkStatus();
}

// Listens again on the server's socket with the system's largest backlog. Checks first that
// `fd` is still a listening socket on `port`: the library may have closed it and the number
// may belong to something else now.
Status RaiseListenBacklog(int fd, int port) {
  int accepting = 0;
  socklen_t len = sizeof accepting;
  sockaddr_storage addr{};
  socklen_t alen = sizeof addr;
  if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0 || !accepting ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &alen) != 0) {
    return Internal("cannot find the HTTP server's listening socket to raise its backlog");
  }
  int bound = addr.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
                                         : ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  if (bound != port) return Internal("the HTTP server's listening socket is not on port " + std::to_string(port));
  if (listen(fd, SOMAXCONN) != 0) return std::unexpected(PosixError("listen", errno));
  return OkStatus();
}

int Main(int argc, char** argv) {
  // Everything snapvold writes (data dir, catalog and its WAL, store objects, volumes, logs,
  // credentials) is private to its owner: it holds every team's data and keys.
  ::umask(077);
  CLI::App app{"snapvold: the snapvol service (EC2 Query API for volume snapshots)"};
  DaemonFlags f;
  AddDaemonFlags(app, &f);
  // Every flag may also be set in a TOML file: `listen = "127.0.0.1:8787"`, `tls-cert = "…"`.
  // Flags on the command line win over the file.
  app.set_config("--config", "", "TOML file with the same settings as the flags (e.g. listen = \"…\")");
  app.allow_config_extras(false);  // a misspelt setting is an error, not silently ignored
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (f.print_config) {
    std::fputs(CommentedSettings(app, "Every setting is shown commented out (#name = value) with its default;\n"
                                      "remove the # to set it. Flags on the command line win over this file.")
                   .c_str(),
               stdout);
    return 0;
  }
  if (f.console_dir.empty()) f.console_dir = DefaultConsoleDir(SNAPVOL_DEFAULT_CONSOLE_DIR);
  auto fail = [](const std::string& m) {
    std::fprintf(stderr, "snapvold: error: %s\n", m.c_str());
    return 1;
  };
  if (f.data_dir.empty()) return fail("no data dir: pass --data-dir DIR or set SNAPVOL_DATA_DIR");
  auto colon = f.listen.rfind(':');
  if (colon == std::string::npos) return fail("--listen must be HOST:PORT");
  std::string host = f.listen.substr(0, colon);
  int port = std::atoi(f.listen.substr(colon + 1).c_str());
  if (f.tls_cert.empty() != f.tls_key.empty()) return fail("--tls-cert and --tls-key go together");
  bool tls = !f.tls_cert.empty();
  bool loopback = host == "127.0.0.1" || host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
  if (!tls && !loopback && !f.insecure_http)
    return fail("refusing plain HTTP on " + host + ": signed requests would cross the network in clear;"
                " give --tls-cert/--tls-key (or --insecure-http)");
  if (tls && (!PathExists(f.tls_cert) || !PathExists(f.tls_key)))
    return fail("cannot read the TLS certificate or key");
  const AdvertiseFlags advertise{f.advertise_api, f.advertise_nbd};
  if (auto st = CheckAdvertiseFlags(advertise, f.nbd_listen); !st) return fail(st.error().message());
  if (auto st = MetricsEndpoint::Check({f.metrics_settings, {}, f.tls_cert, f.tls_key, f.insecure_http}); !st)
    return fail(st.error().message());
  int default_time_min = -1;
  if (f.default_time.size() == 5 && f.default_time[2] == ':' && std::isdigit(f.default_time[0]) &&
      std::isdigit(f.default_time[1]) && std::isdigit(f.default_time[3]) && std::isdigit(f.default_time[4])) {
    int h = std::stoi(f.default_time.substr(0, 2)), m = std::stoi(f.default_time.substr(3));
    if (h < 24 && m < 60) default_time_min = h * 60 + m;
  }
  if (default_time_min < 0) return fail("--default-time must be hh:mm (UTC), e.g. 02:00");
  auto notifications = DaemonNotifications::Create(f.notify_flags, f.data_dir, Log);
  if (!notifications) return fail(notifications.error().message());
  auto maintenance_options = MaintenanceOptionsFrom(f.maintenance_flags, (*notifications)->sink(), f.data_dir);
  if (!maintenance_options) return fail(maintenance_options.error().message());
  const int64_t lease_renew_ms = static_cast<int64_t>(f.lease_renew_s * 1000);
  const int64_t lease_ttl_ms = static_cast<int64_t>(f.lease_ttl_s * 1000);
  if (auto st = ValidateLeaseTimes(lease_renew_ms, lease_ttl_ms); !st) return fail(st.error().message());
  const int64_t host_timeout_ms = static_cast<int64_t>(f.host_timeout_s * 1000);
  if (f.host_timeout_s <= f.host_heartbeat_s)
    return fail("--host-timeout-seconds (" + std::to_string(f.host_timeout_s) +
                ") must be more than --host-heartbeat-seconds (" + std::to_string(f.host_heartbeat_s) +
                "), or a host that is up would count as unreachable between two heartbeats");
  if (f.restore_dir.empty()) f.restore_dir = f.data_dir + "/volumes";
  if (f.nbd_socket.empty()) f.nbd_socket = f.data_dir + "/nbd.sock";
  // Before anything is created in it: a data dir left open to other users is closed first
  // (walked only when DIR itself is open; Init's own call then finds it 0700 and is cheap).
  auto privacy = DataDir::MakePrivate(f.data_dir);
  if (!privacy) return fail(privacy.error().message());
  if (privacy->tightened || privacy->linked)
    Log({{"event", "data_dir_tightened"}, {"paths", privacy->tightened}, {"linked_left", privacy->linked},
         {"message", privacy->Message(f.data_dir)}});
  if (auto st = MakeDirs(f.restore_dir, 0700); !st) return fail(st.error().message());

  if (!DataDir::IsInitialised(f.data_dir)) {
    auto init = DataDir::Init(f.data_dir, {});
    if (!init) return fail(init.error().message());
  }
  // Signals go to one thread that stops the server; block them before any thread starts.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGHUP);  // reopens the audit log (logrotate's postrotate), see below
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  auto dir = DataDir::Open(f.data_dir, /*reset_damaged_catalog=*/false, host_timeout_ms);
  if (!dir) return fail(dir.error().message());
  if (auto st = CheckMaintenanceFlagsForStore(f.maintenance_flags, (*dir)->repo()->format()); !st)
    return fail(st.error().message());
  auto seal = (*dir)->SecretsKey();
  if (!seal) return fail(seal.error().message());
  Accounts accounts((*dir)->catalog(), *seal);
  // Recorded where `snapvol snapshot delete` reads it, so both apply the same default rule.
  if (auto st = (*dir)->catalog()->SetRecycleBinDefaultRetentionDays(f.bin_default_days); !st)
    return fail(st.error().message());

  HttpLimits http_limits;
  http_limits.max_connections_per_client = f.max_per_client ? f.max_per_client : std::max<size_t>(1, f.http_threads / 2);
  http_limits.header_timeout = std::chrono::milliseconds(static_cast<int64_t>(f.header_timeout_s * 1000));
  http_limits.on_limit = [](const std::string& event, const std::string& client, size_t count) {
    Log({{"event", event}, {"remote", client}, {"connections", count}});
  };
  std::unique_ptr<httplib::Server> server;
  if (tls) {
    auto ssl = std::make_unique<GuardedServer<httplib::SSLServer>>(http_limits, f.tls_cert.c_str(), f.tls_key.c_str());
    if (!ssl->is_valid()) return fail("the TLS certificate or key is not valid PEM, or they do not match");
    server = std::move(ssl);
  } else {
    server = std::make_unique<GuardedServer<httplib::Server>>(http_limits);
  }
  httplib::Server& svr = *server;
  svr.new_task_queue = [threads = f.http_threads] { return new httplib::ThreadPool(threads); };
  svr.set_tcp_nodelay(true);       // replies must not wait for the client's delayed ACK
  svr.set_keep_alive_timeout(1);   // idle keep-alive connections do not hold up a stop
  // The library closes a connection after 5 requests by default: SDK clients and load tools
  // would reconnect (TCP handshake, new worker) every fifth call.
  svr.set_keep_alive_max_count(100000);
  // The library listens with a backlog of 5 (compiled into Debian's libcpp-httplib): 64
  // clients connecting at once overflow it, the kernel drops their handshakes, and their first
  // requests wait for a SYN-ACK retransmit (1 s, 3 s...). Listening again on the same socket
  // raises the backlog; the socket is remembered here as the library creates it.
  int listen_fd = -1;
  svr.set_socket_options([&listen_fd](socket_t sock) {
    httplib::default_socket_options(sock);
    listen_fd = sock;
  });
  if (port == 0) {
    port = svr.bind_to_any_port(host);
    if (port < 0) return fail("cannot listen on " + host);
  } else if (!svr.bind_to_port(host, port)) {
    return fail("cannot listen on " + f.listen + " (in use, or not an address of this host)");
  }
  if (auto st = RaiseListenBacklog(listen_fd, port); !st) return fail(st.error().message());
  std::string endpoint = (tls ? "https://" : "http://") + host + ":" + std::to_string(port);
  if (auto st = Bootstrap(dir->get(), &accounts, endpoint); !st) return fail(st.error().message());

  // Usage per snapshot and account, counted in the background from the catalog's journal.
  UsageAccounting usage((*dir)->catalog(), (*dir)->repo());
  // /metrics (daemon/metrics_endpoint.h): behind a bearer token here, or on a listener of its own.
  auto metrics_endpoint = MetricsEndpoint::Create({f.metrics_settings, http_limits, f.tls_cert, f.tls_key, f.insecure_http});
  if (!metrics_endpoint) return fail(metrics_endpoint.error().message());
  (*metrics_endpoint)->SetAccountUsage([&usage]() -> Result<std::vector<AccountUsageBytes>> {
    ASSIGN_OR_RETURN(UsageTotals totals, usage.Totals());
    std::vector<AccountUsageBytes> out;
    for (const auto& a : totals.accounts) out.push_back({a.account_id, a.exclusive_bytes, a.shared_bytes});
    return out;
  });
  (*metrics_endpoint)->Mount(svr, (*dir)->catalog());
  auto metrics_url = (*metrics_endpoint)->Start();
  if (!metrics_url) return fail(metrics_url.error().message());
  if (!metrics_url->empty()) Log({{"event", "metrics_listening"}, {"endpoint", *metrics_url + "/metrics"}});
  SnapshotJobs jobs((*dir)->repo(), (*dir)->catalog(), (*dir)->pool(), (*dir)->RunnerId(), f.runners);
  // Managed volumes: one ManagedVolume per volume, shared by its NBD connections and its
  // snapshots (point-in-time cuts, changed-block tracking).
  Catalog* catalog = (*dir)->catalog();
  VolumeRegistry::Hooks hooks;
  hooks.load_failed = [catalog](const std::string& id, const std::string& why) {
    Log({{"event", "volume_load_failed"}, {"volume_id", id}, {"error", why}});
    (void)catalog->SetVolumeState(id, "error", "loading from its snapshot failed (written data is kept): " + why);
  };
  hooks.load_progress = [](const std::string& id, int percent) {
    if (percent == 100) Log({{"event", "volume_loaded"}, {"volume_id", id}});
  };
  VolumeRegistry volumes((*dir)->repo()->block_size(), (*dir)->repo(), (*dir)->pool(), hooks);
  ManagedSourceProvider managed_sources(&volumes);
  // Registered volumes: reflink clones of image files, exclusive opens of block devices
  // (engine/registered_sources.h); whatever cannot be cut is read while it runs, and said so.
  RegisteredSourceProvider registered_sources((*dir)->repo()->block_size(), QemuScratchDir((*dir)->path()));
  SplitSourceProvider sources(&managed_sources, &registered_sources);
  jobs.SetSourceProvider(&sources);
  jobs.SetEventSink((*notifications)->sink());
  // In-place rollbacks; their safety snapshots are jobs, so they stop before the jobs.
  RollbackTasks rollbacks((*dir)->repo(), (*dir)->catalog(), (*dir)->pool(), &jobs, (*dir)->RunnerId());
  rollbacks.runner_alive = [d = dir->get()](const std::string& runner) { return d->RunnerAlive(runner); };
  // Managed root volumes are replaced, not rolled back (engine/managed_root_replacement.h).
  nbd::NbdServer* nbd_for_detach = nullptr;  // set once the NBD server exists (below)
  ExportFence fence;
  ManagedRootReplacement managed_roots(
      (*dir)->catalog(), MakeManagedRootHooks((*dir)->catalog(), &volumes, &nbd_for_detach, &fence, f.restore_dir,
                                              [](const std::string& id, size_t ended) {
                                                Log({{"event", "nbd_disconnected"}, {"volume_id", id},
                                                     {"connections", ended}, {"reason", "root volume replaced"}});
                                              }));
  rollbacks.managed_roots = &managed_roots;
  WireManagedRollbacks(&rollbacks, &volumes, &nbd_for_detach, &fence, [](const std::string& id, size_t ended) {
    Log({{"event", "nbd_disconnected"}, {"volume_id", id}, {"connections", ended}, {"reason", "rolled back in place"}});
  });
  Ec2ServiceOptions eo;
  eo.rollbacks = &rollbacks;
  eo.region = f.region;
  eo.restore_dir = f.restore_dir;
  eo.audit_log_path = f.data_dir + "/audit.log";
  eo.allow_public_sharing = f.allow_public_sharing;
  eo.console_idle_seconds = f.console_idle_seconds;
  eo.ebs_limits = f.ebs_limits;
  eo.on_volume_deleted = [&volumes](const std::string& id) { volumes.Forget(id); };
  eo.on_volume_detached = [&nbd_for_detach](const std::string& id) -> Status {
    if (!nbd_for_detach) return OkStatus();
    ASSIGN_OR_RETURN(size_t ended, nbd_for_detach->Disconnect(id));
    if (ended) Log({{"event", "nbd_disconnected"}, {"volume_id", id}, {"connections", ended}});
    return OkStatus();
  };
  const uint32_t store_block_size = (*dir)->repo()->block_size();
  eo.create_lazy = [store_block_size](const VolumeRecord& v) {
    return ManagedVolume::CreateFromSnapshot(v.path, v.size_bytes, store_block_size, v.snapshot_id);
  };
  eo.start_lazy = [&volumes](const VolumeRecord& v) -> Status {
    RETURN_IF_ERROR(volumes.Get(v.volume_id, v.path));
    return OkStatus();
  };
  eo.load_percent = [&volumes](const std::string& id) { return volumes.LoadPercent(id); };
  eo.usage = &usage;
  eo.host_timeout_ms = host_timeout_ms;
  eo.notify_test = (*notifications)->TestHook();
  eo.recycle_bin_default_retention_days = f.bin_default_days;
  AuditLog audit(f.data_dir + "/audit.log");
  // Each run of an instance's freeze hooks: in the log and the audit log, with its output.
  // A command prints whatever bytes it likes: invalid UTF-8 becomes U+FFFD, never an exception.
  auto text = [](const std::string& s) {
    return nlohmann::json::parse(nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  };
  jobs.SetHookRunner(RealHookCommandRunner(), [&audit, text](const HookRun& r) {
    nlohmann::json line = {{"event", "instance_hook"}, {"instance_id", r.instance_id}, {"stage", r.stage},
                           {"command", text(r.command)}, {"volume_ids", r.volume_ids},
                           {"snapshot_ids", r.snapshot_ids}, {"ok", r.ok}, {"outcome", text(r.outcome)},
                           {"output", text(r.output)}, {"ms", r.duration_ms}};
    Log(line);
    audit.Append(line);
  });
  lifecycle::SchedulerOptions so;
  so.default_retention = f.default_retention;
  so.default_time_min = default_time_min;
  so.schedule_clock_offset_ms = f.schedule_clock_offset_s * 1000;
  char schedule_name[32];
  std::snprintf(schedule_name, sizeof schedule_name, "daily-%02d%02d-utc", default_time_min / 60, default_time_min % 60);
  so.default_schedule_name = schedule_name;
  so.events = (*notifications)->sink();
  so.recycle_bin.default_retention_days = f.bin_default_days;
  // Lifecycle policies run on the one host that holds this lease (docs/multi-host.md part 4);
  // their snapshots still run on each volume's host (routed, part 3). On SQLite: this host.
  LeaseKeeper lifecycle_lease(
      catalog, Clock::Real(), lifecycle::kLifecycleLease, (*dir)->host_id(), lease_renew_ms, lease_ttl_ms,
      [](const Error& e) {
        Log({{"event", "cluster_lease_failed"}, {"lease", lifecycle::kLifecycleLease}, {"error", e.message()}});
      },
      [](const std::string& what) {
        Log({{"event", "cluster_lease"}, {"lease", lifecycle::kLifecycleLease}, {"message", what}});
      });
  so.lease = &lifecycle_lease;
  lifecycle::LifecycleScheduler scheduler((*dir)->catalog(), (*dir)->repo(), &jobs, Clock::Real(), so);
  maintenance_options->usage = &usage;
  // GC, verification and restore drills run on the one host that holds this lease
  // (docs/multi-host.md part 4); on SQLite that is always this host.
  LeaseKeeper maintenance_lease(
      catalog, Clock::Real(), lifecycle::kMaintenanceLease, (*dir)->host_id(), lease_renew_ms, lease_ttl_ms,
      [](const Error& e) {
        Log({{"event", "cluster_lease_failed"}, {"lease", lifecycle::kMaintenanceLease}, {"error", e.message()}});
      },
      [](const std::string& what) {
        Log({{"event", "cluster_lease"}, {"lease", lifecycle::kMaintenanceLease}, {"message", what}});
      });
  maintenance_options->lease = &maintenance_lease;
  // The holder of that lease also ends the pending snapshots of hosts that are not up
  // (multi-host.md part 5).
  HostSweep host_sweep((*dir)->catalog(), (*dir)->repo(), Clock::Real(),
                       {(*dir)->host_id(), host_timeout_ms, static_cast<int64_t>(f.host_sweep_s * 1000),
                        &maintenance_lease,
                        [](const SweptHost& h) {
                          Log({{"event", "host_swept"}, {"host_id", h.host_id}, {"name", h.name},
                               {"state", h.state}, {"reason", h.reason}, {"ended", h.ended},
                               {"completed", h.completed}, {"failed_tasks", h.failed_tasks},
                               {"ended_volumes", h.ended_volumes}});
                        },
                        [last = std::string()](const Error& e) mutable {
                          if (e.message() == last) return;  // the same failure every sweep is said once
                          last = e.message();
                          Log({{"event", "host_sweep_failed"}, {"error", last}});
                        }});
  lifecycle::MaintenanceScheduler maintenance((*dir)->catalog(), (*dir)->repo(), (*dir)->pool(), Clock::Real(),
                                              *maintenance_options);
  eo.maintenance = &maintenance;
  Ec2Service ec2((*dir)->catalog(), (*dir)->repo(), (*dir)->pool(), &jobs, &accounts, *seal, eo);
  // Snapshots other hosts accepted for the volumes this host holds, queued for it in the
  // catalog (multi-host.md part 3): claimed every second, run like a local request from the cut on.
  SnapshotClaimer claimer(catalog, &jobs, Clock::Real(), (*dir)->host_id(), 1000,
                          [](const SnapshotJobRecord& j) {
                            Log({{"event", "snapshot_job_claimed"}, {"job_id", j.job_id},
                                 {"snapshot_ids", j.snapshot_ids}, {"instance_id", j.instance_id},
                                 {"runner", j.claimed_by}});
                          },
                          [](const std::string& job_id, const Error& e) {
                            Log({{"event", "snapshot_claim_failed"}, {"job_id", job_id}, {"error", e.message()}});
                          });
  // Deletions other hosts accepted for the volumes this host holds: claimed on the same pass and
  // run by the one deletion path, with this host's NBD connections and files.
  claimer.SetVolumeDeletions({.catalog = catalog,
                              .volume_dir = f.restore_dir,
                              .end_connections = eo.on_volume_detached,
                              .on_deleted = eo.on_volume_deleted},
                             [](const VolumeRecord& v, const Status& outcome) {
                               Log({{"event", "volume_deletion_claimed"}, {"volume_id", v.volume_id},
                                    {"runner", v.state_message}, {"ok", outcome.has_value()},
                                    {"error", outcome ? "" : outcome.error().message()}});
                             });
  // A DetachVolume (or a deletion) answered by another host ends that host's NBD connections
  // only: this host ends its own at the next pass (at once on PostgreSQL, whose detach wakes it).
  claimer.SetEachPass([catalog, &nbd_for_detach] {
    if (!nbd_for_detach) return;
    EndDetachedExports(
        catalog, nbd_for_detach,
        [](const std::string& id, size_t ended, const std::string& why) {
          Log({{"event", "nbd_disconnected"}, {"volume_id", id}, {"connections", ended}, {"reason", why}});
        },
        [](const std::string& id, const Error& e) {
          Log({{"event", "nbd_disconnect_failed"}, {"volume_id", id}, {"error", e.message()}});
        });
  });
  // Volumes other hosts placed on this one (CreateVolume's aws:snapvol:host, approved restores):
  // claimed on the same pass and made here.
  claimer.SetVolumeCreations([&ec2](const VolumeRecord& v, const std::string& runner) { return ec2.MakeClaimedVolume(v, runner); },
                             [](const VolumeRecord& v) {
                               Log({{"event", "volume_creation_claimed"}, {"volume_id", v.volume_id},
                                    {"snapshot_id", v.snapshot_id}});
                             });
  // Rollbacks other hosts accepted for the volumes this host holds: claimed on the same pass.
  claimer.SetRollbacks(&rollbacks, [](const ReplaceRootVolumeTaskRecord& t) {
    Log({{"event", "rollback_task_claimed"}, {"task_id", t.task_id}, {"volume_id", t.volume_id},
         {"runner", t.runner}});
  });

  // Each open connection holds a worker thread; the gate keeps the requests being handled
  // near the number of cores and serves the others first come, first served, so a busy
  // daemon answers every client in turn instead of starving some (see core/fair_gate.h).
  FairGate gate(f.http_concurrency);
  MountHttpRoutes(svr, {&ec2, &gate, &audit, f.console_dir});

  std::thread signal_thread([&] {
    int sig = 0;
    while (sigwait(&sigs, &sig) == 0 && sig == SIGHUP) {
      auto st = audit.Reopen();
      Log({{"event", "audit_log_reopened"}, {"ok", st.has_value()}, {"error", st ? "" : st.error().message()}});
    }
    Log({{"event", "stopping"}, {"signal", sig}});
    scheduler.Stop();
    maintenance.Stop();  // a verification stops between snapshots; a GC pass runs to its end
    rollbacks.Shutdown();  // a rollback stops between batches, in-progress: resumed at the next start
    claimer.Stop();  // jobs not claimed yet stay queued for this host's next start
    jobs.Shutdown();  // running snapshots end `error`, queued ones never start
    svr.stop();
  });
  // A start that fails below (the NBD socket, registering this host) returns early: the signal
  // thread is woken and joined on the way out, as at a normal end, for a std::thread destroyed
  // while joinable ends the process with std::terminate instead of the error.
  struct SignalThreadJoiner {
    std::thread& t;
    ~SignalThreadJoiner() {
      if (!t.joinable()) return;
      pthread_kill(t.native_handle(), SIGTERM);
      t.join();
    }
  } signal_thread_joiner{signal_thread};
  // NBD: attached managed volumes, by volume id, each to its own account (over TLS-PSK) and
  // to root on the Unix socket. All connections to a volume share its ManagedVolume (one
  // file, one write barrier, one changed-block map).
  f.nbd_options.unix_socket = f.nbd_socket;
  f.nbd_options.tcp_listen = f.nbd_listen;
  f.nbd_options.psk = NbdPskLookup(&accounts);
  nbd::NbdServer nbd_server(NbdExportLookup(catalog, &volumes, &fence), NbdExportList(catalog), f.nbd_options);
  if (auto st = nbd_server.Start(); !st) return fail(st.error().message());
  nbd_for_detach = &nbd_server;
  // Volumes restored lazily before a stop or crash carry on loading.
  if (auto all = catalog->ListVolumes(std::nullopt)) {
    for (const auto& v : *all) {
      if (!v.managed || v.state == "error" || !PathExists(LoadMapPath(v.path))) continue;
      if (auto opened = volumes.Get(v.volume_id, v.path); !opened) hooks.load_failed(v.volume_id, opened.error().message());
    }
  }
  Log({{"event", "nbd"}, {"socket", f.nbd_socket}, {"tcp_port", nbd_server.tcp_port()}});
  // This host's row in the catalog, then a heartbeat on a thread of its own (multi-host.md part 2).
  // The addresses other hosts use: advertised, or the bound ones (said once when useless to them).
  const HostAddresses addresses =
      AdvertisedAddresses(advertise, endpoint, f.nbd_socket, f.nbd_listen, nbd_server.tcp_port());
  for (const std::string& w : addresses.warnings) Log({{"event", "advertise_warning"}, {"message", w}});
  HostHeartbeat heartbeat(catalog, Clock::Real(),
                          {(*dir)->host_id(), f.host_name.empty() ? ThisHostName() : f.host_name, addresses.api_url,
                           addresses.nbd_endpoint, SNAPVOL_VERSION, 0, 0},
                          static_cast<int64_t>(f.host_heartbeat_s * 1000),
                          [](const Error& e) { Log({{"event", "host_heartbeat_failed"}, {"error", e.message()}}); });
  if (auto st = heartbeat.Register(); !st) return fail("cannot register this host in the catalog: " + st.error().message());
  heartbeat.Start();
  maintenance_lease.Start();  // after registering: `snapvol host leases` names the holder's host
  lifecycle_lease.Start();
  claimer.Start();  // after registering: other hosts judge its queue by this host's heartbeat
  host_sweep.Start();  // after the lease keeper: it sweeps only while this host holds the lease
  std::printf("snapvold listening on %s (data dir %s)\n", endpoint.c_str(), f.data_dir.c_str());
  std::fflush(stdout);
  Log({{"event", "started"}, {"endpoint", endpoint}, {"data_dir", f.data_dir}});
  (*notifications)->Start();
  scheduler.Start();
  usage.Start(2000, [last = std::string()](const Error& e) mutable {
    if (e.message() == last) return;  // the same failure every 2 s is said once
    last = e.message();
    Log({{"event", "usage_accounting_failed"}, {"error", last}});
  });
  maintenance.Start();
  auto resumed = rollbacks.Resume();  // those a stop or crash interrupted: they write what still differs
  Log({{"event", "rollbacks_resumed"}, {"tasks", resumed ? *resumed : 0}, {"error", resumed ? "" : resumed.error().message()}});
  bool ok = svr.listen_after_bind();
  usage.Stop();
  scheduler.Stop();  // before the jobs: it must not queue snapshots into a stopping queue
  lifecycle_lease.Stop();  // after the scheduler stopped: another host carries its runs on at once
  maintenance.Stop();
  host_sweep.Stop();  // before the lease is released
  maintenance_lease.Stop();  // after the last run stopped: another host takes over at once
  rollbacks.Shutdown();
  nbd_server.Stop();  // ends connections; every acknowledged write is in the files
  claimer.Stop();
  jobs.Shutdown();
  heartbeat.Stop();  // after its runners ended: a stopped host runs nothing
  (*notifications)->Stop();  // after the last raiser: what is still unsent is spooled
  volumes.CloseAll();  // after the last write and the last snapshot: CBT maps saved clean
  if (signal_thread.joinable()) {
    pthread_kill(signal_thread.native_handle(), SIGTERM);  // wake it if the server ended first
    signal_thread.join();
  }
  Log({{"event", "stopped"}});
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace snapvol

int main(int argc, char** argv) {
  snapvol::KeepLargeBuffersInHeap();  // before any thread: see core/allocator.h
  return snapvol::Main(argc, argv);
}
