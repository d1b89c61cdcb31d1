// Garbage collection of a snapshot store: mark every chunk and index page reachable from a
// manifest root, sweep the rest. Never removes an object younger than the grace period, nor
// one younger than the oldest snapshot still being written (a lease) minus the grace period,
// and keeps the deleted root of any snapshot that a running snapshot uses as its parent or
// that the caller names in keep_snapshots.
// No store-wide lock: readers and writers go on while it runs; a run publishes its record
// (gc-runs/) before it lists anything, so a snapshot that reused an old chunk waits for it to
// end before checking the chunk survived. Any error while marking
// aborts the run before anything is deleted.
// Thread-safety: runs on the calling thread; several GCs at once are safe but wasteful.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "store/repository.h"

namespace snapvol {

struct GcOptions {
  int64_t grace_ms = 15 * 60 * 1000;
  // A lease whose heartbeat is older than this belongs to a writer that died.
  int64_t lease_expiry_ms = 30 * 60 * 1000;
  bool dry_run = false;
  // Format 2: a pack older than the grace period whose dead bytes exceed this share of it is
  // rewritten with its live objects only (a pack with none live is deleted whatever this is).
  // Above 0 and at most 1 (1: no pack is rewritten, only packs with nothing live deleted).
  double repack_threshold = 0.10;
  // Snapshots whose objects stay even when their root was deleted (e.g. the snapshots that
  // lazily restored volumes still read): their deleted roots are kept and marked.
  std::vector<std::string> keep_snapshots;
  Clock* clock = Clock::Real();
  // Optional fence, called once marking is done and before anything is deleted, then before
  // each further group of deletions (format 1; format 2 calls it once, before its pack sweep and
  // repack): an error stops the run there, with what it deleted so far. The maintenance
  // scheduler checks with it that it still holds the cluster lease (docs/multi-host.md part 4).
  std::function<Status()> before_deletes;
};

struct GcReport {
  uint64_t manifests = 0, live_chunks = 0, live_pages = 0;
  uint64_t binned_roots = 0;  // roots under bin/ (the Recycle Bin), marked like live ones
  uint64_t deleted_chunks = 0, deleted_pages = 0, deleted_bytes = 0, deleted_roots = 0;
  uint64_t kept_young = 0, live_leases = 0, stale_leases_removed = 0, temporaries_removed = 0;
  // Dead bytes: the stored bytes of the chunks and index pages that no surviving snapshot
  // (nor a kept one, see keep_snapshots) references, counted before this run deleted anything,
  // whatever their age. Format 1: one object each. Format 2: the entries of the store-wide
  // index (packs that no index object names, left by a writer that died, are not counted, nor
  // are the packs' own trailing indexes). deleted_bytes set against it says how much of the
  // garbage a run freed.
  uint64_t dead_bytes = 0;
  // Format 2 (deleted_chunks/pages then count index entries dropped, deleted_bytes the bytes
  // freed net of the rewritten packs; a dry run's deleted_bytes leaves out the new packs'
  // trailing indexes). packs: listed before the run; packs_deleted: pack objects deleted (dry
  // run: that would be), the packs_repacked among them; packs_written: new packs (0 in a dry
  // run); kept_young: packs kept for the grace period, with dead objects or named by no index
  // object yet (packs_unindexed: those, e.g. a running snapshot's).
  uint64_t packs = 0, packs_deleted = 0, packs_repacked = 0, packs_written = 0, packs_lost = 0,
           packs_damaged_kept = 0, packs_unindexed = 0;
  // Format 2: format-1 objects (chunks/, index/) left by an interrupted `snapvol store upgrade`
  // or written by a process that still had the old config. Never read in format 2; each is
  // deleted once older than the cutoff, unless a snapshot needs its id and the store-wide index
  // holds no copy of it (then it is the only copy left: kept, counted in leftovers_needed).
  // leftovers_young: kept for the grace period. Not part of dead_bytes nor deleted_bytes.
  uint64_t leftovers_deleted = 0, leftover_bytes_deleted = 0, leftovers_young = 0, leftovers_needed = 0;
  // Records of gc or verification runs (gc-runs/) whose process, on this host, was gone
  // (killed): removed before this run started, whatever their heartbeat. One line each:
  // "host:pid, run <id> started <time>".
  std::vector<std::string> gone_runs_removed;
};

Result<GcReport> CollectGarbage(Repository* repo, const GcOptions& options);

}  // namespace snapvol
