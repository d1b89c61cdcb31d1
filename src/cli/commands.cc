#include "cli/commands.h"

#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "api/accounts.h"
#include "cli/api_client.h"
#include "cli/benchmark_command.h"
#include "cli/notify_commands.h"
#include "cli/data_dir.h"
#include "cli/doctor.h"
#include "cli/gc_command.h"
#include "cli/job_commands.h"
#include "cli/key_commands.h"
#include "cli/nbd_connect.h"
#include "cli/progress_bar.h"
#include "cli/quota_commands.h"
#include "cli/store_upgrade_command.h"
#include "cli/usage_commands.h"
#include "core/file_util.h"
#include "core/human_bytes.h"
#include "core/ids.h"
#include "engine/recycle_bin.h"
#include "engine/manifest_record.h"
#include "engine/snapshot_deletion.h"
#include "engine/snapshot_engine.h"
#include "lifecycle/scheduler.h"
#include "store/local_store.h"
#include "store/s3_store.h"
#include "store/verify.h"
#include "volume/block_source.h"

namespace snapvol {
namespace {

using json = nlohmann::json;

std::atomic<bool> g_cancel{false};
void OnSignal(int) { g_cancel = true; }

void InstallSignalHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

struct Failure {
  std::string message;
};

// Unwraps a Result or throws a Failure that RunCli turns into a one-line error.
template <typename T>
T Must(Result<T> r, const std::string& context = "") {
  if (!r) throw Failure{context.empty() ? r.error().message() : context + ": " + r.error().message()};
  return std::move(*r);
}
inline void Must(Status s, const std::string& context = "") {
  if (!s) throw Failure{context.empty() ? s.error().message() : context + ": " + s.error().message()};
}

json TagsJson(const std::vector<Tag>& tags) {
  json a = json::array();
  for (const auto& t : tags) a.push_back({{"Key", t.key}, {"Value", t.value}});
  return a;
}

json SnapshotJson(const SnapshotRecord& s) {
  return {{"SnapshotId", s.snapshot_id}, {"VolumeId", s.volume_id},
          {"OwnerId", s.account_id}, {"State", SnapshotStateName(s.state)},
          {"StateMessage", s.state_message}, {"Progress", s.progress},
          {"StartTime", FormatIso8601(s.start_time_ms)},
          {"CompletionTime", s.completed_time_ms ? FormatIso8601(s.completed_time_ms) : ""},
          {"VolumeSizeBytes", s.volume_size_bytes}, {"BlockSize", s.block_size},
          {"Description", s.description}, {"Encrypted", s.encrypted},
          {"ParentSnapshotId", s.parent_snapshot_id}, {"StoredBytes", s.stored_bytes},
          {"ChangedBlocks", s.changed_blocks}, {"TotalBlocks", s.total_blocks},
          {"Tags", TagsJson(s.tags)}};
}

json VolumeJson(const VolumeRecord& v) {
  return {{"VolumeId", v.volume_id}, {"OwnerId", v.account_id}, {"Name", v.name},
          {"Path", v.path}, {"SizeBytes", v.size_bytes}, {"BlockSize", v.block_size},
          {"CreateTime", FormatIso8601(v.created_ms)}, {"Tags", TagsJson(v.tags)},
          {"InstanceId", v.instance_id}, {"Device", v.device}, {"Boot", v.boot}};
}

std::string TagsText(const std::vector<Tag>& tags) {
  std::string out;
  for (const auto& t : tags) out += (out.empty() ? "" : ",") + t.key + "=" + t.value;
  return out;
}

void PrintTable(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> w(header.size());
  for (size_t i = 0; i < header.size(); ++i) w[i] = header[i].size();
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) w[i] = std::max(w[i], r[i].size());
  auto line = [&](const std::vector<std::string>& r) {
    std::string s;
    for (size_t i = 0; i < r.size(); ++i) {
      s += r[i];
      if (i + 1 < r.size()) s += std::string(w[i] - r[i].size() + 2, ' ');
    }
    std::cout << s << "\n";
  };
  line(header);
  for (const auto& r : rows) line(r);
}

Result<Tag> ParseTag(const std::string& s) {
  auto eq = s.find('=');
  if (eq == std::string::npos || eq == 0) return InvalidArgument("tag '" + s + "' is not KEY=VALUE");
  return Tag{s.substr(0, eq), s.substr(eq + 1)};
}

struct Globals {
  std::string data_dir;
  std::string output = "table";
};

const std::string& RequireDataDir(const Globals& g) {
  if (g.data_dir.empty()) throw Failure{"no data dir: pass --data-dir DIR or set SNAPVOL_DATA_DIR"};
  return g.data_dir;
}

std::unique_ptr<DataDir> OpenDir(const Globals& g) { return Must(DataDir::Open(RequireDataDir(g))); }

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
  std::cout << "initialised " << g.data_dir << (o.s3 ? " with " + r.store : "") << " (block size "
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
};

void CmdVolumeRegister(const Globals& g, const std::string& path, const std::string& name,
                       const std::string& account_id, const Attachment& attach) {
  auto dir = OpenDir(g);
  auto src = Must(FileSource::Open(path), "cannot register volume");
  char resolved[PATH_MAX];
  std::string abs = ::realpath(path.c_str(), resolved) ? resolved : path;
  VolumeRecord v;
  v.volume_id = NewVolumeId();
  v.account_id = account_id.empty() ? kDefaultAccountId : account_id;
  v.name = name;
  v.path = abs;
  v.size_bytes = src->size();
  v.block_size = dir->repo()->block_size();
  v.created_ms = Clock::Real()->NowMillis();
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
  if (g.output == "json") {
    json a = json::array();
    for (const auto& r : rows)
      a.push_back({{"InstanceId", r.instance_id}, {"OwnerId", r.account_id}, {"Name", r.name},
                   {"CreateTime", FormatIso8601(r.created_ms)}, {"State", r.state}});
    std::cout << json{{"Instances", a}}.dump(2) << "\n";
    return;
  }
  std::vector<std::vector<std::string>> table;
  for (const auto& r : rows) table.push_back({r.instance_id, r.account_id, r.name, r.state});
  PrintTable({"INSTANCE", "ACCOUNT", "NAME", "STATE"}, table);
}

