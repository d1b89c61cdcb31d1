// The Recycle Bin's domain rules: which retention rule keeps a snapshot being deleted (the one
// deletion operation, engine/snapshot_deletion.h, moves it into the bin), restoring it, and
// deleting for good the binned snapshots whose retention has ended. The rules are AWS's:
// a tag-level rule keeps a snapshot that has at least one of its resource tags; an account-
// level rule (no resource tags) keeps every snapshot of its account except those with one of
// its exclusion tags; of several matching rules the longest retention wins. The rules in force
// are those of the snapshot's own account at deletion time, plus the daemon's configured
// default (an account-level rule for every account).
// Thread-safety: free functions; the catalog and repository are thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "core/status.h"
#include "store/repository.h"

namespace snapvol {

inline constexpr int64_t kDayMs = 24LL * 3600 * 1000;
// The rule id binned snapshots name when the daemon's default rule kept them.
inline constexpr char kDefaultBinRuleId[] = "default";

struct RecycleBinSettings {
  // The account-wide default rule for every account (snapvold
  // --recycle-bin-default-retention-days); 0: none.
  int64_t default_retention_days = 0;
};

struct BinMatch {
  std::string rule_id;
  int64_t retention_days = 0;
};

// The rule that keeps snapshot s if it is deleted now: nullopt when none matches. Only
// EBS_SNAPSHOT rules count. A rule whose JSON cannot be read → Corruption.
Result<std::optional<BinMatch>> MatchRetentionRule(Catalog* catalog, const SnapshotRecord& s,
                                                   const RecycleBinSettings& settings);

// Takes a binned snapshot back (its row, tags and root as they were). NotFound when it is not
// in the bin; Conflict when its retention has ended (it is being deleted).
Status RestoreSnapshotFromBin(Catalog* catalog, Repository* repo, const std::string& snapshot_id, int64_t now_ms);

// Deletes for good every binned snapshot whose retention ended at or before now_ms (its root
// moves to deleted/, so the next GC frees its data). Returns the ids deleted.
Result<std::vector<std::string>> PurgeExpiredBin(Catalog* catalog, Repository* repo, int64_t now_ms);

// For a catalog rebuild: the bin as the store's bin/ roots describe it. Owners the catalog
// does not know become the default account, as for live snapshots.
Result<std::vector<BinnedSnapshotRecord>> BinFromStore(Catalog* catalog, Repository* repo);

}  // namespace snapvol
