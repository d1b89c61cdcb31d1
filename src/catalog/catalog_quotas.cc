// Catalog: quotas per account (the quotas table), what an account holds against them, and
// their enforcement inside the transactions that insert volumes and snapshots.
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/catalog_sql.h"
#include "core/ids.h"

namespace snapvol {
using catalog_internal::Statement;

namespace {

constexpr uint64_t kGiBBytes = uint64_t{1} << 30;

Result<QuotaKind> ParseKind(const std::string& name) {
  for (QuotaKind k : kQuotaKinds)
    if (name == QuotaKindName(k)) return k;
  return Corruption("catalog database is damaged: unknown quota kind '" + name + "'; " +
                    catalog_internal::kRebuildHint);
}

std::string Plural(uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// The one wording of a quota refusal: what the account would hold, and its limit.
std::unexpected<Error> QuotaError(const std::string& account_id, QuotaKind kind, uint64_t would, uint64_t limit) {
  std::string what;
  switch (kind) {
    case QuotaKind::kVolumeGib:
      what = "its volumes would total " + std::to_string((would + kGiBBytes - 1) / kGiBBytes) +
             " GiB; the limit is " + std::to_string(limit) + " GiB";
      break;
    case QuotaKind::kVolumes:
      what = "it would have " + Plural(would, "volume", "volumes") + "; the limit is " + std::to_string(limit);
      break;
    case QuotaKind::kSnapshots:
      what = "it would have " + Plural(would, "snapshot", "snapshots") + "; the limit is " + std::to_string(limit);
      break;
  }
  return MakeError(ErrorCode::kQuotaExceeded,
                   "The " + std::string(QuotaKindName(kind)) + " quota of account " + account_id + " does not allow this: " +
                       what + ". Delete some, or ask an operator to raise the quota.");
}

}  // namespace

const char* QuotaKindName(QuotaKind kind) {
  switch (kind) {
    case QuotaKind::kVolumeGib:
      return "volume-gib";
    case QuotaKind::kVolumes:
      return "volumes";
    case QuotaKind::kSnapshots:
      return "snapshots";
  }
  return "unknown";
}

const QuotaSetting& QuotaSettings::Get(QuotaKind kind) const {
  return kind == QuotaKind::kVolumeGib ? volume_gib : kind == QuotaKind::kVolumes ? volumes : snapshots;
}
QuotaSetting& QuotaSettings::Get(QuotaKind kind) {
  return kind == QuotaKind::kVolumeGib ? volume_gib : kind == QuotaKind::kVolumes ? volumes : snapshots;
}
std::optional<uint64_t> QuotaLimits::Get(QuotaKind kind) const {
  return kind == QuotaKind::kVolumeGib ? volume_gib : kind == QuotaKind::kVolumes ? volumes : snapshots;
}

bool QuotaCountsVolume(const VolumeRecord& v) {
  return (v.managed || !v.snapshot_id.empty()) && v.state != "error";
}

Status Catalog::SetQuotas(const std::string& account_id,
                          const std::vector<std::pair<QuotaKind, QuotaSetting>>& changes) {
  const bool defaults = account_id == kQuotaDefaults;
  if (!defaults && !IsAccountId(account_id)) return InvalidArgument("'" + account_id + "' is not an account id");
  for (const auto& [kind, setting] : changes)
    if (setting.mode == QuotaSetting::Mode::kLimit && setting.limit > kMaxQuotaLimit)
      return InvalidArgument(std::string("the ") + QuotaKindName(kind) + " limit " + std::to_string(setting.limit) +
                             " is larger than " + std::to_string(kMaxQuotaLimit));
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    const std::string what = defaults ? "set the default quotas" : "set the quotas of account " + account_id;
    if (!defaults) {
      ASSIGN_OR_RETURN(Statement acct, Statement::Prepare(*db_, "SELECT 1 FROM accounts WHERE account_id = ?", what));
      acct.Bind(account_id);
      ASSIGN_OR_RETURN(bool known, acct.Step());
      if (!known) return NotFound("account " + account_id + " not found");
    }
    ASSIGN_OR_RETURN(Statement del, Statement::Prepare(*db_, "DELETE FROM quotas WHERE account_id = ? AND kind = ?", what));
    ASSIGN_OR_RETURN(Statement put, Statement::Prepare(*db_,
                                                       "INSERT INTO quotas (account_id, kind, max_value) VALUES (?, ?, ?)"
                                                       " ON CONFLICT (account_id, kind) DO UPDATE SET max_value = excluded.max_value",
                                                       what));
    ASSIGN_OR_RETURN(Statement put_unlimited,
                     Statement::Prepare(*db_,
                                        "INSERT INTO quotas (account_id, kind, max_value) VALUES (?, ?, NULL)"
                                        " ON CONFLICT (account_id, kind) DO UPDATE SET max_value = NULL",
                                        what));
    for (const auto& [kind, setting] : changes) {
      // The defaults keep no row for "no limit"; an account keeps NULL to override a default.
      const bool remove = setting.mode == QuotaSetting::Mode::kInherit ||
                          (defaults && setting.mode == QuotaSetting::Mode::kUnlimited);
      if (remove) {
        del.Reset();
        del.Bind(account_id).Bind(QuotaKindName(kind));
        RETURN_IF_ERROR(del.Run());
      } else if (setting.mode == QuotaSetting::Mode::kUnlimited) {
        put_unlimited.Reset();
        put_unlimited.Bind(account_id).Bind(QuotaKindName(kind));
        RETURN_IF_ERROR(put_unlimited.Run());
      } else {
        put.Reset();
        put.Bind(account_id).Bind(QuotaKindName(kind)).Bind(setting.limit);
        RETURN_IF_ERROR(put.Run());
      }
    }
    return OkStatus();
  });
}

