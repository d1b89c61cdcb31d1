// Catalog: routed volume creations (volume_queue), the volumes a host accepted for another host
// to make (a CreateVolume placed with aws:snapvol:host, an approved restore request placed on
// the host of the snapshot's volume; docs/multi-host.md part 3), and the sweep's ends of a dead
// host's creations and rollback tasks (part 5).
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/catalog_db.h"
#include "catalog/catalog_postgres_notify.h"
#include "catalog/catalog_sql.h"

namespace snapvol {
using catalog_internal::Backend;
using catalog_internal::Changes;
using catalog_internal::ReadRows;
using catalog_internal::Statement;

namespace {

constexpr char kCreationColumns[] = "volume_id, host_id, created_ms, claimed_by, claimed_ms";

VolumeCreationRecord ReadCreation(Statement& st) {
  return VolumeCreationRecord{st.Text(0), st.Text(1), st.Int(2), st.Text(3), st.Int(4)};
}

}  // namespace

Status Catalog::EnqueueVolumeCreationLocked(const std::string& volume_id,
                                            const std::string& host_id, int64_t created_ms) {
  const std::string what = "queue the creation of volume " + volume_id + " for " + host_id;
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(*db_,
                                      std::string("INSERT INTO volume_queue (") + kCreationColumns +
                                          ") VALUES (?, ?, ?, '', 0)",
                                      what));
  st.Bind(volume_id).Bind(host_id).Bind(created_ms);
  RETURN_IF_ERROR(st.Run());
  // The same wake-up as a routed snapshot's: the claimer of every host listens on one channel.
  if (db_->backend() == Backend::kPostgres)
    RETURN_IF_ERROR(db_->Exec(std::string("NOTIFY ") + catalog_internal::kJobQueueChannel, what));
  return OkStatus();
}

Result<std::optional<VolumeRecord>> Catalog::ClaimVolumeCreation(const std::string& host_id,
                                                                 const std::string& runner,
                                                                 int64_t now_ms) {
  if (host_id.empty()) return InvalidArgument("claim a volume creation: no host");
  if (runner.empty())
    return InvalidArgument("claim a volume creation of " + host_id + ": no runner");
  const std::string what = "claim a volume creation of " + host_id + " for " + runner;
  std::lock_guard lock(mu_);
  std::optional<std::string> claimed;
  bool dropped = true;  // a stale row dropped: look again, so it does not hide the next creation
  while (dropped && !claimed) {
    dropped = false;
    Status done = InTransaction([&]() -> Status {
      claimed.reset();  // a retried transaction starts over
      dropped = false;
      // Under the catalog's write lock (catalog_db.h) the pick and the conditional update are never
      // raced; on PostgreSQL the row lock keeps the claim right under any other writer too.
      std::string sql = std::string(
          "SELECT q.volume_id, coalesce(v.state, ''), coalesce(v.host_id, '')"
          " FROM volume_queue q LEFT JOIN volumes v ON v.volume_id = q.volume_id"
          " WHERE q.host_id = ? AND q.claimed_by = ''"
          " ORDER BY q.created_ms, q.volume_id LIMIT 1");
      if (db_->backend() == Backend::kPostgres) sql += " FOR UPDATE OF q SKIP LOCKED";
      ASSIGN_OR_RETURN(Statement pick, Statement::Prepare(*db_, sql, what));
      pick.Bind(host_id);
      ASSIGN_OR_RETURN(bool row, pick.Step());
      if (!row) return OkStatus();
      const std::string id = pick.Text(0);
      const bool still_ours = pick.Text(1) == "creating" && pick.Text(2) == host_id;
      if (!still_ours) {
        // Ended (or moved) while it waited: nothing to make. The row goes; the next pass goes on.
        ASSIGN_OR_RETURN(
            Statement drop,
            Statement::Prepare(*db_, "DELETE FROM volume_queue WHERE volume_id = ?", what));
        drop.Bind(id);  // the row just picked, under the write lock: each pass removes one
        RETURN_IF_ERROR(drop.Run());
        dropped = true;
        return OkStatus();
      }
      ASSIGN_OR_RETURN(
          Statement take,
          Statement::Prepare(*db_,
                             "UPDATE volume_queue SET claimed_by = ?, claimed_ms = ?"
                             " WHERE volume_id = ? AND host_id = ? AND claimed_by = ''",
                             what));
      take.Bind(runner).Bind(now_ms).Bind(id).Bind(host_id);
      RETURN_IF_ERROR(take.Run());
      if (Changes(*db_) == 1) claimed = id;  // else taken meanwhile: nothing for this caller now
      return OkStatus();
    });
    if (!done) return std::unexpected(done.error());
  }
  if (!claimed) return std::optional<VolumeRecord>{};
  auto v = GetVolume(*claimed);
  if (!v) return std::unexpected(v.error());
  return std::optional<VolumeRecord>(std::move(*v));
}

