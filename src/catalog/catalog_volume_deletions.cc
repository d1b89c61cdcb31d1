// Catalog: deletions of volumes another host holds (docs/multi-host.md part 3). The host that
// got DeleteVolume marks the row `deleting` for the volume's host (state_message names who
// deletes it: QueuedRunner(host) until that host's claimer takes it, then the claiming runner);
// the volume's host claims it and runs the one deletion path (managed/volume_deletion.h).
#include <mutex>
#include <optional>
#include <string>

#include "catalog/catalog.h"
#include "catalog/catalog_db.h"
#include "catalog/catalog_postgres_notify.h"
#include "catalog/catalog_sql.h"

namespace snapvol {
using catalog_internal::Backend;
using catalog_internal::Changes;
using catalog_internal::Statement;

namespace {

// The claim's host check, in the pick and again in the conditional update: only a deletion
// whose row says it is queued for the claiming host.
constexpr char kQueuedForHost[] = "state = 'deleting' AND state_message = ?";

}  // namespace

Status Catalog::QueueVolumeDeletion(const std::string& volume_id, int64_t now_ms, int64_t timeout_ms) {
  const std::string what = "queue the deletion of volume " + volume_id;
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(std::string host, catalog_internal::CheckVolumeDeletable(*db_, volume_id, ""));
    if (host.empty()) return InvalidArgument("volume " + volume_id + " has no host to delete it");
    ASSIGN_OR_RETURN(Statement state, Statement::Prepare(*db_, "SELECT state FROM volumes WHERE volume_id = ?", what));
    state.Bind(volume_id);
    ASSIGN_OR_RETURN(bool found, state.Step());
    if (!found) return NotFound("volume " + volume_id + " not found");
    if (state.Text(0) == "deleting") return OkStatus();  // asked again: it is on its way
    // A host that is not up would leave the row `deleting` with nobody to finish it.
    ASSIGN_OR_RETURN(std::optional<HostRecord> row, catalog_internal::FindHost(*db_, host));
    const std::string host_state = row ? HostStateAt(*row, now_ms, timeout_ms) : "unregistered";
    if (host_state != "up")
      return Conflict("volume " + volume_id + " lives on host " +
                      (row ? catalog_internal::DescribeHostRecord(*row) : host) + ", which is " + host_state +
                      ": only that host can remove its files; nothing was changed");
    ASSIGN_OR_RETURN(Statement mark, Statement::Prepare(*db_,
                                                        "UPDATE volumes SET state = 'deleting', state_message = ?"
                                                        " WHERE volume_id = ?",
                                                        what));
    mark.Bind(QueuedRunner(host)).Bind(volume_id);
    RETURN_IF_ERROR(mark.Run());
    // Wakes the volume's host's claimer when this commits.
    if (db_->backend() == Backend::kPostgres)
      RETURN_IF_ERROR(db_->Exec(std::string("NOTIFY ") + catalog_internal::kJobQueueChannel, what));
    return OkStatus();
  });
}

Result<std::optional<VolumeRecord>> Catalog::ClaimVolumeDeletion(const std::string& host_id,
                                                                 const std::string& runner) {
  if (host_id.empty()) return InvalidArgument("claim a volume deletion: no host");
  if (runner.empty()) return InvalidArgument("claim a volume deletion of " + host_id + ": no runner");
  const std::string queued = QueuedRunner(host_id);
  const std::string what = "claim a volume deletion of " + host_id + " for " + runner;
  std::lock_guard lock(mu_);
  std::string id;
  Status done = InTransaction([&]() -> Status {
    // The catalog's write lock (catalog_db.h) already keeps the pick and the update together;
    // the row lock keeps the claim right under any other writer of the table on PostgreSQL.
    std::string sql = std::string("SELECT volume_id FROM volumes WHERE ") + kQueuedForHost +
                      " ORDER BY volume_id LIMIT 1";
    if (db_->backend() == Backend::kPostgres) sql += " FOR UPDATE SKIP LOCKED";
    ASSIGN_OR_RETURN(Statement pick, Statement::Prepare(*db_, sql, what));
    pick.Bind(queued);
    ASSIGN_OR_RETURN(bool row, pick.Step());
    if (!row) return OkStatus();
    const std::string found = pick.Text(0);
    ASSIGN_OR_RETURN(Statement take, Statement::Prepare(*db_,
                                                        std::string("UPDATE volumes SET state_message = ? WHERE ") +
                                                            kQueuedForHost + " AND volume_id = ?",
                                                        what));
    take.Bind(runner).Bind(queued).Bind(found);
    RETURN_IF_ERROR(take.Run());
    if (Changes(*db_) == 1) id = found;  // else taken meanwhile: nothing for this caller now
    return OkStatus();
  });
  if (!done) return std::unexpected(done.error());
  if (id.empty()) return std::optional<VolumeRecord>{};
  ASSIGN_OR_RETURN(VolumeRecord v, GetVolume(id));
  return std::optional<VolumeRecord>{std::move(v)};
}

Result<size_t> Catalog::UnclaimVolumeDeletions(const std::string& host_id) {
  if (host_id.empty()) return InvalidArgument("put back volume deletions: no host");
  const std::string queued = QueuedRunner(host_id);
  const std::string what = "put back the volume deletions " + host_id + " claimed";
  std::lock_guard lock(mu_);
  // Read first: a host with nothing claimed (nearly every start) writes nothing.
  {
    ASSIGN_OR_RETURN(Statement any, Statement::Prepare(*db_,
                                                       "SELECT 1 FROM volumes WHERE host_id = ? AND"
                                                       " state = 'deleting' AND state_message <> ?",
                                                       what));
    any.Bind(host_id).Bind(queued);
    ASSIGN_OR_RETURN(bool claimed, any.Step());
    if (!claimed) return size_t{0};
  }
  size_t back = 0;
  Status done = InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                      "UPDATE volumes SET state_message = ? WHERE host_id = ? AND"
                                                      " state = 'deleting' AND state_message <> ?",
                                                      what));
    st.Bind(queued).Bind(host_id).Bind(queued);
    RETURN_IF_ERROR(st.Run());
    back = static_cast<size_t>(Changes(*db_));
    return OkStatus();
  });
  if (!done) return std::unexpected(done.error());
  return back;
}

}  // namespace snapvol