// Marks an instance stopped or running: snapvol does not run instances, the operator says
// when one's disks are idle (an in-place rollback of an attached volume needs it stopped).
void CmdInstanceSetState(const Globals& g, const std::string& instance_id, const std::string& state) {
  auto dir = OpenDir(g);
  Must(dir->catalog()->SetInstanceState(instance_id, state));
  std::cout << instance_id << " " << state << "\n";
}

void CmdVolumeList(const Globals& g) {
  auto dir = OpenDir(g);
  auto vols = Must(dir->catalog()->ListVolumes(std::nullopt));
  if (g.output == "json") {
    json a = json::array();
    for (const auto& v : vols) a.push_back(VolumeJson(v));
    std::cout << json{{"Volumes", a}}.dump(2) << "\n";
    return;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& v : vols) rows.push_back({v.volume_id, v.name, HumanBytes(v.size_bytes), v.path});
  PrintTable({"VOLUME", "NAME", "SIZE", "PATH"}, rows);
}

void CmdSnapshotCreate(const Globals& g, const std::string& volume_id, const std::string& description,
                       const std::vector<std::string>& tag_args, bool full) {
  auto dir = OpenDir(g);
  Catalog* cat = dir->catalog();
  VolumeRecord vol = Must(cat->GetVolume(volume_id));
  std::vector<Tag> tags;
  for (const auto& t : tag_args) tags.push_back(Must(ParseTag(t)));
  auto src = Must(FileSource::Open(vol.path), "volume " + volume_id);
  if (src->size() != vol.size_bytes) Must(cat->UpdateVolumeSize(volume_id, src->size()));

  SnapshotRecord rec;
  rec.snapshot_id = NewSnapshotId();
  rec.volume_id = volume_id;
  rec.account_id = vol.account_id;
  rec.state = SnapshotState::kPending;
  rec.progress = "0%";
  rec.start_time_ms = Clock::Real()->NowMillis();
  rec.volume_size_bytes = src->size();
  rec.block_size = dir->repo()->block_size();
  rec.description = description;
  rec.encrypted = dir->repo()->encrypted();
  rec.runner = DataDir::RunnerId();
  rec.tags = tags;
  if (!full) {
    auto parent = cat->LatestCompletedSnapshot(volume_id);
    if (parent) rec.parent_snapshot_id = parent->snapshot_id;
    else if (parent.error().code() != ErrorCode::kNotFound) Must(Status(std::unexpected(parent.error())));
  }
  Must(cat->InsertSnapshot(rec));  // validates the tags before any work

  SnapshotRequest req;
  req.snapshot_id = rec.snapshot_id;
  req.volume_id = volume_id;
  req.owner_id = vol.account_id;
  req.description = description;
  for (const auto& t : tags) req.tags.emplace_back(t.key, t.value);
  req.parent_id = rec.parent_snapshot_id;
  req.start_time_ms = rec.start_time_ms;
  req.lease_holder = rec.runner;

  InstallSignalHandlers();
  ProgressBar bar("snapshot " + rec.snapshot_id);
  int last_pct = -1;
  auto progress = [&](const JobProgress& p) {
    bar.Update(p.bytes_done, p.bytes_total);
    int pct = std::min(p.Percent(), 99);
    if (pct / 5 != last_pct / 5) {  // the catalog hears every 5%
      last_pct = pct;
      (void)cat->UpdateProgress(rec.snapshot_id, std::to_string(pct) + "%");
    }
  };
  SnapshotEngine engine(dir->repo(), dir->pool());
  auto out = engine.Create(src.get(), req, progress, &g_cancel);
  bar.Finish();
  if (!out) {
    std::string why = g_cancel ? "cancelled by a signal" : out.error().message();
    (void)cat->MarkError(rec.snapshot_id, why);
    throw Failure{"snapshot " + rec.snapshot_id + " failed: " + why};
  }
  const SnapshotStats& s = out->stats;
  Must(cat->MarkCompleted(rec.snapshot_id, out->manifest.completed_time_ms,
                          out->manifest.stored_bytes, out->manifest.changed_blocks, s.blocks));
  double secs = (out->manifest.completed_time_ms - rec.start_time_ms) / 1000.0;
  std::cerr << (s.parent_used ? "incremental" : "full") << " snapshot of " << HumanBytes(s.volume_bytes)
            << " in " << secs << " s: " << out->manifest.changed_blocks << " changed blocks, "
            << s.new_chunks << " new chunks (" << HumanBytes(out->manifest.stored_bytes) << " stored), "
            << s.zero_blocks + s.hole_blocks << " empty blocks\n";
  std::cout << rec.snapshot_id << "\n";
}

void CmdSnapshotList(const Globals& g, const std::string& volume_id) {
  auto dir = OpenDir(g);
  SnapshotFilter f;
  if (!volume_id.empty()) f.volume_id = volume_id;
  auto snaps = Must(dir->catalog()->ListSnapshots(f));
  if (g.output == "json") {
    json a = json::array();
    for (const auto& s : snaps) a.push_back(SnapshotJson(s));
    std::cout << json{{"Snapshots", a}}.dump(2) << "\n";
    return;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& s : snaps)
    rows.push_back({s.snapshot_id, s.volume_id, SnapshotStateName(s.state), s.progress,
                    FormatIso8601(s.start_time_ms), HumanBytes(s.volume_size_bytes),
                    HumanBytes(s.stored_bytes), s.description, TagsText(s.tags)});
  PrintTable({"SNAPSHOT", "VOLUME", "STATE", "PROGRESS", "START", "SIZE", "STORED", "DESCRIPTION", "TAGS"}, rows);
}

