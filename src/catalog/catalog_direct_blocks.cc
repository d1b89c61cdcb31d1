// Catalog: the journal of snapshots written through the EBS direct APIs (direct_snapshots,
// direct_blocks): per pending snapshot its deadline, per acknowledged block its chunk and the
// client's checksum, so that a restarted snapvold resumes it (engine/direct_snapshots.h).
#include <mutex>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/catalog_sql.h"

namespace snapvol {
using catalog_internal::Changes;
using catalog_internal::Statement;

namespace {

constexpr size_t kDigestBytes = 32;

Status CheckBlock(const std::string& id, const DirectBlockRecord& b) {
  if (b.chunk_id.size() != kDigestBytes || b.sha256.size() != kDigestBytes)
    return InvalidArgument("block " + std::to_string(b.index) + " of snapshot " + id +
                           ": a chunk id and a checksum are 32 bytes each");
  return OkStatus();
}

}  // namespace

Status Catalog::InsertDirectJournal(const std::string& id, int64_t deadline_ms) {
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(std::string state, SnapshotStateOf(id));
    if (state != "pending") return CheckPendingTransition(id, "journal");
    ASSIGN_OR_RETURN(Statement st,
                     Statement::Prepare(*db_, "INSERT INTO direct_snapshots (snapshot_id, deadline_ms) VALUES (?, ?)",
                                        "start the journal of snapshot " + id));
    st.Bind(id).Bind(deadline_ms);
    return st.Run();
  });
}

Status Catalog::JournalDirectBlocks(const std::string& id, const std::vector<DirectBlockRecord>& blocks) {
  for (const auto& b : blocks) RETURN_IF_ERROR(CheckBlock(id, b));
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(Statement open,
                     Statement::Prepare(*db_,
                                        "SELECT 1 FROM direct_snapshots d JOIN snapshots s USING (snapshot_id)"
                                        " WHERE d.snapshot_id = ? AND s.state = 'pending'",
                                        "find the journal of snapshot " + id));
    open.Bind(id);
    ASSIGN_OR_RETURN(bool found, open.Step());
    if (!found) return Conflict("snapshot " + id + " has no journal: it is not a pending direct snapshot");
    ASSIGN_OR_RETURN(Statement st,
                     Statement::Prepare(*db_,
                                        "INSERT INTO direct_blocks (snapshot_id, block_index, chunk_id, sha256, stored_bytes)"
                                        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (snapshot_id, block_index) DO UPDATE"
                                        " SET chunk_id = excluded.chunk_id, sha256 = excluded.sha256,"
                                        " stored_bytes = excluded.stored_bytes",
                                        "journal blocks of snapshot " + id));
    for (const auto& b : blocks) {
      st.Reset();
      st.Bind(id).Bind(b.index).BindBlob(b.chunk_id).BindBlob(b.sha256).Bind(b.stored_bytes);
      RETURN_IF_ERROR(st.Run());
    }
    return OkStatus();
  });
}

Result<std::vector<DirectJournalRecord>> Catalog::ListDirectJournals() {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(*db_,
                                      "SELECT d.snapshot_id, s.runner, d.deadline_ms FROM direct_snapshots d"
                                      " JOIN snapshots s USING (snapshot_id) WHERE s.state = 'pending'"
                                      " ORDER BY d.snapshot_id",
                                      "list direct snapshot journals"));
  std::vector<DirectJournalRecord> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return out;
    out.push_back({st.Text(0), st.Text(1), st.Int(2)});
  }
}

Result<std::vector<DirectBlockRecord>> Catalog::ListDirectBlocks(const std::string& id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(*db_,
                                      "SELECT block_index, chunk_id, sha256, stored_bytes FROM direct_blocks"
                                      " WHERE snapshot_id = ? ORDER BY block_index",
                                      "list journaled blocks of snapshot " + id));
  st.Bind(id);
  std::vector<DirectBlockRecord> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return out;
    out.push_back({st.U64(0), st.Blob(1), st.Blob(2), st.U64(3)});
  }
}

Status Catalog::HandOverSnapshot(const std::string& id, const std::string& from, const std::string& to) {
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(Statement st,
                     Statement::Prepare(*db_,
                                        "UPDATE snapshots SET runner = ?"
                                        " WHERE snapshot_id = ? AND state = 'pending' AND runner = ?",
                                        "hand snapshot " + id + " over"));
    st.Bind(to).Bind(id).Bind(from);
    RETURN_IF_ERROR(st.Run());
    if (Changes(*db_) > 0) return OkStatus();
    ASSIGN_OR_RETURN(std::string state, SnapshotStateOf(id));
    if (state != "pending") return CheckPendingTransition(id, "hand over");
    return Conflict("snapshot " + id + " is not run by '" + from + "': another process took it");
  });
}

Status Catalog::DeleteDirectJournal(const std::string& id) {
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_, "DELETE FROM direct_snapshots WHERE snapshot_id = ?",
                                                    "drop the journal of snapshot " + id));
  st.Bind(id);
  return st.Run();  // its direct_blocks go with it (ON DELETE CASCADE)
}

}  // namespace snapvol
