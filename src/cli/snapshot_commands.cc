#include "cli/snapshot_commands.h"

#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/data_dir.h"
#include "cli/progress_bar.h"
#include "core/human_bytes.h"
#include "core/ids.h"
#include "engine/qemu_cut_driver.h"
#include "engine/registered_sources.h"
#include "engine/snapshot_deletion.h"
#include "engine/snapshot_engine.h"
#include "engine/snapshot_jobs.h"
#include "store/verify.h"
#include "volume/block_source.h"

namespace snapvol::cli {
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

void CmdSnapshotCreate(const Globals& g, const std::string& volume_id, const std::string& description,
                       const std::vector<std::string>& tag_args, bool full) {
  auto dir = OpenDir(g);
  Catalog* cat = dir->catalog();
  VolumeRecord vol = Must(cat->GetVolume(volume_id));
  std::vector<Tag> tags;
  for (const auto& t : tag_args) tags.push_back(Must(ParseTag(t)));
  std::string parent_id;
  if (!full) {
    auto parent = cat->LatestCompletedSnapshot(volume_id);
    if (parent) parent_id = parent->snapshot_id;
    else if (parent.error().code() != ErrorCode::kNotFound) Must(Status(std::unexpected(parent.error())));
  }
  // The cut (engine/registered_sources.h): a reflink clone of an image file, an exclusive open
  // of a block device, or else the volume read while it runs; the tags say which.
  const std::string snapshot_id = NewSnapshotId();
  RegisteredSourceProvider provider(dir->repo()->block_size(), QemuScratchDir(dir->path()));
  PreparedSource prepared = Must(provider.Prepare(vol, snapshot_id, parent_id), "volume " + volume_id).value_or(PreparedSource{});
  struct EndCut {  // tells the cut how the snapshot ended (a failed one keeps the old base clone)
    PreparedSource* p;
    bool completed = false;
    ~EndCut() {
      if (p->on_done) p->on_done(completed);
    }
  } end_cut{&prepared};
  std::shared_ptr<BlockSource> src = prepared.source;
  if (!src) src = Must(FileSource::Open(vol.path), "volume " + volume_id);
  if (src->size() != vol.size_bytes) Must(cat->UpdateVolumeSize(volume_id, src->size()));

  SnapshotRecord rec;
  rec.snapshot_id = snapshot_id;
  rec.volume_id = volume_id;
  rec.account_id = vol.account_id;
  rec.state = SnapshotState::kPending;
  rec.progress = "0%";
  rec.start_time_ms = Clock::Real()->NowMillis();
  rec.volume_size_bytes = src->size();
  rec.block_size = dir->repo()->block_size();
  rec.description = description;
  rec.encrypted = dir->repo()->encrypted();
  rec.runner = dir->RunnerId();
  rec.tags = tags;
  rec.parent_snapshot_id = parent_id;
  AddSourceTags(prepared, !parent_id.empty(), &rec.tags);
  Must(cat->InsertSnapshot(rec));  // validates the tags before any work

  SnapshotRequest req;
  req.snapshot_id = rec.snapshot_id;
  req.volume_id = volume_id;
  req.owner_id = vol.account_id;
  req.description = description;
  for (const auto& t : rec.tags) req.tags.emplace_back(t.key, t.value);
  req.parent_id = rec.parent_snapshot_id;
  req.start_time_ms = rec.start_time_ms;
  req.lease_holder = rec.runner;
  req.maybe_changed = prepared.maybe_changed;

  InstallSignalHandlers();
  ProgressBar bar("snapshot " + rec.snapshot_id);
  int written_pct = 0;
  auto progress = [&](const JobProgress& p) {
    bar.Update(p.bytes_done, p.bytes_total);
    if (auto pct = ProgressToWrite(written_pct, p.Percent())) {
      written_pct = *pct;
      (void)cat->UpdateProgress(rec.snapshot_id, std::to_string(*pct) + "%");
    }
  };
  SnapshotEngine engine(dir->repo(), dir->pool());
  auto out = engine.Create(src.get(), req, progress, &g_cancel);
  bar.Finish();
  src.reset();  // the clone is closed before it becomes the base (or is removed)
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
            << s.zero_blocks + s.hole_blocks << " empty blocks, " << s.bytes_read << " bytes read\n";
  for (const auto& t : rec.tags)
    if (t.key == kConsistencyTag || t.key == kChangedBlocksTag) std::cerr << t.key << ": " << t.value << "\n";
  end_cut.completed = true;
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
  // A reflink volume keeps the clone of its newest snapshot as the next one's base: its cost.
  if (auto vol = dir->catalog()->GetVolume(s.volume_id); vol && !vol->managed)
    if (auto base = BaseCloneOf(vol->path, s.volume_id); base && *base && (*base)->snapshot_id == id)
      j["BaseClone"] = (*base)->path + " (" + HumanBytes((*base)->exclusive_bytes) + " held by the clone alone, " +
                       std::to_string((*base)->exclusive_bytes) + " bytes)";
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
  // The account's Recycle Bin rules apply here too, and snapvold's default rule as it recorded
  // it in the catalog when it started.
  bool binned = false;
  const int64_t default_days = Must(dir->catalog()->GetRecycleBinDefaultRetentionDays());
  Must(DeleteSnapshot({.catalog = dir->catalog(),
                       .repo = dir->repo(),
                       .still_being_taken = [d = dir.get()](const SnapshotRecord& s) { return d->RunnerAlive(s.runner); },
                       .recycle_bin = {.default_retention_days = default_days}},
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

struct SnapshotOptions {
  std::string volume_id, description, snapshot_id, to;
  std::vector<std::string> tags, verify_ids;
  bool full = false, force = false, quick = false;
};

}  // namespace

void AddSnapshotCommands(CLI::App& app, const Globals& g, std::function<void()>* action, int* exit_code) {
  auto o = std::make_shared<SnapshotOptions>();
  auto* snap = app.add_subcommand("snapshot", "Create, list, show and delete snapshots");
  snap->require_subcommand(1);
  auto* screate = snap->add_subcommand("create", "Snapshot a volume (incremental against its latest snapshot); prints the snap- id");
  screate->add_option("--volume-id", o->volume_id, "The volume (vol-…)")->required();
  screate->add_option("--description", o->description, "Free text");
  screate->add_option("--tag", o->tags, "KEY=VALUE, repeatable")->take_all();
  screate->add_flag("--full", o->full, "Read and compare everything without using the parent");
  screate->callback([o, &g, action] {
    *action = [o, &g] { CmdSnapshotCreate(g, o->volume_id, o->description, o->tags, o->full); };
  });
  auto* slist = snap->add_subcommand("list", "List snapshots");
  slist->add_option("--volume-id", o->volume_id, "Only this volume's");
  slist->callback([o, &g, action] { *action = [o, &g] { CmdSnapshotList(g, o->volume_id); }; });
  auto* sshow = snap->add_subcommand("show", "Show one snapshot");
  sshow->add_option("--snapshot-id", o->snapshot_id, "The snapshot (snap-…)")->required();
  sshow->callback([o, &g, action] { *action = [o, &g] { CmdSnapshotShow(g, o->snapshot_id); }; });
  auto* sdel = snap->add_subcommand("delete", "Delete a snapshot (space is reclaimed by gc)");
  sdel->add_option("--snapshot-id", o->snapshot_id, "The snapshot (snap-…)")->required();
  sdel->callback([o, &g, action] { *action = [o, &g] { CmdSnapshotDelete(g, o->snapshot_id); }; });

  auto* restore = app.add_subcommand("restore", "Restore a snapshot to a new file or a block device");
  restore->add_option("--snapshot-id", o->snapshot_id, "The snapshot (snap-…)")->required();
  restore->add_option("--to", o->to, "Target file or block device")->required();
  restore->add_flag("--force", o->force, "Overwrite an existing target");
  restore->callback([o, &g, action] { *action = [o, &g] { CmdRestore(g, o->snapshot_id, o->to, o->force); }; });

  auto* verify = app.add_subcommand("verify", "Re-read and check every object snapshots reference; exit 1 if any is damaged");
  verify->add_option("--snapshot-id", o->verify_ids, "Only these snapshots (repeatable; default all)");
  verify->add_flag("--quick", o->quick, "Check checksums only (no decompression or id check)");
  verify->callback([o, &g, action, exit_code] {
    *action = [o, &g, exit_code] { *exit_code = CmdVerify(g, o->verify_ids, o->quick); };
  });
}

}  // namespace snapvol::cli