void CmdSnapshotShow(const Globals& g, const std::string& id) {
  auto dir = OpenDir(g);
  auto s = Must(dir->catalog()->GetSnapshot(id));
  json j = SnapshotJson(s);
  if (auto lock = dir->catalog()->GetSnapshotLock(id)) {
    const int64_t now = Clock::Real()->NowMillis();
    j["Lock"] = LockStateAt(*lock, now) == "expired"
                    ? "expired " + FormatIso8601(lock->expires_ms)
                    : LockStateAt(*lock, now) + " until " + FormatIso8601(lock->expires_ms);
  }
  if (g.output == "json") {
    std::cout << j.dump(2) << "\n";
    return;
  }
  for (auto& [k, v] : j.items()) {
    std::string val = v.is_string() ? v.get<std::string>() : (k == "Tags" ? TagsText(s.tags) : v.dump());
    std::printf("%-18s %s\n", k.c_str(), val.c_str());
  }
}

void CmdSnapshotDelete(const Globals& g, const std::string& id) {
  auto dir = OpenDir(g);
  // engine/snapshot_deletion.h: the same rules as DeleteSnapshot through snapvold. A pending
  // snapshot is being taken only while the process taking it lives.
  // The account's Recycle Bin rules apply here too (snapvold's configured default rule does not).
  bool binned = false;
  Must(DeleteSnapshot({.catalog = dir->catalog(),
                       .repo = dir->repo(),
                       .still_being_taken = [](const SnapshotRecord& s) { return DataDir::RunnerAlive(s.runner); }},
                      id, Clock::Real()->NowMillis(), &binned));
  if (binned)
    std::cout << "deleted " << id << " into the Recycle Bin (a retention rule keeps it; aws ec2 "
              << "restore-snapshot-from-recycle-bin brings it back)\n";
  else
    std::cout << "deleted " << id << " (run `snapvol gc` to reclaim space)\n";
}

void CmdRestore(const Globals& g, const std::string& id, const std::string& to, bool force) {
  auto dir = OpenDir(g);
  if (!IsSnapshotId(id)) throw Failure{"'" + id + "' is not a snapshot id (snap-…)"};
  auto rec = dir->catalog()->GetSnapshot(id);
  if (rec && rec->state != SnapshotState::kCompleted)
    throw Failure{"snapshot " + id + " is " + SnapshotStateName(rec->state) + ", only completed snapshots restore"};
  auto meta = Must(dir->repo()->GetManifest(id));
  auto target = Must(FileTarget::Create(to, meta.volume_size, force), "cannot restore");
  InstallSignalHandlers();
  ProgressBar bar("restore " + id);
  SnapshotEngine engine(dir->repo(), dir->pool());
  auto start = std::chrono::steady_clock::now();
  auto stats = engine.Restore(id, target.get(),
                              [&](const JobProgress& p) { bar.Update(p.bytes_done, p.bytes_total); }, &g_cancel);
  bar.Finish();
  if (!stats) throw Failure{"restore of " + id + " failed, nothing written to " + to + ": " + stats.error().message()};
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cerr << "restored " << HumanBytes(meta.volume_size) << " to " << to << " in " << secs << " s ("
            << stats->hole_blocks << " empty blocks left as holes)\n";
}

