// `snapvol gc` (see gc_command.h).
#include "cli/gc_command.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "core/human_bytes.h"
#include "engine/ended_leases.h"
#include "engine/recycle_bin.h"
#include "engine/usage_accounting.h"
#include "store/gc.h"

namespace snapvol {
namespace {


// Packs that a run (dry run: would) keep as they are: neither deleted nor rewritten.
uint64_t PacksKept(const GcReport& r) { return r.packs - std::min(r.packs, r.packs_deleted); }

nlohmann::json ReportJson(const GcReport& r, bool dry_run, uint32_t format) {
  nlohmann::json j = {{"DryRun", dry_run},
                      {"StoreFormat", format},
                      {"Snapshots", r.manifests},
                      {"LiveChunks", r.live_chunks},
                      {"LivePages", r.live_pages},
                      {"DeletedChunks", r.deleted_chunks},
                      {"DeletedPages", r.deleted_pages},
                      {"DeletedBytes", r.deleted_bytes},
                      {"DeletedRoots", r.deleted_roots},
                      {"DeadBytes", r.dead_bytes},
                      {"KeptYoung", r.kept_young},
                      {"LiveLeases", r.live_leases},
                      {"StaleLeasesRemoved", r.stale_leases_removed},
                      {"TemporariesRemoved", r.temporaries_removed},
                      {"GoneRunsRemoved", r.gone_runs_removed}};
  if (format == 2) {
    j["Packs"] = {{"Before", r.packs},
                  {"Kept", PacksKept(r)},
                  {"Deleted", r.packs_deleted - std::min(r.packs_deleted, r.packs_repacked)},
                  {"Repacked", r.packs_repacked},
                  {"Written", r.packs_written},
                  {"DamagedKept", r.packs_damaged_kept},
                  {"Lost", r.packs_lost},
                  {"Unindexed", r.packs_unindexed},
                  {"After", PacksKept(r) + r.packs_written}};
    j["Format1Leftovers"] = {{"Deleted", r.leftovers_deleted},
                             {"DeletedBytes", r.leftover_bytes_deleted},
                             {"KeptYoung", r.leftovers_young},
                             {"KeptNeeded", r.leftovers_needed}};
  }
  return j;
}

void PrintReport(const GcReport& r, bool dry_run, uint32_t format, std::ostream& out) {
  for (const auto& run : r.gone_runs_removed)
    out << "removed the record of a gc or verification run whose process is gone (" << run << ")\n";
  out << (dry_run ? "would delete " : "deleted ") << r.deleted_chunks << " chunks and " << r.deleted_pages
      << " index pages (" << HumanBytes(r.deleted_bytes) << "), " << r.deleted_roots
      << " deleted snapshot roots; kept " << r.live_chunks << " live chunks of " << r.manifests << " snapshots";
  if (format != 2 && r.kept_young) out << " and " << r.kept_young << " objects younger than the grace period";
  out << "\n";
  if (format != 2) return;
  // In format 2 GC frees whole packs: the bytes freed are those of the packs deleted less
  // those of the new packs, set against the dead bytes found (stored bytes of objects no
  // surviving snapshot references), so an operator sees what the threshold leaves behind.
  const uint64_t deleted = r.packs_deleted - std::min(r.packs_deleted, r.packs_repacked);
  out << "packs: " << r.packs << " before; " << (dry_run ? "would delete " : "deleted ") << deleted
      << " with nothing live, " << (dry_run ? "would repack " : "repacked ") << r.packs_repacked;
  if (!dry_run) out << " into " << r.packs_written << " new";
  out << ", " << (dry_run ? "would keep " : "kept ") << PacksKept(r) << " as they are";
  // kept_young counts both kinds of young packs GC leaves; packs_unindexed those among them no
  // index object names yet (a snapshot still writing them, or one that stopped since).
  const uint64_t young_dead = r.kept_young - std::min(r.kept_young, r.packs_unindexed);
  if (young_dead || r.packs_unindexed) {
    out << " (";
    if (young_dead) out << young_dead << " with dead objects younger than the grace period";
    if (young_dead && r.packs_unindexed) out << "; ";
    if (r.packs_unindexed)
      out << r.packs_unindexed << " named by no index yet and younger than the grace period: a snapshot still "
          << "writing them, or one that stopped since";
    out << ")";
  }
  if (!dry_run) out << "; " << PacksKept(r) + r.packs_written << " after";
  out << "\n";
  out << "dead bytes: " << HumanBytes(r.dead_bytes) << "; " << (dry_run ? "would free about " : "freed ")
      << HumanBytes(r.deleted_bytes);
  if (r.dead_bytes > 0) {
    char pct[16];
    std::snprintf(pct, sizeof pct, "%.0f%%", 100.0 * double(r.deleted_bytes) / double(r.dead_bytes));
    out << " (" << pct << " of the dead bytes)";
  }
  out << "\n";
  if (r.packs_damaged_kept)
    out << r.packs_damaged_kept
        << " pack(s) kept whole, not repacked: a live object in them is damaged (snapvol verify names it)\n";
  if (r.leftovers_deleted || r.leftovers_young || r.leftovers_needed) {
    out << "format-1 leftovers (chunks/, index/): " << (dry_run ? "would delete " : "deleted ") << r.leftovers_deleted
        << " (" << HumanBytes(r.leftover_bytes_deleted) << "), kept " << r.leftovers_young
        << " younger than the grace period";
    if (r.leftovers_needed)
      out << " and " << r.leftovers_needed << " that a snapshot needs and no pack holds (the only copy left)";
    out << "\n";
  }
  if (r.packs_lost)
    out << r.packs_lost << " pack(s) named by the index are missing from the store (snapvol verify names "
        << "the snapshots that need them)\n";
}

}  // namespace

Result<int64_t> ParseDuration(const std::string& s) {
  if (s.empty()) return InvalidArgument("empty duration");
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  std::string unit(end);
  double mult = 1000;
  if (unit == "" || unit == "s") mult = 1000;
  else if (unit == "ms") mult = 1;
  else if (unit == "m") mult = 60e3;
  else if (unit == "h") mult = 3600e3;
  else if (unit == "d") mult = 86400e3;
  else return InvalidArgument("duration '" + s + "' needs a unit of ms, s, m, h or d");
  if (v < 0) return InvalidArgument("duration must not be negative");
  return static_cast<int64_t>(v * mult);
}

Result<double> ParseRepackThreshold(const std::string& s) {
  const std::string bad = "--repack-threshold must be a fraction above 0 and at most 1 (the share of a pack's "
                          "bytes that must be dead before gc rewrites it, e.g. 0.1), not '" + s + "'";
  if (s.empty()) return InvalidArgument(bad);
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (*end != '\0' || !std::isfinite(v) || !(v > 0 && v <= 1)) return InvalidArgument(bad);
  return v;
}

Status ReleaseEndedLeases(Catalog* catalog, Repository* repo, std::ostream& warnings) {
  ASSIGN_OR_RETURN(auto released, ReleaseLeasesOfEndedSnapshots(catalog, repo));
  for (const auto& l : released)
    warnings << "snapvol: removed the lease snapshot " << l.snapshot_id << " left when it ended ("
             << (l.state == SnapshotState::kError ? "error" : "completed") << ")\n";
  return OkStatus();
}

Status GcCommand(Catalog* catalog, Repository* repo, const GcCommandOptions& cmd, bool json, std::ostream& out,
                 std::ostream& warnings) {
  GcOptions o;
  auto grace = ParseDuration(cmd.grace);
  if (!grace) return std::unexpected(grace.error().WithContext("--grace"));
  o.grace_ms = *grace;
  o.dry_run = cmd.dry_run;
  if (cmd.repack_threshold) {
    ASSIGN_OR_RETURN(o.repack_threshold, ParseRepackThreshold(*cmd.repack_threshold));
    if (repo->format() != 2)
      return InvalidArgument("--repack-threshold applies to format-2 stores (packs) only; this store is format " +
                             std::to_string(repo->format()) + ", where gc deletes each dead chunk itself");
  }
  // Deleted snapshots' pages are read once more by usage accounting: count them first, and
  // keep those it cannot count now (e.g. a page unreadable) for the next run.
  UsageAccounting usage(catalog, repo);
  if (auto drained = usage.Drain(); !drained)
    warnings << "snapvol: warning: usage accounting is behind (" << drained.error().message()
             << "); the snapshots it still has to count are kept\n";
  ASSIGN_OR_RETURN(o.keep_snapshots, usage.KeepForUsage());
  if (!cmd.dry_run) RETURN_IF_ERROR(ReleaseEndedLeases(catalog, repo, warnings));
  // Binned snapshots whose Recycle Bin retention has ended are deleted for good first.
  if (!cmd.dry_run) {
    ASSIGN_OR_RETURN(auto purged, PurgeExpiredBin(catalog, repo, Clock::Real()->NowMillis()));
    for (const auto& id : purged) warnings << "snapvol: " << id << "'s Recycle Bin retention ended: deleted\n";
  }
  ASSIGN_OR_RETURN(GcReport r, CollectGarbage(repo, o));
  if (json) out << ReportJson(r, cmd.dry_run, repo->format()).dump(2) << "\n";
  else PrintReport(r, cmd.dry_run, repo->format(), out);
  return OkStatus();
}

}  // namespace snapvol
