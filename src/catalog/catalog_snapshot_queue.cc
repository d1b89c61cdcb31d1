// Catalog: routed snapshot jobs (snapshot_queue), the snapshots a host accepted for volumes
// another host holds, queued for that host to claim and run (docs/multi-host.md part 3).
#include <cstdint>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/catalog_db.h"
#include "catalog/catalog_postgres_notify.h"
#include "catalog/catalog_sql.h"
#include "core/ids.h"

namespace snapvol {
using catalog_internal::Backend;
using catalog_internal::Changes;
using catalog_internal::ReadRows;
using catalog_internal::Statement;

namespace {

constexpr char kJobColumns[] =
    "job_id, host_id, instance_id, snapshot_ids, full_copy, created_ms, claimed_by, claimed_ms";
constexpr char kQueuedPrefix[] = "queued@";
// The PostgreSQL channel EnqueueSnapshotJob notifies (WaitForSnapshotJobs listens on it).
constexpr const char* kQueueChannel = catalog_internal::kJobQueueChannel;

std::string JoinIds(const std::vector<std::string>& ids) {
  std::string out;
  for (const auto& id : ids) out += (out.empty() ? "" : " ") + id;
  return out;
}

std::vector<std::string> SplitIds(const std::string& text) {
  std::istringstream words(text);
  std::vector<std::string> out;
  for (std::string id; words >> id;) out.push_back(id);
  return out;
}

SnapshotJobRecord ReadJob(Statement& st) {
  return SnapshotJobRecord{st.Text(0), st.Text(1), st.Text(2), SplitIds(st.Text(3)),
                           st.Int(4) != 0, st.Int(5), st.Text(6), st.Int(7)};
}

}  // namespace

std::string QueuedRunner(const std::string& host_id) { return kQueuedPrefix + host_id; }

std::string QueuedRunnerHost(std::string_view runner) {
  if (!runner.starts_with(kQueuedPrefix)) return "";
  std::string host(runner.substr(sizeof kQueuedPrefix - 1));
  return IsHostId(host) ? host : "";
}

Status Catalog::EnqueueSnapshotJob(const SnapshotJobRecord& job) {
  if (job.job_id.empty()) return InvalidArgument("a routed snapshot job needs an id");
  if (job.host_id.empty()) return InvalidArgument("snapshot job " + job.job_id + " names no host to run it");
  if (job.snapshot_ids.empty()) return InvalidArgument("snapshot job " + job.job_id + " has no snapshots");
  for (const auto& id : job.snapshot_ids)
    if (id.empty() || id.find(' ') != std::string::npos)
      return InvalidArgument("snapshot job " + job.job_id + ": '" + id + "' is not a snapshot id");
  if (!job.claimed_by.empty()) return InvalidArgument("snapshot job " + job.job_id + " is queued unclaimed");
  const std::string what = "queue snapshot job " + job.job_id + " for " + job.host_id;
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                      std::string("INSERT INTO snapshot_queue (") + kJobColumns +
                                                          ") VALUES (?, ?, ?, ?, ?, ?, '', 0)",
                                                      what));
    st.Bind(job.job_id).Bind(job.host_id).Bind(job.instance_id).Bind(JoinIds(job.snapshot_ids));
    st.Bind(int64_t{job.full ? 1 : 0}).Bind(job.created_ms);
    RETURN_IF_ERROR(st.Run());
    // Delivered when the transaction commits, to every host listening: the owner claims at once.
    if (db_->backend() == Backend::kPostgres)
      RETURN_IF_ERROR(db_->Exec(std::string("NOTIFY ") + kQueueChannel, what));
    return OkStatus();
  });
}

Result<std::optional<SnapshotJobRecord>> Catalog::ClaimSnapshotJob(const std::string& host_id,
                                                                   const std::string& runner, int64_t now_ms) {
  if (host_id.empty()) return InvalidArgument("claim a snapshot job: no host");
  if (runner.empty()) return InvalidArgument("claim a snapshot job of " + host_id + ": no runner");
  const std::string what = "claim a snapshot job of " + host_id + " for " + runner;
  std::lock_guard lock(mu_);
  std::optional<SnapshotJobRecord> out;
  Status done = InTransaction([&]() -> Status {
    // Every write transaction already holds the catalog's database-wide write lock
    // (catalog_db.h), so the read and the conditional update below are never raced; on
    // PostgreSQL the row lock also keeps a claim right under any other writer of this table.
    std::string sql = std::string("SELECT ") + kJobColumns +
                      " FROM snapshot_queue WHERE host_id = ? AND claimed_by = ''"
                      " ORDER BY created_ms, job_id LIMIT 1";
    if (db_->backend() == Backend::kPostgres) sql += " FOR UPDATE SKIP LOCKED";
    ASSIGN_OR_RETURN(Statement pick, Statement::Prepare(*db_, sql, what));
    pick.Bind(host_id);
    ASSIGN_OR_RETURN(bool row, pick.Step());
    if (!row) return OkStatus();
    SnapshotJobRecord job = ReadJob(pick);
    ASSIGN_OR_RETURN(Statement take,
                     Statement::Prepare(*db_,
                                        "UPDATE snapshot_queue SET claimed_by = ?, claimed_ms = ?"
                                        " WHERE job_id = ? AND host_id = ? AND claimed_by = ''",
                                        what));
    take.Bind(runner).Bind(now_ms).Bind(job.job_id).Bind(host_id);
    RETURN_IF_ERROR(take.Run());
    if (Changes(*db_) != 1) return OkStatus();  // taken meanwhile: nothing for this caller now
    job.claimed_by = runner;
    job.claimed_ms = now_ms;
    out = std::move(job);
    return OkStatus();
  });
  if (!done) return std::unexpected(done.error());
  return out;
}

