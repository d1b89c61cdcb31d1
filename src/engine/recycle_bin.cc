#include "engine/recycle_bin.h"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "core/ids.h"
#include "engine/manifest_record.h"

namespace snapvol {
namespace {

using json = nlohmann::json;

// [{"ResourceTagKey": k, "ResourceTagValue": v}, ...]; a missing value matches any value
// (AWS: a resource tag without a value matches the key with any value).
Result<std::vector<std::pair<std::string, std::optional<std::string>>>> ParseResourceTags(const std::string& text,
                                                                                          const std::string& rule) {
  json j = json::parse(text, nullptr, false);
  if (!j.is_array()) return Corruption("retention rule " + rule + ": its resource tags are not a JSON array");
  std::vector<std::pair<std::string, std::optional<std::string>>> out;
  for (const auto& t : j) {
    if (!t.is_object() || !t.contains("ResourceTagKey") || !t["ResourceTagKey"].is_string())
      return Corruption("retention rule " + rule + ": a resource tag has no key");
    std::optional<std::string> value;
    if (t.contains("ResourceTagValue") && t["ResourceTagValue"].is_string())
      value = t["ResourceTagValue"].get<std::string>();
    out.emplace_back(t["ResourceTagKey"].get<std::string>(), value);
  }
  return out;
}

bool HasAny(const std::vector<Tag>& tags, const std::vector<std::pair<std::string, std::optional<std::string>>>& want) {
  return std::any_of(want.begin(), want.end(), [&](const auto& w) {
    return std::any_of(tags.begin(), tags.end(),
                       [&](const Tag& t) { return t.key == w.first && (!w.second || t.value == *w.second); });
  });
}

}  // namespace

Result<std::optional<BinMatch>> MatchRetentionRule(Catalog* catalog, const SnapshotRecord& s,
                                                   const RecycleBinSettings& settings) {
  std::optional<BinMatch> best;
  auto consider = [&](const std::string& id, int64_t days) {
    if (!best || days > best->retention_days) best = BinMatch{id, days};
  };
  if (settings.default_retention_days > 0) consider(kDefaultBinRuleId, settings.default_retention_days);
  ASSIGN_OR_RETURN(auto rules, catalog->ListRbinRules(s.account_id));
  for (const auto& r : rules) {
    if (r.resource_type != "EBS_SNAPSHOT") continue;
    ASSIGN_OR_RETURN(auto include, ParseResourceTags(r.resource_tags, r.rule_id));
    ASSIGN_OR_RETURN(auto exclude, ParseResourceTags(r.exclude_tags, r.rule_id));
    bool keeps = include.empty() ? !HasAny(s.tags, exclude) : HasAny(s.tags, include);
    if (keeps) consider(r.rule_id, r.retention_days);
  }
  return best;
}

Status RestoreSnapshotFromBin(Catalog* catalog, Repository* repo, const std::string& snapshot_id, int64_t now_ms) {
  ASSIGN_OR_RETURN(BinnedSnapshotRecord b, catalog->GetBinnedSnapshot(snapshot_id));
  if (b.exit_ms <= now_ms)
    return Conflict("snapshot " + snapshot_id + "'s retention in the recycle bin has ended; it is being deleted");
  return catalog->RestoreBinnedSnapshot(snapshot_id, [&]() -> Status {
    auto st = repo->RestoreManifestFromBin(snapshot_id);
    // A crash after the root's move and before the catalog's commit leaves the root restored.
    if (!st && st.error().code() == ErrorCode::kNotFound && repo->GetManifest(snapshot_id)) return OkStatus();
    return st;
  });
}

Result<std::vector<std::string>> PurgeExpiredBin(Catalog* catalog, Repository* repo, int64_t now_ms) {
  ASSIGN_OR_RETURN(auto all, catalog->ListBinnedSnapshots(std::nullopt));
  std::vector<std::string> purged;
  for (const auto& b : all) {
    if (b.exit_ms > now_ms) continue;
    const std::string& id = b.snapshot.snapshot_id;
    auto st = catalog->RemoveBinnedSnapshot(id, [&]() -> Status {
      auto moved = repo->ExpireBinnedManifest(id);
      if (!moved && moved.error().code() != ErrorCode::kNotFound) return moved;
      return OkStatus();
    });
    if (!st && st.error().code() == ErrorCode::kNotFound) continue;  // restored meanwhile
    RETURN_IF_ERROR(st);
    purged.push_back(id);
  }
  return purged;
}

Result<std::vector<BinnedSnapshotRecord>> BinFromStore(Catalog* catalog, Repository* repo) {
  ASSIGN_OR_RETURN(auto roots, repo->ListBinnedManifests());
  std::vector<BinnedSnapshotRecord> out;
  for (const auto& m : roots) {
    // A root both live and binned (a crash between the two writes of a move) is live.
    if (repo->GetManifest(m.snapshot_id)) continue;
    BinnedSnapshotRecord b;
    b.snapshot = SnapshotRecordOfManifest(catalog, *repo, m);
    b.rule_id = m.bin_rule_id;
    b.entered_ms = m.bin_entered_ms;
    b.exit_ms = m.bin_exit_ms;
    out.push_back(std::move(b));
  }
  return out;
}

}  // namespace snapvol