Result<QuotaSettings> Catalog::GetQuotaSettings(const std::string& account_id) {
  std::lock_guard lock(mu_);
  const std::string what = "read the quotas of " + (account_id.empty() ? std::string("the defaults") : account_id);
  if (account_id != kQuotaDefaults) {
    ASSIGN_OR_RETURN(Statement acct, Statement::Prepare(*db_, "SELECT 1 FROM accounts WHERE account_id = ?", what));
    acct.Bind(account_id);
    ASSIGN_OR_RETURN(bool known, acct.Step());
    if (!known) return NotFound("account " + account_id + " not found");
  }
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_, "SELECT kind, max_value FROM quotas WHERE account_id = ?", what));
  st.Bind(account_id);
  QuotaSettings out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return out;
    ASSIGN_OR_RETURN(QuotaKind kind, ParseKind(st.Text(0)));
    out.Get(kind) = st.IsNull(1) ? QuotaSetting{QuotaSetting::Mode::kUnlimited, 0}
                                 : QuotaSetting{QuotaSetting::Mode::kLimit, st.U64(1)};
  }
}

Result<QuotaLimits> Catalog::ReadQuotaLimits(const std::string& account_id) {
  // An account's own row wins over the default's (ORDER BY puts '' first, the account last).
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                    "SELECT kind, max_value FROM quotas WHERE account_id IN ('', ?)"
                                                    " ORDER BY account_id",
                                                    "read the quotas of account " + account_id));
  st.Bind(account_id);
  QuotaLimits out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return out;
    ASSIGN_OR_RETURN(QuotaKind kind, ParseKind(st.Text(0)));
    std::optional<uint64_t> limit;
    if (!st.IsNull(1)) limit = st.U64(1);
    switch (kind) {
      case QuotaKind::kVolumeGib: out.volume_gib = limit; break;
      case QuotaKind::kVolumes: out.volumes = limit; break;
      case QuotaKind::kSnapshots: out.snapshots = limit; break;
    }
  }
}

