#include "lifecycle/restore_drill.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>

#include "core/file_util.h"
#include "core/human_bytes.h"
#include "core/subprocess.h"
#include "engine/snapshot_engine.h"
#include "volume/block_source.h"

namespace snapvol::lifecycle {
namespace {

std::string Seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", s);
  return buf;
}

// The check command's argv for image (see DrillOptions).
std::vector<std::string> CheckArgv(const DrillOptions& o, const std::string& image, const SnapshotRecord& s) {
  std::vector<std::string> argv;
  bool named = false;
  for (std::string a : o.check_command) {
    for (const auto& [key, value] : {std::pair<std::string, std::string>{"{image}", image},
                                     {"{snapshot}", s.snapshot_id}, {"{volume}", s.volume_id}}) {
      for (size_t at = a.find(key); at != std::string::npos; at = a.find(key, at + value.size())) {
        a.replace(at, key.size(), value);
        if (key == "{image}") named = true;
      }
    }
    argv.push_back(std::move(a));
  }
  if (!named) argv.push_back(image);
  return argv;
}

}  // namespace

std::vector<std::string> SplitCommand(const std::string& command) {
  std::vector<std::string> out;
  std::string word;
  for (char c : command) {
    if (c == ' ' || c == '\t') {
      if (!word.empty()) out.push_back(std::move(word));
      word.clear();
    } else {
      word += c;
    }
  }
  if (!word.empty()) out.push_back(std::move(word));
  return out;
}

std::vector<SnapshotRecord> PickDrillSnapshots(const std::vector<SnapshotRecord>& completed,
                                               const std::vector<RestoreDrillRecord>& drills, size_t per_account,
                                               int64_t run_id) {
  std::map<std::string, int64_t> drilled;
  std::set<std::string> by_this_run;
  for (const auto& d : drills) {
    drilled[d.snapshot_id] = d.drilled_ms;
    if (d.run_id == run_id) by_this_run.insert(d.snapshot_id);
  }
  // The latest completed snapshot of each volume, by account.
  std::map<std::string, std::map<std::string, const SnapshotRecord*>> latest;
  for (const auto& s : completed) {
    if (s.state != SnapshotState::kCompleted) continue;
    const SnapshotRecord*& slot = latest[s.account_id][s.volume_id];
    if (!slot || s.start_time_ms > slot->start_time_ms ||
        (s.start_time_ms == slot->start_time_ms && s.snapshot_id > slot->snapshot_id))
      slot = &s;
  }
  std::vector<SnapshotRecord> out;
  for (const auto& [account, volumes] : latest) {
    std::vector<const SnapshotRecord*> mine;
    for (const auto& [volume, s] : volumes) {
      if (!by_this_run.count(s->snapshot_id)) mine.push_back(s);
    }
    auto last = [&](const SnapshotRecord* s) {
      auto it = drilled.find(s->snapshot_id);
      return it == drilled.end() ? int64_t{0} : it->second;
    };
    std::sort(mine.begin(), mine.end(), [&](const SnapshotRecord* a, const SnapshotRecord* b) {
      if (last(a) != last(b)) return last(a) < last(b);
      if (a->start_time_ms != b->start_time_ms) return a->start_time_ms > b->start_time_ms;
      return a->snapshot_id < b->snapshot_id;
    });
    for (size_t i = 0; i < mine.size() && i < per_account; ++i) out.push_back(*mine[i]);
  }
  return out;
}

DrillOutcome DrillSnapshot(Repository* repo, ThreadPool* pool, const SnapshotRecord& s, const DrillOptions& o,
                           Clock* clock, const std::atomic<bool>* cancel) {
  DrillOutcome out;
  RestoreDrillRecord& rec = out.record;
  rec.snapshot_id = s.snapshot_id;
  rec.volume_bytes = s.volume_size_bytes;
  const std::string what = s.snapshot_id + " (" + s.volume_id + ", " + HumanBytes(s.volume_size_bytes) + ")";
  auto fail = [&](const std::string& problem) {
    rec.ok = false;
    rec.problem = problem;
    rec.drilled_ms = clock->NowMillis();
    out.summary = what + ": FAILED: " + problem;
    return out;
  };
  // The images are whole volumes of the teams' data: only a directory no one else can enter will
  // do. One made here is; one that exists is checked, never changed (it may be the operator's).
  if (auto made = MakeDirs(o.scratch_dir, 0700); !made) return fail("scratch directory: " + made.error().message());
  struct stat st {};
  if (::stat(o.scratch_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return fail("scratch directory " + o.scratch_dir + " is not a directory");
  if ((st.st_mode & 077) != 0 || st.st_uid != ::geteuid()) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
    return fail("scratch directory " + o.scratch_dir + " is open to others (mode " + mode + ", owner uid " +
                std::to_string(st.st_uid) + "): make it 0700 and this service's own, or name another");
  }
  const std::string image = o.scratch_dir + "/" + s.snapshot_id + ".img";
  // Left by a drill that was killed: the scratch directory is the drills' own.
  ::unlink(image.c_str());

  const auto start = std::chrono::steady_clock::now();
  Result<RestoreStats> restored = [&]() -> Result<RestoreStats> {
    ASSIGN_OR_RETURN(auto target, FileTarget::Create(image, s.volume_size_bytes, false));
    SnapshotEngine engine(repo, pool);
    return engine.Restore(s.snapshot_id, target.get(), nullptr, cancel);
  }();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  struct Removed {
    const std::string& path;
    ~Removed() {
      ::unlink(path.c_str());
      ::unlink((path + ".snapvol-partial").c_str());
    }
  } removed{image};
  if (!restored) {
    if (cancel && cancel->load()) {
      out.stopped = true;
      return out;
    }
    const Error& e = restored.error();
    if (e.code() == ErrorCode::kCorruption) return fail("the restore found damage: " + e.message());
    if (e.code() == ErrorCode::kNoSpace)
      return fail("could not restore: " + o.scratch_dir + " is full (the drill needs up to " +
                  HumanBytes(s.volume_size_bytes) + " there): " + e.message());
    return fail("could not restore: " + e.message());
  }
  out.blocks = restored->blocks;
  rec.restore_ms = static_cast<int64_t>(secs * 1000);
  const double rate = secs > 0 ? static_cast<double>(s.volume_size_bytes) / secs : 0;
  std::string line = what + ": restored in " + Seconds(secs) + " (" + HumanBytes(static_cast<uint64_t>(rate)) +
                     "/s), every block matched its id";
  if (!o.check_command.empty()) {
    auto argv = CheckArgv(o, image, s);
    auto ran = RunCommand(argv, "", o.check_timeout_ms, 4096);
    if (!ran) return fail("the check command could not run: " + ran.error().message());
    if (!ran->ok()) return fail("the restore matched every id, but the check `" + o.check_command[0] + "` " +
                                ran->Describe(o.check_timeout_ms));
    line += "; `" + o.check_command[0] + "` passed";
  }
  rec.ok = true;
  rec.drilled_ms = clock->NowMillis();
  out.summary = line;
  return out;
}

}  // namespace snapvol::lifecycle
