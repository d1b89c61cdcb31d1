#include "cli/commands.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>

#include "api/accounts.h"
#include "catalog/catalog_copy.h"
#include "cli/admin_commands.h"
#include "cli/api_client.h"
#include "cli/benchmark_command.h"
#include "cli/catalog_commands.h"
#include "cli/cli_support.h"
#include "cli/host_commands.h"
#include "cli/notify_commands.h"
#include "cli/data_dir.h"
#include "cli/doctor.h"
#include "cli/gc_command.h"
#include "cli/instance_hooks_commands.h"
#include "cli/job_commands.h"
#include "cli/key_commands.h"
#include "cli/nbd_connect.h"
#include "cli/qemu_volume_options.h"
#include "cli/snapshot_commands.h"
#include "cli/quota_commands.h"
#include "cli/store_upgrade_command.h"
#include "cli/usage_commands.h"
#include "cli/volume_delete_command.h"
#include "core/file_util.h"
#include "core/human_bytes.h"
#include "core/ids.h"
#include "engine/recycle_bin.h"
#include "engine/manifest_record.h"
#include "lifecycle/scheduler.h"
#include "store/local_store.h"
#include "store/s3_store.h"
#include "volume/block_source.h"

namespace snapvol {
namespace {

using json = nlohmann::json;
using cli::Failure;
using cli::Globals;
using cli::Must;
using cli::OpenDir;
using cli::PrintTable;
using cli::TagsJson;
using cli::HooksJson;
using cli::HooksSummary;
using cli::AddInstanceHooksCommands;

json VolumeJson(const VolumeRecord& v) {
  return {{"VolumeId", v.volume_id}, {"OwnerId", v.account_id}, {"Name", v.name},
          {"Path", v.path}, {"SizeBytes", v.size_bytes}, {"BlockSize", v.block_size},
          {"CreateTime", FormatIso8601(v.created_ms)}, {"Tags", TagsJson(v.tags)},
          {"InstanceId", v.instance_id}, {"Device", v.device}, {"Boot", v.boot}, {"HostId", v.host_id},
          {"State", v.state}, {"StateMessage", v.state_message}};
}

// ---- commands ----

void CmdInit(const Globals& g, InitOptions o, const std::string& store_url) {
  RequireDataDir(g);
  if (store_url.empty() || store_url == "local") {
    if (o.s3) throw Failure{"--s3-* options need --store s3://BUCKET/PREFIX"};
  } else if (!o.s3) {
    throw Failure{"unknown store '" + store_url + "': use s3://BUCKET/PREFIX or local"};
  } else {
    o.s3->url = store_url;
  }
  auto r = Must(DataDir::Init(g.data_dir, o));
  std::cout << "initialised " << g.data_dir << (o.s3 ? " with " + r.store : "")
            << (o.catalog_url.empty() ? "" : ", catalog " + RedactCatalogUrl(o.catalog_url)) << " (block size "
            << HumanBytes(r.block_size) << (r.encrypted ? ", encrypted with AES-256-GCM" : "")
            << (r.joined ? "; joined the snapshot store already there" : "") << ")\n";
  if (r.key) {
    std::cerr << "encryption key (also in " << r.key_path << ", mode 0600):\n  "
              << ToHex(*r.key) << "\n"
              << "WARNING: back this key up now. Without it no snapshot in this store can be restored.\n";
  }
}

// Checks the data dir's snapshot store step by step and says which step fails: the S3
// settings and keys, reaching the endpoint, the keys being accepted, the bucket, the clock,
// then writing, reading, touching, listing and deleting a probe object, and opening the
// store. Exit 0 when every step passes.
int CmdStoreCheck(const Globals& g) {
  const std::string& dir = RequireDataDir(g);
  std::vector<std::vector<std::string>> rows;
  std::string first_failure;
  auto step = [&](const std::string& name, const Status& st, const std::string& ok_detail) {
    rows.push_back({name, st ? "ok" : "FAIL", st ? ok_detail : st.error().message()});
    if (!st && first_failure.empty()) first_failure = name + ": " + st.error().message();
    return static_cast<bool>(st);
  };
  auto finish = [&]() {
    if (g.output == "json") {
      json a = json::array();
      for (const auto& r : rows) a.push_back({{"Step", r[0]}, {"Result", r[1]}, {"Detail", r[2]}});
      std::cout << json{{"Steps", a}, {"Ok", first_failure.empty()}}.dump(2) << "\n";
    } else {
      PrintTable({"STEP", "RESULT", "DETAIL"}, rows);
    }
    if (!first_failure.empty()) throw Failure{"store check failed at " + first_failure};
    return 0;
  };

  auto cfg = DataDir::ReadS3Config(dir);
  if (!step("config", cfg ? OkStatus() : Status(std::unexpected(cfg.error())),
            cfg && *cfg ? (*cfg)->Describe() : "local store in " + dir + "/store"))
    return finish();
  std::unique_ptr<ObjectStore> store;
  if (*cfg) {
    const S3Config& c = **cfg;
    step("credentials", OkStatus(), "access key " + c.credentials.access_key_id + " from " + c.credentials.source);
    auto s3 = S3Store::Open(c);
    if (!step("settings", s3 ? OkStatus() : Status(std::unexpected(s3.error())), c.endpoint)) return finish();
    auto probe = (*s3)->Probe(5000);
    Status reach = probe ? OkStatus() : Status(std::unexpected(probe.error()));
    bool unreachable = !probe && probe.error().code() == ErrorCode::kIoError;
    bool denied = !probe && probe.error().code() == ErrorCode::kUnauthorized;
    if (!step("reach endpoint", unreachable ? reach : OkStatus(), c.endpoint + " answers")) return finish();
    if (!step("credentials accepted", denied ? reach : OkStatus(), "requests are signed correctly")) return finish();
    if (!step("bucket", reach, "bucket '" + c.bucket + "' exists and lists")) return finish();
    int64_t skew = probe->skew_ms;
    Status clock = std::abs(skew) > kMaxS3ClockSkewMs
                       ? Status(MakeError(ErrorCode::kConflict, "clock differs from the server's by " +
                                                                    std::to_string(skew / 1000) + " s: fix NTP"))
                       : OkStatus();
    step("clock skew", clock, std::to_string(skew) + " ms (round trip " + std::to_string(probe->round_trip_ms) + " ms)");
    store = std::move(*s3);
  } else {
    auto local = LocalStore::Open(dir + "/store");
    if (!step("open", local ? OkStatus() : Status(std::unexpected(local.error())), dir + "/store")) return finish();
    store = std::move(*local);
  }
  const std::string key = "check/" + NewSnapshotId();
  const std::string text = "snapvol store check " + key;
  std::vector<uint8_t> payload(text.begin(), text.end());
  if (!step("write", store->Put(key, payload), key)) return finish();
  auto back = store->Get(key);
  Status read = !back ? Status(std::unexpected(back.error()))
                : *back != payload ? Status(MakeError(ErrorCode::kCorruption, "read back different bytes"))
                                   : OkStatus();
  step("read", read, std::to_string(payload.size()) + " bytes match");
  step("touch", store->Touch(key), "object age refreshed");
  auto listed = store->List("check/");
  bool found = listed && std::any_of(listed->begin(), listed->end(), [&](const ObjectInfo& o) { return o.key == key; });
  step("list", !listed ? Status(std::unexpected(listed.error()))
               : found ? OkStatus() : Status(MakeError(ErrorCode::kIoError, "the object just written is not listed")),
       "listing sees it");
  Status del = store->Delete(key);
  if (del) {
    auto still = store->Exists(key);
    if (!still) del = std::unexpected(still.error());
    else if (*still) del = MakeError(ErrorCode::kIoError, "the object is still there after delete");
  }
  step("delete", del, "removed");
  if (first_failure.empty()) {
    auto opened = DataDir::Open(dir);
    step("snapshot store", opened ? OkStatus() : Status(std::unexpected(opened.error())),
         opened ? "format " + std::to_string(kStoreFormatVersion) + ", block size " +
                      HumanBytes((*opened)->repo()->block_size()) +
                      ((*opened)->repo()->encrypted() ? ", encrypted" : "")
                : "");
  }
  return finish();
}

struct Attachment {
  std::string instance_id, device;
  bool boot = false;
  std::string host_id;  // the host holding the data ('' : this data dir's)
};

void CmdVolumeRegister(const Globals& g, const std::string& path, const std::string& name,
                       const std::string& account_id, const Attachment& attach, const QemuVolumeOptions& qemu) {
  auto dir = OpenDir(g);
  auto qemu_disk = ResolveQemuVolume(qemu, path);
  auto src = qemu_disk ? nullptr : Must(FileSource::Open(path), "cannot register volume");
  char resolved[PATH_MAX];
  std::string abs = qemu_disk ? qemu_disk->path : ::realpath(path.c_str(), resolved) ? resolved : path;
  VolumeRecord v;
  v.volume_id = NewVolumeId();
  v.account_id = account_id.empty() ? kDefaultAccountId : account_id;
  v.name = name;
  v.path = abs;
  v.size_bytes = qemu_disk ? qemu_disk->size : src->size();
  v.block_size = dir->repo()->block_size();
  v.created_ms = Clock::Real()->NowMillis();
  if (!attach.host_id.empty() && !IsHostId(attach.host_id))
    throw Failure{"--host: '" + attach.host_id + "' is not a host id (host- and 17 hex; see snapvol host list)"};
  v.host_id = attach.host_id;
  if (!attach.instance_id.empty()) {
    auto inst = Must(dir->catalog()->GetInstance(attach.instance_id));
    if (inst.account_id != v.account_id)
      throw Failure{"instance " + attach.instance_id + " belongs to account " + inst.account_id +
                    ", not " + v.account_id + " (pass --account-id)"};
    if (attach.device.empty()) throw Failure{"--instance-id needs --device (e.g. /dev/xvda)"};
    // The volume at the instance's root device is its root (boot) volume, and only that one.
    if (attach.boot && attach.device != inst.root_device)
      throw Failure{"--boot: the root volume is the one at the instance's root device " + inst.root_device +
                    " (not " + attach.device + "); pass --device " + inst.root_device};
    v.instance_id = attach.instance_id;
    v.device = attach.device;
    v.boot = attach.device == inst.root_device;
  } else if (attach.boot || !attach.device.empty()) {
    throw Failure{"--device and --boot need --instance-id"};
  }
  Must(dir->catalog()->InsertVolume(v));
  std::cout << v.volume_id << "\n";
}

void CmdInstanceCreate(const Globals& g, const std::string& account_id, const std::string& name,
                       const std::string& root_device) {
  auto dir = OpenDir(g);
  InstanceRecord i{NewInstanceId(), account_id, name, Clock::Real()->NowMillis()};
  i.root_device = root_device;
  Must(dir->catalog()->InsertInstance(i));
  std::cout << i.instance_id << "\n";
}

void CmdInstanceList(const Globals& g) {
  auto dir = OpenDir(g);
  auto rows = Must(dir->catalog()->ListInstances(std::nullopt));
  std::map<std::string, InstanceHooksRecord> hooks;
  for (auto& h : Must(dir->catalog()->ListInstanceHooks())) hooks[h.instance_id] = std::move(h);
  auto hooks_of = [&](const std::string& id) -> std::optional<InstanceHooksRecord> {
    auto it = hooks.find(id);
    if (it == hooks.end()) return std::nullopt;
    return it->second;
  };
  if (g.output == "json") {
    json a = json::array();
    for (const auto& r : rows)
      a.push_back({{"InstanceId", r.instance_id}, {"OwnerId", r.account_id}, {"Name", r.name},
                   {"CreateTime", FormatIso8601(r.created_ms)}, {"State", r.state},
                   {"Hooks", HooksJson(hooks_of(r.instance_id))}});
    std::cout << json{{"Instances", a}}.dump(2) << "\n";
    return;
  }
  std::vector<std::vector<std::string>> table;
  for (const auto& r : rows)
    table.push_back({r.instance_id, r.account_id, r.name, r.state, HooksSummary(hooks_of(r.instance_id))});
  PrintTable({"INSTANCE", "ACCOUNT", "NAME", "STATE", "HOOKS"}, table);
}

// Marks an instance stopped or running: snapvol does not run instances, the operator says
// when one's disks are idle (an in-place rollback of an attached volume needs it stopped).
void CmdInstanceSetState(const Globals& g, const std::string& instance_id, const std::string& state) {
  auto dir = OpenDir(g);
  Must(dir->catalog()->SetInstanceState(instance_id, state));
  std::cout << instance_id << " " << state << "\n";
}

void CmdVolumeList(const Globals& g, double host_timeout_s) {
  auto dir = OpenDir(g);
  auto vols = Must(dir->catalog()->ListVolumes(std::nullopt));
  // Whether the host holding each volume is up (docs/multi-host.md part 5): '' without a host.
  const auto hosts = Must(dir->catalog()->ListHosts());
  const int64_t now_ms = Clock::Real()->NowMillis();
  auto host_state = [&](const VolumeRecord& v) {
    return VolumeHostState(hosts, v.host_id, now_ms, static_cast<int64_t>(host_timeout_s * 1000));
  };
  if (g.output == "json") {
    json a = json::array();
    for (const auto& v : vols) {
      json j = VolumeJson(v);
      j["HostState"] = host_state(v);
      a.push_back(std::move(j));
    }
    std::cout << json{{"Volumes", a}}.dump(2) << "\n";
    return;
  }
  // Where each lives: its host's name as DescribeVolumes' aws:snapvol:host tag says it.
  auto host_of = [](const VolumeRecord& v) {
    for (const auto& t : v.tags)
      if (t.key == kHostTag) return t.value;
    return v.host_id.empty() ? std::string("-") : v.host_id;
  };
  std::vector<std::vector<std::string>> rows;
  for (const auto& v : vols) {
    std::string state = host_state(v);
    rows.push_back({v.volume_id, v.name, HumanBytes(v.size_bytes), v.state, host_of(v), state.empty() ? "-" : state, v.path});
  }
  PrintTable({"VOLUME", "NAME", "SIZE", "STATE", "HOST", "HOST STATE", "PATH"}, rows);
}

void CmdGc(const Globals& g, const GcCommandOptions& o) {
  auto dir = OpenDir(g);
  Must(GcCommand(dir->catalog(), dir->repo(), o, g.output == "json", std::cout, std::cerr));
}

void CmdCatalogRebuild(const Globals& g) {
  auto dir = Must(DataDir::Open(RequireDataDir(g), /*reset_damaged_catalog=*/true));
  if (!dir->damaged_catalog_moved_to().empty())
    std::cerr << "the catalog was damaged and has been moved to " << dir->damaged_catalog_moved_to()
              << "; registered volumes must be registered again\n";
  Repository* repo = dir->repo();
  Must(ReleaseEndedLeases(dir->catalog(), repo, std::cerr));
  auto ids = Must(repo->ListManifestIds());
  std::vector<SnapshotRecord> recs;
  for (const auto& id : ids) {
    auto m = Must(repo->GetManifest(id), "snapshot " + id);
    recs.push_back(SnapshotRecordOfManifest(dir->catalog(), *repo, m));
  }
  // The Recycle Bin as the store's bin/ roots describe it: neither live again nor lost.
  auto binned = Must(BinFromStore(dir->catalog(), repo));
  Must(dir->catalog()->Transaction([&]() -> Status {
    RETURN_IF_ERROR(dir->catalog()->DeleteAllSnapshots());
    for (const auto& r : recs) RETURN_IF_ERROR(dir->catalog()->UpsertSnapshot(r));
    RETURN_IF_ERROR(dir->catalog()->ReplaceRecycleBin(binned));
    // Locks and grants are not in the store: those of snapshots found again stay.
    return dir->catalog()->DeleteOrphanedGrantsAndLocks();
  }));
  std::cout << "catalog rebuilt from the store: " << recs.size() << " snapshots, " << binned.size()
            << " in the Recycle Bin\n";
}

}  // namespace

int RunCli(int argc, char** argv) {
  CLI::App app{"snapvol: incremental, deduplicated, compressed block-volume snapshots.\n"
               "Operates directly on a data dir (offline); see README.md."};
  app.require_subcommand(1);
  app.fallthrough();  // global options may follow the subcommand
  Globals g;
  if (const char* env = std::getenv("SNAPVOL_DATA_DIR")) g.data_dir = env;
  app.add_option("--data-dir", g.data_dir, "Data directory (default: $SNAPVOL_DATA_DIR)");
  app.add_option("--output,-o", g.output, "Output format for lists: table or json")
      ->check(CLI::IsMember({"table", "json"}));
  app.set_version_flag("--version", "snapvol 0.1.0");

  int exit_code = 0;
  std::function<void()> action;

  auto* init = app.add_subcommand("init", "Create a data dir with an empty snapshot store and catalog "
                                          "(or join the S3 store already at --store)");
  InitOptions init_opt;
  S3StoreOptions s3_opt;
  std::string store_url;
  init->add_flag("--encrypt", init_opt.encrypt, "Encrypt the store with AES-256-GCM (key kept in DIR/store.key)");
  auto* bs_opt = init->add_option("--block-size", init_opt.block_size, "Block size in bytes (power of two, default 524288)");
  init->add_option("--compression-level", init_opt.compression_level,
                   "zstd level 1-19 (default 1: fastest; 3 stores ~2% less at ~40% more CPU)");
  init->add_option("--store-format", init_opt.store_format,
                   "1: one object per chunk (the default); 2: chunks in packs with a store-wide index "
                   "(far fewer objects and requests; `snapvol store upgrade` converts a format-1 store)")
      ->check(CLI::IsMember({1, 2}));
  init->add_option("--pack-size", init_opt.pack_size_mib, "Target MiB per pack with --store-format 2 (1-128; default 16, on S3 32)")
      ->check(CLI::Range(1, 128));
  init->add_option("--store", store_url, "Where snapshots go: local (DIR/store, the default) or s3://BUCKET/PREFIX");
  init->add_option("--s3-endpoint", s3_opt.endpoint, "S3 endpoint URL, e.g. https://rgw.example:443 (default: AWS for the region)");
  init->add_option("--s3-region", s3_opt.region, "Region to sign for (default us-east-1)");
  init->add_option("--s3-url-style", s3_opt.url_style, "path or virtual (default: path with --s3-endpoint, else virtual)");
  init->add_option("--s3-profile", s3_opt.profile, "Profile of the AWS shared-credentials file (when the env has no keys)");
  init->add_option("--s3-ca-file", s3_opt.ca_file, "CA bundle that signed the endpoint's certificate");
  init->add_flag("--s3-allow-http", s3_opt.allow_insecure_http, "Allow plain HTTP to a non-loopback endpoint (keys travel signed but unencrypted)");
  init->add_flag("--s3-save-keys", s3_opt.save_keys, "Record the keys found now in DIR/store.json (mode 0600)");
  init->add_option("--catalog", init_opt.catalog_url,
                   "Where the catalog is: DIR/catalog.db (SQLite, the default) or postgresql://USER[:PASSWORD]@HOST"
                   "[:PORT]/DB (kept in DIR/catalog.json, mode 0600)");
  init->callback([&, init, bs_opt] {
    action = [&, init, bs_opt] {
      init_opt.block_size_given = bs_opt->count() > 0;
      bool any_s3 = false;
      for (const char* o : {"--s3-endpoint", "--s3-region", "--s3-url-style", "--s3-profile", "--s3-ca-file",
                            "--s3-allow-http", "--s3-save-keys"})
        any_s3 = any_s3 || init->count(o) > 0;
      if (store_url.rfind("s3://", 0) == 0 || any_s3) init_opt.s3 = s3_opt;
      CmdInit(g, init_opt, store_url);
    };
  });

  auto* store_cmd = app.add_subcommand("store", "The snapshot store");
  store_cmd->require_subcommand(1);
  auto* scheck = store_cmd->add_subcommand(
      "check", "Check the store: reachable, credentials accepted, bucket there, clock in step, "
               "write/read/delete allowed; says which is wrong");
  scheck->callback([&] { action = [&] { exit_code = CmdStoreCheck(g); }; });
  AddStoreUpgradeCommand(store_cmd, &g.data_dir, &g.output, &action, &exit_code);

  auto* volume = app.add_subcommand("volume", "Register, list and delete volumes");
  volume->require_subcommand(1);
  auto* vreg = volume->add_subcommand("register", "Register a file or block device as a volume; prints its vol- id");
  std::string vpath, vname;
  vreg->add_option("--path", vpath, "File or block device");
  QemuVolumeOptions vqemu;
  AddQemuVolumeOptions(vreg, &vqemu);
  std::string vaccount;
  Attachment vattach;
  vreg->add_option("--name", vname, "A name for people");
  vreg->add_option("--account-id", vaccount, "The owning account (default: the offline default account)");
  vreg->add_option("--instance-id", vattach.instance_id, "Attach to this instance (i-…)");
  vreg->add_option("--device", vattach.device, "Device name on the instance, e.g. /dev/xvda");
  vreg->add_flag("--boot", vattach.boot, "This is the instance's boot volume (--device must be its root device)");
  vreg->add_option("--host", vattach.host_id, "The host holding the file (host-…; default: this data dir's host)");
  vreg->callback([&] { action = [&] { CmdVolumeRegister(g, vpath, vname, vaccount, vattach, vqemu); }; });

  auto* instance = app.add_subcommand("instance", "Instances: groups of an account's volumes");
  instance->require_subcommand(1);
  auto* icreate = instance->add_subcommand("create", "Create an instance; prints its i- id");
  std::string iaccount, iname;
  icreate->add_option("--account-id", iaccount, "The owning account")->required();
  icreate->add_option("--name", iname, "A name for people")->required();
  std::string iroot(kDefaultRootDevice);
  icreate->add_option("--root-device", iroot, "Its root device name; the volume attached there is its root")
      ->capture_default_str();
  icreate->callback([&] { action = [&] { CmdInstanceCreate(g, iaccount, iname, iroot); }; });
  auto* ilist = instance->add_subcommand("list", "List instances");
  ilist->callback([&] { action = [&] { CmdInstanceList(g); }; });
  std::string istate_id;
  for (const char* verb : {"stop", "start"}) {
    auto* sub = instance->add_subcommand(verb, std::string("Mark an instance ") +
                                                   (verb[2] == 'o' ? "stopped (its disks are idle)" : "running"));
    sub->add_option("instance_id", istate_id, "The instance (i-…)")->required();
    const std::string state = verb[2] == 'o' ? "stopped" : "running";
    sub->callback([&, state] { action = [&, state] { CmdInstanceSetState(g, istate_id, state); }; });
  }
  AddInstanceHooksCommands(instance, g, &action);
  auto* vlist = volume->add_subcommand("list", "List volumes with the host holding each and its state "
                                               "(up; unreachable, stopped or unregistered: its data cannot be reached)");
  double vlist_timeout_s = kDefaultHostTimeoutMs / 1000.0;
  vlist->add_option("--host-timeout", vlist_timeout_s,
                    "Seconds without a heartbeat after which a host is unreachable (default 30; snapvold's "
                    "--host-timeout-seconds)")
      ->check(CLI::Range(0.001, 86400.0));
  vlist->callback([&] { action = [&] { CmdVolumeList(g, vlist_timeout_s); }; });
  AddVolumeDeleteCommand(volume, &g.data_dir, &g.output, &action, &exit_code);

  cli::AddSnapshotCommands(app, g, &action, &exit_code);

  auto* gc = app.add_subcommand("gc", "Delete chunks no snapshot references (format 2: delete or rewrite packs)");
  GcCommandOptions gc_opt;
  std::string repack;
  gc->add_option("--grace", gc_opt.grace, "Keep unreferenced objects younger than this (default 15m; e.g. 0, 30s, 2h)");
  gc->add_flag("--dry-run", gc_opt.dry_run, "Report what would be deleted, rewritten and freed");
  auto* repack_opt = gc->add_option("--repack-threshold", repack,
                                    "Format 2: rewrite a pack when more than this share of its bytes is dead "
                                    "(0 < F <= 1, default 0.1; 1: only delete packs with nothing live)");
  gc->callback([&, repack_opt] {
    action = [&, repack_opt] {
      if (repack_opt->count() > 0) gc_opt.repack_threshold = repack;
      CmdGc(g, gc_opt);
    };
  });

  auto* catalog = app.add_subcommand("catalog", "Catalog maintenance");
  catalog->require_subcommand(1);
  auto* rebuild = catalog->add_subcommand("rebuild", "Recreate the snapshot catalog from the store");
  rebuild->callback([&] { action = [&] { CmdCatalogRebuild(g); }; });
  cli::AddCatalogMigrateCommand(catalog, g, &action);

  auto* jobcmd = app.add_subcommand("job", "Maintenance runs of snapvold (GC, verification, restore drills)");
  jobcmd->require_subcommand(1);
  std::string job_name, job_id;
  size_t job_limit = 50;
  bool job_quick = false;
  auto* jlist = jobcmd->add_subcommand("list", "Recent runs, newest first");
  jlist->add_option("--job", job_name, "Only gc, verify or drill");
  jlist->add_option("--limit", job_limit, "At most this many (default 50)")->check(CLI::Range(1, 100000));
  jlist->callback([&] { action = [&] { Must(JobListCommand(OpenDir(g)->catalog(), job_name, job_limit, g.output == "json", std::cout)); }; });
  auto* jshow = jobcmd->add_subcommand("show", "One run: times, outcome, bytes freed or snapshots checked, damage");
  jshow->add_option("ID", job_id, "The run id")->required();
  jshow->callback([&] { action = [&] { Must(JobShowCommand(OpenDir(g)->catalog(), job_id, g.output == "json", std::cout)); }; });
  auto* jrun = jobcmd->add_subcommand("run", "Queue a run now for snapvold (verify: every snapshot; drill: the "
                                              "least recently drilled latest snapshot of each account)");
  jrun->add_option("JOB", job_name, "gc, verify or drill")->required()->check(CLI::IsMember({"gc", "verify", "drill"}));
  jrun->add_flag("--quick", job_quick, "verify: checksums only");
  jrun->callback([&] { action = [&] {
    auto dir = OpenDir(g);
    Must(JobRunCommand(dir->catalog(), dir->repo(), dir->pool(), job_name, job_quick, g.output == "json", std::cout));
  }; });


  cli::AddAdminCommands(app, g, &action);
  AddNbdCommands(app, &action, &exit_code);
  AddNotifyCommands(app, &action, &exit_code);
  AddHostCommands(app, g, &action);
  AddDoctorCommand(app, &g.data_dir, &g.output, &action, &exit_code);

  AddBenchmarkCommand(app, &g.data_dir, &g.output, &action, &exit_code);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  try {
    if (action) action();
  } catch (const Failure& f) {
    std::fprintf(stderr, "snapvol: error: %s\n", f.message.c_str());
    return 1;
  }
  return exit_code;
}

}  // namespace snapvol