Status Catalog::FinishSnapshotJob(const std::string& job_id, const std::string& runner) {
  const std::string what = "finish snapshot job " + job_id + " of " + runner;
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(Statement st,
                     Statement::Prepare(*db_, "DELETE FROM snapshot_queue WHERE job_id = ? AND claimed_by = ?", what));
    st.Bind(job_id).Bind(runner);
    RETURN_IF_ERROR(st.Run());
    if (Changes(*db_) == 1) return OkStatus();
    ASSIGN_OR_RETURN(Statement read,
                     Statement::Prepare(*db_, "SELECT claimed_by FROM snapshot_queue WHERE job_id = ?", what));
    read.Bind(job_id);
    ASSIGN_OR_RETURN(bool row, read.Step());
    if (!row) return NotFound("snapshot job " + job_id + " is not queued");
    const std::string by = read.Text(0);
    return Conflict(what + ": it is " + (by.empty() ? std::string("not claimed") : "claimed by " + by));
  });
}

Result<size_t> Catalog::UnclaimSnapshotJobs(const std::string& host_id) {
  if (host_id.empty()) return InvalidArgument("unclaim snapshot jobs: no host");
  const std::string what = "put the claimed snapshot jobs of " + host_id + " back in its queue";
  std::lock_guard lock(mu_);
  size_t n = 0;
  Status done = InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                      "UPDATE snapshot_queue SET claimed_by = '', claimed_ms = 0"
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

Result<bool> Catalog::EndAbandonedSnapshot(const std::string& snapshot_id, const std::string& runner,
                                           const std::string& host_id, const std::string& message, int64_t now_ms,
                                           int64_t timeout_ms, const LeaseFence& fence) {
  const bool queued = QueuedRunnerHost(runner) == host_id;
  if (host_id.empty() || (!queued && !runner.ends_with("@" + host_id)))
    return InvalidArgument("end snapshot " + snapshot_id + ": runner '" + runner + "' is not one of host '" + host_id + "'");
  const std::string what = "end snapshot " + snapshot_id + " left by " + host_id;
  std::lock_guard lock(mu_);
  bool ended = false;
  Status done = InTransaction([&]() -> Status {
    // Under the catalog's write lock: no heartbeat and no other holder's write comes between
    // these checks and the end.
    ASSIGN_OR_RETURN(bool abandoned, HostAbandonedLocked(host_id, now_ms, timeout_ms, fence));
    if (!abandoned) return OkStatus();  // back (or never gone): its work
    ASSIGN_OR_RETURN(Statement end, Statement::Prepare(*db_,
                                                       "UPDATE snapshots SET state = 'error', state_message = ?,"
                                                       " runner = '' WHERE snapshot_id = ? AND state = 'pending'"
                                                       " AND runner = ?",
                                                       what));
    end.Bind(message).Bind(snapshot_id).Bind(runner);
    RETURN_IF_ERROR(end.Run());
    if (Changes(*db_) == 0) return OkStatus();
    ended = true;
    RETURN_IF_ERROR(DeleteDirectJournal(snapshot_id));
    if (!queued) return OkStatus();
    ASSIGN_OR_RETURN(Statement drop, Statement::Prepare(*db_,
                                                        "DELETE FROM snapshot_queue WHERE host_id = ?"
                                                        " AND (' ' || snapshot_ids || ' ') LIKE ?",
                                                        what));
    drop.Bind(host_id).Bind("% " + snapshot_id + " %");
    return drop.Run();
  });
  if (!done) return std::unexpected(done.error());
  return ended;
}

Result<bool> Catalog::HostAbandonedLocked(const std::string& host_id, int64_t now_ms, int64_t timeout_ms,
                                          const LeaseFence& fence) {
  RETURN_IF_ERROR(CheckClusterLeaseLocked(fence.name, fence.holder, fence.generation, now_ms));
  ASSIGN_OR_RETURN(std::optional<HostRecord> host, catalog_internal::FindHost(*db_, host_id));
  return !(host && HostStateAt(*host, now_ms, timeout_ms) == "up");
}

bool Catalog::NotifiesSnapshotJobs() const { return !postgres_url_.empty(); }

Result<bool> Catalog::WaitForSnapshotJobs(int64_t timeout_ms) {
  if (postgres_url_.empty()) return InvalidArgument("this catalog does not announce snapshot jobs (not PostgreSQL)");
  std::lock_guard lock(listen_mu_);
  if (!listener_) {
    ASSIGN_OR_RETURN(listener_, catalog_internal::OpenPostgresListener(postgres_url_, kQueueChannel));
  }
  auto woke = listener_->Wait(timeout_ms);
  if (!woke) listener_.reset();  // the next call connects again
  return woke;
}

Result<std::vector<SnapshotJobRecord>> Catalog::ListSnapshotJobs() {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                    std::string("SELECT ") + kJobColumns +
                                                        " FROM snapshot_queue ORDER BY created_ms, job_id",
                                                    "list snapshot jobs"));
  return ReadRows<SnapshotJobRecord>(st, ReadJob);
}

}  // namespace snapvol