Result<QuotaUsage> Catalog::ReadQuotaUsage(const std::string& account_id) {
  const std::string what = "count what account " + account_id + " holds";
  QuotaUsage u;
  // The SQL twin of QuotaCountsVolume, without its state test: a failed restore's record
  // counts until it is deleted.
  ASSIGN_OR_RETURN(Statement vols, Statement::Prepare(*db_,
                                                      "SELECT count(*), coalesce(sum(size_bytes), 0) FROM volumes"
                                                      " WHERE account_id = ? AND (managed = 1 OR snapshot_id <> '')",
                                                      what));
  vols.Bind(account_id);
  ASSIGN_OR_RETURN(bool row, vols.Step());
  if (row) {
    u.volumes = vols.U64(0);
    u.volume_bytes = vols.U64(1);
  }
  // Snapshots in the Recycle Bin count too: AWS bills them as regular snapshots, and a
  // restore brings them back without a new check.
  ASSIGN_OR_RETURN(Statement snaps, Statement::Prepare(*db_,
                                                       "SELECT (SELECT count(*) FROM snapshots WHERE account_id = ?)"
                                                       " + (SELECT count(*) FROM recycle_bin WHERE account_id = ?)",
                                                       what));
  snaps.Bind(account_id).Bind(account_id);
  ASSIGN_OR_RETURN(row, snaps.Step());
  if (row) u.snapshots = snaps.U64(0);
  return u;
}

Result<QuotaLimits> Catalog::EffectiveQuotaLimits(const std::string& account_id) {
  std::lock_guard lock(mu_);
  return ReadQuotaLimits(account_id);
}

Result<QuotaUsage> Catalog::GetQuotaUsage(const std::string& account_id) {
  std::lock_guard lock(mu_);
  QuotaUsage out;
  RETURN_IF_ERROR(InTransaction([&]() -> Status {  // one snapshot of both counts
    ASSIGN_OR_RETURN(out, ReadQuotaUsage(account_id));
    return OkStatus();
  }, /*write=*/false));
  return out;
}

Status Catalog::CheckVolumeQuota(const std::string& account_id, uint64_t add_bytes) {
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(QuotaLimits limits, ReadQuotaLimits(account_id));
    if (!limits.volumes && !limits.volume_gib) return OkStatus();
    ASSIGN_OR_RETURN(QuotaUsage u, ReadQuotaUsage(account_id));
    if (limits.volumes && u.volumes + 1 > *limits.volumes)
      return QuotaError(account_id, QuotaKind::kVolumes, u.volumes + 1, *limits.volumes);
    if (limits.volume_gib && u.volume_bytes + add_bytes > *limits.volume_gib * kGiBBytes)
      return QuotaError(account_id, QuotaKind::kVolumeGib, u.volume_bytes + add_bytes, *limits.volume_gib);
    return OkStatus();
  }, /*write=*/false);
}

Status Catalog::CheckSnapshotQuota(const std::string& account_id, uint64_t add) {
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(QuotaLimits limits, ReadQuotaLimits(account_id));
    if (!limits.snapshots) return OkStatus();
    ASSIGN_OR_RETURN(QuotaUsage u, ReadQuotaUsage(account_id));
    if (u.snapshots + add > *limits.snapshots)
      return QuotaError(account_id, QuotaKind::kSnapshots, u.snapshots + add, *limits.snapshots);
    return OkStatus();
  }, /*write=*/false);
}

Status Catalog::EnforceVolumeQuota(const std::string& account_id) {
  ASSIGN_OR_RETURN(QuotaLimits limits, ReadQuotaLimits(account_id));
  if (!limits.volumes && !limits.volume_gib) return OkStatus();
  ASSIGN_OR_RETURN(QuotaUsage u, ReadQuotaUsage(account_id));
  if (limits.volumes && u.volumes > *limits.volumes)
    return QuotaError(account_id, QuotaKind::kVolumes, u.volumes, *limits.volumes);
  if (limits.volume_gib && u.volume_bytes > *limits.volume_gib * kGiBBytes)
    return QuotaError(account_id, QuotaKind::kVolumeGib, u.volume_bytes, *limits.volume_gib);
  return OkStatus();
}

Status Catalog::EnforceSnapshotQuota(const std::string& account_id) {
  ASSIGN_OR_RETURN(QuotaLimits limits, ReadQuotaLimits(account_id));
  if (!limits.snapshots) return OkStatus();
  ASSIGN_OR_RETURN(QuotaUsage u, ReadQuotaUsage(account_id));
  if (u.snapshots > *limits.snapshots) return QuotaError(account_id, QuotaKind::kSnapshots, u.snapshots, *limits.snapshots);
  return OkStatus();
}

}  // namespace snapvol