Status Catalog::FinishVolumeCreation(const std::string& volume_id, const std::string& runner,
                                     const std::string& path, const std::string& state,
                                     const std::string& message) {
  if (path.empty() && state != "error")
    return InvalidArgument("finish volume " + volume_id + ": no path");
  if (state != "available" && state != "creating" && state != "error")
    return InvalidArgument("finish volume " + volume_id + ": state '" + state + "'");
  const std::string what = "finish the creation of volume " + volume_id + " by " + runner;
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(Statement mine,
                     Statement::Prepare(*db_,
                                        "SELECT q.claimed_by, coalesce(v.state, '')"
                                        " FROM volume_queue q LEFT JOIN volumes v"
                                        " ON v.volume_id = q.volume_id WHERE q.volume_id = ?",
                                        what));
    mine.Bind(volume_id);
    ASSIGN_OR_RETURN(bool row, mine.Step());
    if (!row) return NotFound("the creation of volume " + volume_id + " is not queued");
    if (mine.Text(0) != runner)
      return Conflict(
          what + ": it is " +
          (mine.Text(0).empty() ? std::string("not claimed") : "claimed by " + mine.Text(0)));
    if (mine.Text(1) != "creating")
      return Conflict(what + ": the volume is " + mine.Text(1) + " now");
    ASSIGN_OR_RETURN(Statement set,
                     Statement::Prepare(*db_,
                                        "UPDATE volumes SET path = ?, state = ?, state_message = ?"
                                        " WHERE volume_id = ? AND state = 'creating'",
                                        what));
    set.Bind(path).Bind(state).Bind(message).Bind(volume_id);
    RETURN_IF_ERROR(set.Run());
    ASSIGN_OR_RETURN(
        Statement drop,
        Statement::Prepare(*db_, "DELETE FROM volume_queue WHERE volume_id = ?", what));
    drop.Bind(volume_id);
    return drop.Run();
  });
}

Result<size_t> Catalog::UnclaimVolumeCreations(const std::string& host_id) {
  if (host_id.empty()) return InvalidArgument("unclaim volume creations: no host");
  const std::string what = "put the claimed volume creations of " + host_id + " back in its queue";
  std::lock_guard lock(mu_);
  size_t n = 0;
  Status done = InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(Statement st,
                     Statement::Prepare(*db_,
                                        "UPDATE volume_queue SET claimed_by = '', claimed_ms = 0"
                                        " WHERE host_id = ? AND claimed_by <> ''",
                                        what));
    st.Bind(host_id);
    RETURN_IF_ERROR(st.Run());
    n = static_cast<size_t>(Changes(*db_));
    return OkStatus();
  });
  if (!done) return std::unexpected(done.error());
  return n;
}

Result<std::vector<VolumeCreationRecord>> Catalog::ListVolumeCreations() {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(*db_,
                                      std::string("SELECT ") + kCreationColumns +
                                          " FROM volume_queue ORDER BY created_ms, volume_id",
                                      "list volume creations"));
  return ReadRows<VolumeCreationRecord>(st, ReadCreation);
}

Result<bool> Catalog::EndAbandonedVolume(const std::string& volume_id, const std::string& host_id,
                                         const std::string& message, int64_t now_ms,
                                         int64_t timeout_ms, const LeaseFence& fence) {
  if (host_id.empty()) return InvalidArgument("end volume " + volume_id + ": no host");
  const std::string what = "end volume " + volume_id + " left creating by " + host_id;
  std::lock_guard lock(mu_);
  bool ended = false;
  Status done = InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(bool abandoned, HostAbandonedLocked(host_id, now_ms, timeout_ms, fence));
    if (!abandoned) return OkStatus();  // back (or never gone): its work
    ASSIGN_OR_RETURN(
        Statement end,
        Statement::Prepare(*db_,
                           "UPDATE volumes SET state = 'error', state_message = ?"
                           " WHERE volume_id = ? AND host_id = ? AND state = 'creating'",
                           what));
    end.Bind(message).Bind(volume_id).Bind(host_id);
    RETURN_IF_ERROR(end.Run());
    if (Changes(*db_) == 0) return OkStatus();
    ended = true;
    ASSIGN_OR_RETURN(
        Statement drop,
        Statement::Prepare(*db_, "DELETE FROM volume_queue WHERE volume_id = ?", what));
    drop.Bind(volume_id);
    return drop.Run();
  });
  if (!done) return std::unexpected(done.error());
  return ended;
}

Result<bool> Catalog::EndAbandonedRollbackTask(const std::string& task_id,
                                               const std::string& runner,
                                               const std::string& host_id,
                                               const std::string& message, int64_t now_ms,
                                               int64_t timeout_ms, const LeaseFence& fence) {
  const bool queued = QueuedRunnerHost(runner) == host_id;
  if (host_id.empty() || (!queued && !runner.ends_with("@" + host_id)))
    return InvalidArgument("end rollback task " + task_id + ": runner '" + runner +
                           "' is not one of host '" + host_id + "'");
  const std::string what = "end rollback task " + task_id + " left by " + host_id;
  std::lock_guard lock(mu_);
  bool ended = false;
  Status done = InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(bool abandoned, HostAbandonedLocked(host_id, now_ms, timeout_ms, fence));
    if (!abandoned) return OkStatus();
    ASSIGN_OR_RETURN(Statement end,
                     Statement::Prepare(*db_,
                                        "UPDATE replace_root_volume_tasks SET state = 'failed',"
                                        " reason = ?, runner = '', complete_ms = ?"
                                        " WHERE task_id = ? AND state = 'pending' AND runner = ?",
                                        what));
    end.Bind(message).Bind(now_ms).Bind(task_id).Bind(runner);
    RETURN_IF_ERROR(end.Run());
    ended = Changes(*db_) == 1;
    return OkStatus();
  });
  if (!done) return std::unexpected(done.error());
  return ended;
}

}  // namespace snapvol