int CmdVerify(const Globals& g, const std::vector<std::string>& ids, bool quick) {
  auto dir = OpenDir(g);
  for (const auto& id : ids) {
    if (!IsSnapshotId(id)) throw Failure{"'" + id + "' is not a snapshot id (snap-…)"};
    auto exists = Must(dir->repo()->store()->Exists(Repository::ManifestKey(id)));
    if (!exists) throw Failure{"snapshot " + id + " not found in the store"};
  }
  ProgressBar bar("verify");
  VerifyOptions o;
  o.checksum_only = quick;
  o.progress = [&](size_t done, size_t total) { bar.Update(done, total); };
  auto report = Must(VerifySnapshots(dir->repo(), ids, dir->pool(), o));
  bar.Finish();
  if (g.output == "json") {
    json d = json::array();
    for (const auto& x : report.damaged)
      d.push_back({{"SnapshotId", x.snapshot_id}, {"BadObjects", x.bad_objects}, {"Problems", x.problems}});
    std::cout << json{{"SnapshotsChecked", report.snapshots_checked},
                      {"ObjectsChecked", report.objects_checked},
                      {"BytesChecked", report.bytes_checked}, {"Damaged", d},
                      {"DamagedPacks", report.damaged_packs}}.dump(2) << "\n";
  } else {
    std::cout << "checked " << report.snapshots_checked << " snapshots, " << report.objects_checked
              << " objects, " << HumanBytes(report.bytes_checked) << (quick ? " (checksums only)" : "") << "\n";
    for (const auto& x : report.damaged) {
      std::cout << "DAMAGED " << x.snapshot_id << ": " << x.bad_objects << " bad objects\n";
      for (const auto& p : x.problems) std::cout << "  " << p << "\n";
      // The report keeps the first few problems of each snapshot; the count covers them all.
      if (x.bad_objects > x.problems.size())
        std::cout << "  and " << x.bad_objects - x.problems.size() << " more\n";
    }
    for (const auto& p : report.damaged_packs) std::cout << "DAMAGED PACK " << p << "\n";
    if (report.ok()) std::cout << "all snapshots intact\n";
  }
  return report.ok() ? 0 : 1;
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

void CmdAccountCreate(const Globals& g, const std::string& alias, bool admin) {
  auto dir = OpenDir(g);
  Accounts accounts(dir->catalog(), Must(dir->SecretsKey()));
  auto rec = Must(accounts.CreateAccount(alias, admin));
  std::cout << rec.account_id << "\n";
}

void CmdAccountList(const Globals& g) {
  auto dir = OpenDir(g);
  auto rows = Must(dir->catalog()->ListAccounts());
  if (g.output == "json") {
    json a = json::array();
    for (const auto& r : rows)
      a.push_back({{"AccountId", r.account_id}, {"Alias", r.alias}, {"Administrator", r.is_admin},
                   {"CreateTime", FormatIso8601(r.created_ms)}});
    std::cout << json{{"Accounts", a}}.dump(2) << "\n";
    return;
  }
  std::vector<std::vector<std::string>> table;
  for (const auto& r : rows)
    table.push_back({r.account_id, r.alias, r.is_admin ? "administrator" : "member", FormatIso8601(r.created_ms)});
  PrintTable({"ACCOUNT", "ALIAS", "ROLE", "CREATED"}, table);
}

void CmdKeyCreate(const Globals& g, const std::string& account_id, const std::string& user) {
  auto dir = OpenDir(g);
  Accounts accounts(dir->catalog(), Must(dir->SecretsKey()));
  auto acct = Must(dir->catalog()->GetAccount(account_id));
  auto key = Must(accounts.CreateKey(account_id, user));
  std::cout << Accounts::CredentialsProfile("snapvol-" + acct.alias, key);
  std::cerr << "append this profile to ~/.aws/credentials; the secret is not shown again\n";
}

void CmdKeyList(const Globals& g, const std::string& account_id) {
  auto dir = OpenDir(g);
  std::optional<std::string> filter;
  if (!account_id.empty()) filter = account_id;
  auto rows = Must(dir->catalog()->ListAccessKeys(filter));
  if (g.output == "json") {
    json a = json::array();
    for (const auto& r : rows)
      a.push_back({{"AccessKeyId", r.access_key_id}, {"AccountId", r.account_id},
                   {"UserName", r.user_name}, {"Status", r.active ? "Active" : "Inactive"},
                   {"CreateDate", FormatIso8601(r.created_ms)}});
    std::cout << json{{"AccessKeys", a}}.dump(2) << "\n";
    return;
  }
  std::vector<std::vector<std::string>> table;
  for (const auto& r : rows)
    table.push_back({r.access_key_id, r.account_id, r.user_name, r.active ? "active" : "disabled", FormatIso8601(r.created_ms)});
  PrintTable({"ACCESS KEY", "ACCOUNT", "USER", "STATUS", "CREATED"}, table);
}

// The key a `key disable|enable|delete` names: the positional ID or --access-key-id, once.
// Called while parsing: a usage error (exit 2).
std::string KeyIdArgument(const std::string& positional, const std::string& option) {
  if (positional.empty() == option.empty())
    throw CLI::ValidationError("ID", "give the access key once: snapvol key COMMAND ID (or --access-key-id ID)");
  return positional.empty() ? option : positional;
}

void CmdKeyStatus(const Globals& g, const std::string& id, bool active) {
  auto dir = OpenDir(g);
  Accounts accounts(dir->catalog(), Must(dir->SecretsKey()));
  Must(KeyStatusCommand(&accounts, dir->catalog(), id, active, std::cout));
}

void CmdKeyDelete(const Globals& g, const std::string& id) {
  auto dir = OpenDir(g);
  Accounts accounts(dir->catalog(), Must(dir->SecretsKey()));
  Must(KeyDeleteCommand(&accounts, id, std::cout));
}

// --- IAM policies (`snapvol policy …`) ---

void CmdPolicyList(const Globals& g, const std::string& account_id) {
  auto dir = OpenDir(g);
  std::optional<std::string> filter;
  if (!account_id.empty()) filter = account_id;
  auto attached = Must(dir->catalog()->ListPolicyAttachments(filter));
  auto custom = Must(dir->catalog()->ListIamPolicies());
  std::vector<std::string> names = {"administrator", "member"};
  for (const auto& p : custom) names.push_back(p.name);
  auto accounts_of = [&](const std::string& name) {
    std::vector<std::string> ids;
    for (const auto& a : attached)
      if (a.policy_name == name) ids.push_back(a.account_id);
    return ids;
  };
  auto lifecycle_policies = Must(dir->catalog()->ListLifecyclePolicies(filter));
  // A lifecycle policy's schedules in a few words: "daily-0200-utc: every 24 h at 02:00, keep 7".
  auto summary = [](const LifecyclePolicyRecord& p) {
    auto d = lifecycle::ParsePolicyDetails(json::parse(p.details, nullptr, false), lifecycle::IsDefaultPolicy(p));
    if (!d) return std::string("(does not parse: ") + d.error().message() + ")";
    std::string out;
    for (const auto& s : d->schedules) {
      char when[64];
      if (s.create.cron.empty())
        std::snprintf(when, sizeof when, "every %d h at %02d:%02d UTC", s.create.interval_hours,
                      s.create.time_of_day_min / 60, s.create.time_of_day_min % 60);
      else
        std::snprintf(when, sizeof when, "%s", s.create.cron.c_str());
      std::string keep = s.retain.count > 0 ? "keep " + std::to_string(s.retain.count)
                                            : "keep " + std::to_string(s.retain.interval) + " " + s.retain.interval_unit;
      out += (out.empty() ? "" : "; ") + s.name + ": " + when + ", " + keep;
    }
    return d->resource_type + " " + out;
  };
  if (g.output == "json") {
    json a = json::array();
    for (const auto& n : names) {
      auto ids = accounts_of(n);
      if (filter && ids.empty()) continue;
      a.push_back({{"PolicyName", n}, {"Kind", "iam"}, {"BuiltIn", Accounts::IsBuiltinPolicy(n)},
                   {"AttachedTo", ids}});
    }
    for (const auto& p : lifecycle_policies)
      a.push_back({{"PolicyId", p.policy_id}, {"Kind", "lifecycle"}, {"AccountId", p.account_id},
                   {"Description", p.description}, {"State", p.state},
                   {"Default", lifecycle::IsDefaultPolicy(p)}, {"Schedules", summary(p)}});
    std::cout << json{{"Policies", a}}.dump(2) << "\n";
    return;
  }
  std::vector<std::vector<std::string>> table;
  for (const auto& n : names) {
    auto ids = accounts_of(n);
    if (filter && ids.empty()) continue;
    std::string joined;
    for (const auto& id : ids) joined += (joined.empty() ? "" : ",") + id;
    table.push_back({n, "iam", Accounts::IsBuiltinPolicy(n) ? "built-in" : "custom", joined.empty() ? "-" : joined});
  }
  PrintTable({"POLICY", "KIND", "SOURCE", "ATTACHED TO"}, table);
  if (lifecycle_policies.empty()) return;
  std::cout << "\n";
  table.clear();
  for (const auto& p : lifecycle_policies)
    table.push_back({p.policy_id, "lifecycle", p.account_id, p.state, p.description, summary(p)});
  PrintTable({"POLICY", "KIND", "ACCOUNT", "STATE", "DESCRIPTION", "SCHEDULES"}, table);
}

void CmdPolicyRuns(const Globals& g, const std::string& policy_id, size_t limit) {
  auto dir = OpenDir(g);
  std::optional<std::string> filter;
  if (!policy_id.empty()) {
    Must(dir->catalog()->GetLifecyclePolicy(policy_id));
    filter = policy_id;
  }
  auto runs = Must(dir->catalog()->ListLifecycleRuns(filter, limit));
  if (g.output == "json") {
    json a = json::array();
    for (const auto& r : runs)
      a.push_back({{"PolicyId", r.policy_id}, {"ScheduleName", r.schedule_name},
                   {"ScheduledTime", FormatIso8601(r.scheduled_ms)}, {"StartTime", FormatIso8601(r.started_ms)},
                   {"EndTime", r.finished_ms ? FormatIso8601(r.finished_ms) : ""}, {"State", r.state},
                   {"SnapshotsCreated", r.created}, {"SnapshotsFailed", r.failed},
                   {"SnapshotsDeleted", r.deleted}, {"MissedRuns", r.missed}, {"Message", r.message}});
    std::cout << json{{"Runs", a}}.dump(2) << "\n";
    return;
  }
  std::vector<std::vector<std::string>> table;
  for (const auto& r : runs)
    table.push_back({r.policy_id, r.schedule_name, FormatIso8601(r.scheduled_ms), r.state, std::to_string(r.created),
                     std::to_string(r.failed), std::to_string(r.deleted), std::to_string(r.missed), r.message});
  PrintTable({"POLICY", "SCHEDULE", "SCHEDULED", "STATE", "CREATED", "FAILED", "DELETED", "MISSED", "MESSAGE"}, table);
}

void CmdPolicyShow(const Globals& g, const std::string& name) {
  if (name.rfind("policy-", 0) == 0) {  // a lifecycle policy, shown as DLM's GetLifecyclePolicy does
    auto dir = OpenDir(g);
    auto p = Must(dir->catalog()->GetLifecyclePolicy(name));
    json out = {{"PolicyId", p.policy_id}, {"AccountId", p.account_id}, {"Description", p.description},
                {"State", p.state}, {"ExecutionRoleArn", p.role_arn},
                {"DateCreated", FormatIso8601(p.created_ms)}, {"DateModified", FormatIso8601(p.modified_ms)},
                {"PolicyDetails", json::parse(p.details, nullptr, false)}, {"Tags", json::parse(p.tags, nullptr, false)}};
    std::cout << out.dump(2) << "\n";
    return;
  }
  if (name == "administrator" || name == "member") {
    std::cout << (name == "administrator" ? iam::AdministratorPolicyJson() : iam::MemberPolicyJson()) << "\n";
    return;
  }
  auto dir = OpenDir(g);
  std::cout << Must(dir->catalog()->GetIamPolicy(name)).document << "\n";
}

void CmdPolicyCreate(const Globals& g, const std::string& name, const std::string& file) {
  auto dir = OpenDir(g);
  Accounts accounts(dir->catalog(), Must(dir->SecretsKey()));
  std::vector<uint8_t> raw;
  if (file == "-") {
    std::string all((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    raw.assign(all.begin(), all.end());
  } else {
    raw = Must(ReadWholeFile(file), "cannot read the policy document");
  }
  Must(accounts.PutPolicy(name, std::string(raw.begin(), raw.end())));
  std::cout << "stored policy " << name << "\n";
}

void CmdPolicyDelete(const Globals& g, const std::string& name) {
  if (Accounts::IsBuiltinPolicy(name)) Must(InvalidArgument("policy " + name + " is built in"));
  auto dir = OpenDir(g);
  Must(dir->catalog()->DeleteIamPolicy(name));
  std::cout << "deleted policy " << name << "\n";
}

void CmdPolicyAttach(const Globals& g, const std::string& account_id, const std::string& name, bool attach) {
  auto dir = OpenDir(g);
  Accounts accounts(dir->catalog(), Must(dir->SecretsKey()));
  Must(dir->catalog()->GetAccount(account_id));
  if (attach) {
    Must(accounts.AttachPolicy(account_id, name));
    std::cout << "attached " << name << " to " << account_id << "\n";
  } else {
    Must(accounts.DetachPolicy(account_id, name));
    std::cout << "detached " << name << " from " << account_id << "\n";
  }
}

void CmdAuditList(const Globals& g, const std::string& account_id, size_t limit) {
  auto dir = OpenDir(g);
  auto raw = ReadWholeFile(dir->path() + "/audit.log");
  if (!raw && raw.error().code() != ErrorCode::kNotFound) Must(Status(std::unexpected(raw.error())));
  std::vector<json> lines;
  if (raw) {
    std::string text(raw->begin(), raw->end());
    size_t pos = 0;
    while (pos < text.size()) {
      size_t nl = text.find('\n', pos);
      if (nl == std::string::npos) nl = text.size();
      json j = json::parse(text.substr(pos, nl - pos), nullptr, false);
      pos = nl + 1;
      if (j.is_discarded() || !j.is_object()) continue;  // a torn last line after a crash
      if (!account_id.empty() && j.value("account_id", "") != account_id) continue;
      lines.push_back(std::move(j));
    }
  }
  if (lines.size() > limit) lines.erase(lines.begin(), lines.end() - static_cast<long>(limit));
  if (g.output == "json") {
    std::cout << json{{"AuditEvents", lines}}.dump(2) << "\n";
    return;
  }
  std::vector<std::vector<std::string>> table;
  for (const auto& j : lines)
    table.push_back({j.value("ts", ""), j.value("account_id", "-"), j.value("action", "-"),
                     j.value("error", "").empty() ? "ok" : j.value("error", ""), j.value("decision", "")});
  PrintTable({"TIME", "ACCOUNT", "ACTION", "RESULT", "DECISION"}, table);
}

void CmdRestoreRequestList(const Globals& g, const std::string& account_id) {
  auto dir = OpenDir(g);
  std::optional<std::string> scope;
  if (!account_id.empty()) scope = account_id;
  auto rows = Must(dir->catalog()->ListRestoreRequests(scope));
  if (g.output == "json") {
    json a = json::array();
    for (const auto& r : rows)
      a.push_back({{"RestoreRequestId", r.request_id}, {"OwnerId", r.account_id},
                   {"SnapshotId", r.snapshot_id}, {"RequestedBy", r.requested_by},
                   {"Reason", r.reason}, {"State", r.state}, {"DecidedBy", r.decided_by},
                   {"DecisionReason", r.decision_reason}, {"VolumeId", r.volume_id},
                   {"RestoreType", r.restore_type}, {"ReplaceRootVolumeTaskId", r.task_id},
                   {"CreateTime", FormatIso8601(r.created_ms)}});
    std::cout << json{{"RestoreRequests", a}}.dump(2) << "\n";
    return;
  }
  std::vector<std::vector<std::string>> table;
  for (const auto& r : rows)
    table.push_back({r.request_id, r.account_id, r.snapshot_id, r.state, r.restore_type, r.requested_by, r.reason,
                     r.volume_id, r.task_id});
  PrintTable({"REQUEST", "ACCOUNT", "SNAPSHOT", "STATE", "TYPE", "BY", "REASON", "VOLUME", "TASK"}, table);
}

// Restore requests through the daemon's API, signed with the caller's own keys.
void CmdRestoreRequestCall(const ApiClientOptions& api, const std::string& action,
                           const std::vector<std::pair<std::string, std::string>>& params) {
  if (api.endpoint.empty()) throw Failure{"--endpoint is required (e.g. http://127.0.0.1:8787)"};
  std::string xml = Must(CallApi(api, action, params));
  std::string id = XmlField(xml, "restoreRequestId"), state = XmlField(xml, "state");
  std::string volume = XmlField(xml, "volumeId"), task = XmlField(xml, "replaceRootVolumeTaskId");
  std::cout << id << "\n";
  std::cerr << "restore request " << id << " is " << state;
  if (!task.empty()) std::cerr << "; " << volume << " is being rolled back in place by task " << task;
  else if (XmlField(xml, "restoreType") == "in-place") std::cerr << "; it asks to roll " << volume << " back in place";
  else if (!volume.empty()) std::cerr << "; the snapshot is being restored into " << volume;
  std::cerr << "\n";
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
                   "(far fewer objects and requests; no upgrade from 1 yet)")
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

  auto* volume = app.add_subcommand("volume", "Register and list volumes");
  volume->require_subcommand(1);
  auto* vreg = volume->add_subcommand("register", "Register a file or block device as a volume; prints its vol- id");
  std::string vpath, vname;
  vreg->add_option("--path", vpath, "File or block device")->required();
  std::string vaccount;
  Attachment vattach;
  vreg->add_option("--name", vname, "A name for people");
  vreg->add_option("--account-id", vaccount, "The owning account (default: the offline default account)");
  vreg->add_option("--instance-id", vattach.instance_id, "Attach to this instance (i-…)");
  vreg->add_option("--device", vattach.device, "Device name on the instance, e.g. /dev/xvda");
  vreg->add_flag("--boot", vattach.boot, "This is the instance's boot volume (--device must be its root device)");
  vreg->callback([&] { action = [&] { CmdVolumeRegister(g, vpath, vname, vaccount, vattach); }; });

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
  auto* vlist = volume->add_subcommand("list", "List registered volumes");
  vlist->callback([&] { action = [&] { CmdVolumeList(g); }; });

  auto* snap = app.add_subcommand("snapshot", "Create, list, show and delete snapshots");
  snap->require_subcommand(1);
  auto* screate = snap->add_subcommand("create", "Snapshot a volume (incremental against its latest snapshot); prints the snap- id");
  std::string svol, sdesc, sid;
  std::vector<std::string> stags;
  bool sfull = false;
  screate->add_option("--volume-id", svol, "The volume (vol-…)")->required();
  screate->add_option("--description", sdesc, "Free text");
  screate->add_option("--tag", stags, "KEY=VALUE, repeatable")->take_all();
  screate->add_flag("--full", sfull, "Read and compare everything without using the parent");
  screate->callback([&] { action = [&] { CmdSnapshotCreate(g, svol, sdesc, stags, sfull); }; });
  auto* slist = snap->add_subcommand("list", "List snapshots");
  slist->add_option("--volume-id", svol, "Only this volume's");
  slist->callback([&] { action = [&] { CmdSnapshotList(g, svol); }; });
  auto* sshow = snap->add_subcommand("show", "Show one snapshot");
  sshow->add_option("--snapshot-id", sid, "The snapshot (snap-…)")->required();
  sshow->callback([&] { action = [&] { CmdSnapshotShow(g, sid); }; });
  auto* sdel = snap->add_subcommand("delete", "Delete a snapshot (space is reclaimed by gc)");
  sdel->add_option("--snapshot-id", sid, "The snapshot (snap-…)")->required();
  sdel->callback([&] { action = [&] { CmdSnapshotDelete(g, sid); }; });

  auto* restore = app.add_subcommand("restore", "Restore a snapshot to a new file or a block device");
  std::string rto;
  bool rforce = false;
  restore->add_option("--snapshot-id", sid, "The snapshot (snap-…)")->required();
  restore->add_option("--to", rto, "Target file or block device")->required();
  restore->add_flag("--force", rforce, "Overwrite an existing target");
  restore->callback([&] { action = [&] { CmdRestore(g, sid, rto, rforce); }; });

  auto* verify = app.add_subcommand("verify", "Re-read and check every object snapshots reference; exit 1 if any is damaged");
  std::vector<std::string> vids;
  bool quick = false;
  verify->add_option("--snapshot-id", vids, "Only these snapshots (repeatable; default all)");
  verify->add_flag("--quick", quick, "Check checksums only (no decompression or id check)");
  verify->callback([&] { action = [&] { exit_code = CmdVerify(g, vids, quick); }; });

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

  auto* account = app.add_subcommand("account", "Accounts (teams)");
  account->require_subcommand(1);
  auto* acreate = account->add_subcommand("create", "Create an account; prints its 12-digit id");
  std::string alias;
  bool admin = false;
  acreate->add_option("--alias", alias, "The account's alias (OwnerAlias)")->required();
  acreate->add_flag("--admin", admin, "An administrator account (may restore)");
  acreate->callback([&] { action = [&] { CmdAccountCreate(g, alias, admin); }; });
  auto* alist = account->add_subcommand("list", "List accounts");
  alist->callback([&] { action = [&] { CmdAccountList(g); }; });
  auto* aquota = account->add_subcommand(
      "set-quota",
      "Limit what an account (--account-id) or, by default, every account (--default) may hold. Each limit is\n"
      "a whole number, 'unlimited', or for an account 'default' (drop its own, take the default's); 0 allows\n"
      "none. Unset limits keep their value; with no default set there is no limit. Volumes count when\n"
      "snapvol keeps their data (created or restored through the API), not those registered by path;\n"
      "snapshots count in every state. Over a limit, CreateVolume answers VolumeLimitExceeded and\n"
      "CreateSnapshot(s)/CopySnapshot/lifecycle policies SnapshotLimitExceeded; nothing existing is removed.");
  std::string quota_account;
  bool quota_default = false;
  std::map<QuotaKind, std::string> quota_given;
  std::string quota_text[std::size(kQuotaKinds)];
  auto* quota_account_opt = aquota->add_option("--account-id", quota_account, "The account (12 digits)");
  aquota->add_flag("--default", quota_default, "Set the defaults, which hold for every account without its own")
      ->excludes(quota_account_opt);
  const char* quota_help[] = {"Total size of the account's volumes, in GiB", "Number of volumes",
                              "Number of snapshots"};
  std::vector<CLI::Option*> quota_opts;
  for (size_t i = 0; i < std::size(kQuotaKinds); ++i)
    quota_opts.push_back(aquota->add_option(std::string("--") + QuotaKindName(kQuotaKinds[i]), quota_text[i],
                                            std::string(quota_help[i]) + ": N, unlimited or default"));
  aquota->callback([&, quota_opts] { action = [&, quota_opts] {
    if (quota_account.empty() && !quota_default) throw Failure{"set-quota needs --account-id ACCOUNT or --default"};
    for (size_t i = 0; i < quota_opts.size(); ++i)
      if (quota_opts[i]->count() > 0) quota_given[kQuotaKinds[i]] = quota_text[i];
    auto dir = OpenDir(g);
    Must(SetQuotaCommand(dir->catalog(), quota_default ? std::string(kQuotaDefaults) : quota_account, quota_given));
    Must(ShowQuotaCommand(dir->catalog(), quota_default ? std::nullopt : std::optional(quota_account),
                          g.output == "json", std::cout));
  }; });
  auto* ashow = account->add_subcommand("show-quota", "Show the default limits and each account's usage and limits "
                                                      "('(default)': the account takes the default)");
  ashow->add_option("--account-id", quota_account, "Only this account");
  ashow->callback([&] { action = [&] {
    auto dir = OpenDir(g);
    Must(ShowQuotaCommand(dir->catalog(), quota_account.empty() ? std::nullopt : std::optional(quota_account),
                          g.output == "json", std::cout));
  }; });
  auto* ausage = account->add_subcommand(
      "usage",
      "Show the stored bytes each account's snapshots hold exclusively (deleting all of them would free\n"
      "them) and share with other accounts' snapshots, after applying the changes not yet counted");
  ausage->add_option("--account-id", quota_account, "Only this account");
  bool usage_rebuild = false;
  ausage->add_flag("--rebuild", usage_rebuild,
                   "Count every completed snapshot again from the store (reads each snapshot's index pages)");
  ausage->callback([&] { action = [&] {
    auto dir = OpenDir(g);
    UsageAccounting usage(dir->catalog(), dir->repo());
    Must(AccountUsageCommand(dir->catalog(), &usage, quota_account.empty() ? std::nullopt : std::optional(quota_account),
                             usage_rebuild, g.output == "json", std::cout));
  }; });

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

  auto* key = app.add_subcommand("key", "API access keys");
  key->require_subcommand(1);
  std::string key_account, key_user, key_id;
  auto* kcreate = key->add_subcommand("create", "Create an access key; prints an AWS credentials profile");
  kcreate->add_option("--account-id", key_account, "The account")->required();
  kcreate->add_option("--user", key_user, "User name (default: the account alias)");
  kcreate->callback([&] { action = [&] { CmdKeyCreate(g, key_account, key_user); }; });
  auto* klist = key->add_subcommand("list", "List access keys (never their secrets)");
  klist->add_option("--account-id", key_account, "Only this account's");
  klist->callback([&] { action = [&] { CmdKeyList(g, key_account); }; });
  std::string key_pos;
  auto* kdel = key->add_subcommand("delete", "Delete an access key (refused for the last active administrator key)");
  kdel->add_option("ID", key_pos, "The key");
  kdel->add_option("--access-key-id", key_id, "The key (instead of ID)");
  kdel->callback([&] {
    std::string id = KeyIdArgument(key_pos, key_id);
    action = [&g, id] { CmdKeyDelete(g, id); };
  });
  for (bool enable : {false, true}) {
    auto* kst = key->add_subcommand(enable ? "enable" : "disable",
                                    enable ? "Enable a disabled access key"
                                           : "Disable an access key: refused everywhere until enabled again "
                                             "(refused for the last active administrator key)");
    kst->add_option("ID", key_pos, "The key");
    kst->add_option("--access-key-id", key_id, "The key (instead of ID)");
    kst->callback([&, enable] {
      std::string id = KeyIdArgument(key_pos, key_id);
      action = [&g, id, enable] { CmdKeyStatus(g, id, enable); };
    });
  }

  auto* policy = app.add_subcommand("policy", "IAM policies (what each account may call) and lifecycle policies (automatic snapshots)");
  policy->require_subcommand(1);
  std::string pol_name, pol_account, pol_file;
  auto* plist = policy->add_subcommand("list", "List policies and the accounts they are attached to");
  plist->add_option("--account-id", pol_account, "Only the policies attached to this account");
  plist->callback([&] { action = [&] { CmdPolicyList(g, pol_account); }; });
  auto* pshow = policy->add_subcommand("show", "Print an IAM policy's document or a lifecycle policy (policy-…)");
  pshow->add_option("name", pol_name, "IAM policy name (administrator, member, a custom one) or lifecycle policy id")
      ->required();
  size_t runs_limit = 50;
  auto* pruns = policy->add_subcommand("runs", "Lifecycle policy runs, newest first: snapshots made, failed, deleted");
  pruns->add_option("--policy-id", pol_name, "Only this policy's runs");
  pruns->add_option("--limit", runs_limit, "At most this many (default 50)");
  pruns->callback([&] { action = [&] { CmdPolicyRuns(g, pol_name, runs_limit); }; });
  pshow->callback([&] { action = [&] { CmdPolicyShow(g, pol_name); }; });
  auto* pcreate = policy->add_subcommand("create", "Store a custom IAM policy (replaces one of the same name)");
  pcreate->add_option("--name", pol_name, "1-128 of A-Z a-z 0-9 + = , . @ _ -")->required();
  pcreate->add_option("--document", pol_file, "File with the IAM JSON document, or - for stdin")->required();
  pcreate->callback([&] { action = [&] { CmdPolicyCreate(g, pol_name, pol_file); }; });
  auto* pdelete = policy->add_subcommand("delete", "Delete a custom policy (detach it everywhere first)");
  pdelete->add_option("--name", pol_name, "The policy")->required();
  pdelete->callback([&] { action = [&] { CmdPolicyDelete(g, pol_name); }; });
  auto* pattach = policy->add_subcommand("attach", "Attach a policy to an account (takes effect on its next request)");
  pattach->add_option("--account-id", pol_account, "The account")->required();
  pattach->add_option("--policy-name", pol_name, "administrator, member, or a custom policy")->required();
  pattach->callback([&] { action = [&] { CmdPolicyAttach(g, pol_account, pol_name, true); }; });
  auto* pdetach = policy->add_subcommand("detach", "Detach a policy from an account");
  pdetach->add_option("--account-id", pol_account, "The account")->required();
  pdetach->add_option("--policy-name", pol_name, "The policy")->required();
  pdetach->callback([&] { action = [&] { CmdPolicyAttach(g, pol_account, pol_name, false); }; });

  auto* rreq = app.add_subcommand("restore-request", "Restore requests filed through the API");
  rreq->require_subcommand(1);
  auto* rrlist = rreq->add_subcommand("list", "List restore requests (approve or reject them through the API)");
  std::string rr_account;
  rrlist->add_option("--account-id", rr_account, "Only this account's");
  rrlist->callback([&] { action = [&] { CmdRestoreRequestList(g, rr_account); }; });
  ApiClientOptions api;
  std::string rr_snapshot, rr_reason, rr_id, rr_in_place;
  auto api_flags = [&](CLI::App* cmd) {
    cmd->add_option("--endpoint", api.endpoint, "snapvold's URL, e.g. http://127.0.0.1:8787")->required();
    cmd->add_option("--profile", api.profile, "AWS credentials profile (default: $AWS_PROFILE or the env keys)");
    cmd->add_option("--region", api.region, "Region to sign for (default: $AWS_DEFAULT_REGION or us-east-1)");
  };
  auto* rrcreate = rreq->add_subcommand("create", "Ask an administrator to restore one of your snapshots (signed with your keys)");
  api_flags(rrcreate);
  rrcreate->add_option("--snapshot-id", rr_snapshot, "The snapshot to restore")->required();
  rrcreate->add_option("--reason", rr_reason, "Why, for the administrator");
  rrcreate->add_option("--in-place", rr_in_place,
                       "Roll this registered volume (vol-…) back in place instead of restoring into a new volume");
  rrcreate->callback([&] { action = [&] {
    std::vector<std::pair<std::string, std::string>> params = {{"SnapshotId", rr_snapshot}, {"Reason", rr_reason}};
    if (!rr_in_place.empty()) {
      params.push_back({"RestoreType", "in-place"});
      params.push_back({"VolumeId", rr_in_place});
    }
    CmdRestoreRequestCall(api, "CreateRestoreRequest", params);
  }; });
  auto* rrapprove = rreq->add_subcommand("approve", "Approve a request: restores the snapshot into a new volume, or "
                                                    "starts the in-place rollback it asks for (administrators)");
  api_flags(rrapprove);
  rrapprove->add_option("--restore-request-id", rr_id, "The request (rr-…)")->required();
  rrapprove->add_option("--reason", rr_reason, "A note for the requester");
  rrapprove->callback([&] { action = [&] {
    CmdRestoreRequestCall(api, "ApproveRestoreRequest", {{"RestoreRequestId", rr_id}, {"Reason", rr_reason}});
  }; });
  auto* rrreject = rreq->add_subcommand("reject", "Reject a request with a reason (administrators)");
  api_flags(rrreject);
  rrreject->add_option("--restore-request-id", rr_id, "The request (rr-…)")->required();
  rrreject->add_option("--reason", rr_reason, "Why")->required();
  rrreject->callback([&] { action = [&] {
    CmdRestoreRequestCall(api, "RejectRestoreRequest", {{"RestoreRequestId", rr_id}, {"Reason", rr_reason}});
  }; });

  auto* audit = app.add_subcommand("audit", "The daemon's audit log of API decisions");
  audit->require_subcommand(1);
  auto* alog = audit->add_subcommand("list", "Show the latest audit events");
  std::string audit_account;
  size_t audit_limit = 100;
  alog->add_option("--account-id", audit_account, "Only this account's requests");
  alog->add_option("--limit", audit_limit, "At most this many, newest last (default 100)");
  alog->callback([&] { action = [&] { CmdAuditList(g, audit_account, audit_limit); }; });

  AddNbdCommands(app, &action, &exit_code);
  AddNotifyCommands(app, &action, &exit_code);
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
