// The catalog: a SQLite index of accounts, volumes and snapshots, with numbered schema
// migrations and typed queries. All SQL lives in src/catalog: one file per table group
// (catalog_<table>.cc), the statement helpers in catalog_sql.h, the migrations in
// catalog_migrations.cc and opening them in catalog_schema.cc. Every query runs through the
// database seam (catalog_db.h), whose SQLite backend is catalog_sqlite.cc. The record types
// are in catalog_records.h.
//
// The catalog is an index, not the source of truth for snapshot data: the snapshot store is
// self-describing, so a damaged catalog can be rebuilt from it (DeleteAllSnapshots +
// UpsertSnapshot + DeleteOrphanedGrantsAndLocks). The database runs in WAL mode with foreign keys on, synchronous=FULL (a
// committed change survives power loss) and a 5 s busy timeout, so several processes may
// open the same file.
//
// Thread-safety: a Catalog is safe to use from many threads at once. It holds one
// read-write connection behind a mutex, so calls are serialised; Transaction() holds that
// mutex until it commits, so other threads never observe or join a half-done transaction.
// The hottest read (ListSnapshotsPage) runs on one of a few read-only connections instead,
// which see the last committed state and read in parallel.
//
// Errors: no exception crosses this interface. SQLite failures map to ErrorCode as follows:
// busy/locked → kIoError (retryable); disk full → kNoSpace; damaged file → kCorruption (the
// message says to run `snapvol catalog rebuild`); cannot open → kIoError; duplicate key →
// kAlreadyExists; other constraint failures → kInvalidArgument.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "catalog/catalog_records.h"
#include "core/clock.h"
#include "core/status.h"

namespace snapvol {
namespace catalog_internal {
class Connection;        // catalog_db.h
class PostgresListener;  // catalog_postgres_notify.h
}  // namespace catalog_internal

class Catalog {
 public:
  // Opens or creates the catalog database at path and applies any pending migrations, then
  // creates the default account (kDefaultAccountId, alias "default") if it is missing.
  // path is a SQLite file (or ":memory:"), or a PostgreSQL URL (`postgresql://…` or
  // `postgres://…`, libpq's URI form; docs/catalog-backends.md), whose database gets the
  // catalog's schema in its current schema (search_path).
  // On failure: kUnsupported if the schema is newer than this build knows;
  // kCorruption if the file is damaged or not SQLite; kInvalidArgument if it is a SQLite
  // database (or a PostgreSQL schema with tables) that is not a snapvol catalog, or a
  // malformed URL; kUnauthorized if PostgreSQL refuses the credentials; kIoError if it cannot
  // be opened or reached. Messages never carry a URL's password.
  static Result<std::unique_ptr<Catalog>> Open(const std::string& path,
                                               Clock* clock = Clock::Real());
  // The newest schema version this build can create and read.
  static int LatestSchemaVersion();
  // True when Open takes path as a PostgreSQL URL.
  static bool IsPostgresUrl(const std::string& path);

  ~Catalog();
  Catalog(const Catalog&) = delete;
  Catalog& operator=(const Catalog&) = delete;

  // The schema version of the open database (== LatestSchemaVersion() after Open).
  int SchemaVersion() const;
  // Changes whenever anything is committed to the database (by this Catalog or another
  // process, e.g. the CLI): callers cache identities until it changes. Read on a connection of
  // its own, so it does not wait for the main one.
  Result<int64_t> DataVersion();

  // --- accounts ---
  // Creates an account with a fresh 12-digit id. Duplicate alias → kAlreadyExists; an alias
  // that is empty, longer than 63 or not [A-Za-z0-9._-] → kInvalidArgument.
  Result<AccountRecord> CreateAccount(const std::string& alias);
  Result<AccountRecord> GetAccount(const std::string& id);  // kNotFound
  Result<std::vector<AccountRecord>> ListAccounts();        // by creation time, then id
  // Sets the administrator flag and swaps the built-in policy attached ('member' ↔
  // 'administrator') in one transaction. kNotFound.
  Status SetAccountAdmin(const std::string& id, bool admin);

  // --- IAM policies and attachments ---
  // New accounts start with 'member' attached. Names are not checked here: the caller knows
  // which are built in and validates documents.
  Status PutIamPolicy(const IamPolicyRecord& p);  // insert, or replace the document
  Result<IamPolicyRecord> GetIamPolicy(const std::string& name);  // kNotFound
  Result<std::vector<IamPolicyRecord>> ListIamPolicies();          // by name
  // kNotFound; kConflict while it is attached to an account.
  Status DeleteIamPolicy(const std::string& name);
  // Unknown account → kNotFound; already attached → kAlreadyExists.
  Status AttachPolicy(const std::string& account_id, const std::string& policy_name);
  Status DetachPolicy(const std::string& account_id, const std::string& policy_name);  // kNotFound
  // Every attachment, or one account's; by account, then policy name.
  Result<std::vector<PolicyAttachment>> ListPolicyAttachments(std::optional<std::string> account_id);

  // --- access keys ---
  // Unknown account → kNotFound; duplicate id → kAlreadyExists.
  Status InsertAccessKey(const AccessKeyRecord& k);
  Result<AccessKeyRecord> GetAccessKey(const std::string& id);  // kNotFound
  Result<std::vector<AccessKeyRecord>> ListAccessKeys(std::optional<std::string> account_id);
  // Deleting or disabling a key is refused (kConflict, naming the key and its account) when
  // it is the last active key held by any administrator account: without one, nobody could
  // manage accounts or keys over the API any more. kNotFound for an unknown key.
  Status DeleteAccessKey(const std::string& id);
  // Enables or disables key id (status_ms = now_ms when it changes; setting the status it
  // already has changes nothing and succeeds). kNotFound; kConflict as for DeleteAccessKey.
  Status SetAccessKeyActive(const std::string& id, bool active, int64_t now_ms);
  // Replaces the sealed secret of key id with sealed, if it is still expected (a re-seal under
  // a new key). kNotFound for an unknown key; kConflict if the stored value is not expected.
  Status ReplaceAccessKeySecret(const std::string& id, const std::string& expected, const std::string& sealed);

  // --- restore requests ---
  // Inserted as pending, with r.restore_type and, for in-place, r.volume_id.
  Status InsertRestoreRequest(const RestoreRequestRecord& r);
  // An approved in-place request gets the rollback task approval started (once: kConflict
  // otherwise); one whose task could not start goes back to pending (same condition).
  Status SetRestoreRequestTask(const std::string& id, const std::string& task_id);
  Status ReopenRestoreRequest(const std::string& id);
  Result<RestoreRequestRecord> GetRestoreRequest(const std::string& id);  // kNotFound
  Result<std::vector<RestoreRequestRecord>> ListRestoreRequests(std::optional<std::string> account_id);
  // pending → approved/rejected. Absent → kNotFound; already decided → kConflict.
  Status DecideRestoreRequest(const std::string& id, bool approved, const std::string& decided_by,
                              const std::string& reason, const std::string& volume_id,
                              int64_t decided_ms);

  // --- in-place rollbacks: replace-root-volume tasks (catalog_replace_root_volume_tasks.cc) ---
  // Inserts t with its tags in one transaction. Duplicate id → kAlreadyExists; a ClientToken
  // the account already used → kAlreadyExists naming the token; bad id or tags → kInvalidArgument.
  Status InsertReplaceRootVolumeTask(const ReplaceRootVolumeTaskRecord& t);
  Result<ReplaceRootVolumeTaskRecord> GetReplaceRootVolumeTask(const std::string& id);  // kNotFound
  // The account's task made with this ClientToken, if any.
  Result<std::optional<ReplaceRootVolumeTaskRecord>> FindReplaceRootVolumeTaskByToken(const std::string& account_id,
                                                                                      const std::string& token);
  // All tasks or one account's, in id order.
  Result<std::vector<ReplaceRootVolumeTaskRecord>> ListReplaceRootVolumeTasks(std::optional<std::string> account_id);
  // Tasks still pending or in-progress (for a daemon that starts), oldest first.
  Result<std::vector<ReplaceRootVolumeTaskRecord>> ListUnfinishedReplaceRootVolumeTasks();
  // Writes the task's state, progress, counters, safety snapshot, reason, runner and
  // completion time. A task that has ended (succeeded, failed…) is never changed again:
  // kConflict. kNotFound.
  Status UpdateReplaceRootVolumeTask(const ReplaceRootVolumeTaskRecord& t);
  // Routed tasks (docs/multi-host.md part 3): a task inserted with runner QueuedRunner(host)
  // waits for that host; inserting it announces it as EnqueueSnapshotJob does (NOTIFY on
  // PostgreSQL, so WaitForSnapshotJobs wakes). ClaimReplaceRootVolumeTask takes the oldest
  // pending task queued for host_id and makes runner its runner, returning it as it stands
  // after the claim; nullopt when host_id has none. Tasks queued for other hosts, and tasks
  // already claimed or ended, are never returned. Atomic: of several callers racing for one
  // task exactly one gets it (one write transaction with a conditional update on the runner; on
  // PostgreSQL the row is also taken FOR UPDATE SKIP LOCKED). An empty host or runner →
  // kInvalidArgument.
  Result<std::optional<ReplaceRootVolumeTaskRecord>> ClaimReplaceRootVolumeTask(const std::string& host_id,
                                                                               const std::string& runner);

  // --- lifecycle policies and their runs ---
  Status InsertLifecyclePolicy(const LifecyclePolicyRecord& p);  // duplicate id → kAlreadyExists
  // Inserts an account's default policy and marks the account as having had one, once:
  // kAlreadyExists if it already did.
  Status InsertDefaultLifecyclePolicy(const LifecyclePolicyRecord& p);
  Result<std::vector<std::string>> AccountsWithoutDefaultLifecyclePolicy();
  Result<LifecyclePolicyRecord> GetLifecyclePolicy(const std::string& id);  // kNotFound
  Result<std::vector<LifecyclePolicyRecord>> ListLifecyclePolicies(std::optional<std::string> account_id);
  // Replaces description, state, role, details, tags and modified_ms. kNotFound.
  Status UpdateLifecyclePolicy(const LifecyclePolicyRecord& p);
  Status DeleteLifecyclePolicy(const std::string& id);  // kNotFound; its runs stay
  // --- Recycle Bin: retention rules and binned snapshots (catalog_rbin.cc) ---
  Status InsertRbinRule(const RbinRuleRecord& r);  // duplicate id → kAlreadyExists
  Result<RbinRuleRecord> GetRbinRule(const std::string& rule_id);  // kNotFound
  // Rules of one account (or all), oldest first.
  Result<std::vector<RbinRuleRecord>> ListRbinRules(std::optional<std::string> account_id);
  // Replaces every field but rule_id, account_id and created_ms. kNotFound.
  Status UpdateRbinRule(const RbinRuleRecord& r);
  Status DeleteRbinRule(const std::string& rule_id);  // kNotFound
  // Moves snapshot id into the bin until exit_ms, in one transaction with DeleteSnapshot's
  // checks (a locked snapshot → kConflict; absent → kNotFound): before_move runs inside it (the
  // store's move), and its failure leaves the snapshot where it was. Its createVolumePermission
  // grants are kept with it (inactive) and its account's snapshot quota still counts it.
  Status BinSnapshot(const std::string& id, int64_t now_ms, int64_t exit_ms, const std::string& rule_id,
                     const std::function<Status()>& before_move = {});
  Result<BinnedSnapshotRecord> GetBinnedSnapshot(const std::string& id);  // kNotFound
  // Binned snapshots of one account (or all), by entry time.
  Result<std::vector<BinnedSnapshotRecord>> ListBinnedSnapshots(std::optional<std::string> account_id);
  // Takes id out of the bin back into snapshots (its row, tags and grants as they were), running
  // before_restore (the store's move) inside the transaction. kNotFound when not binned.
  Status RestoreBinnedSnapshot(const std::string& id, const std::function<Status()>& before_restore = {});
  // Forgets a binned snapshot for good (its retention ended), running before_remove inside.
  Status RemoveBinnedSnapshot(const std::string& id, const std::function<Status()>& before_remove = {});
  // Catalog rebuild: the bin becomes exactly `binned` (from the store's bin/ roots).
  Status ReplaceRecycleBin(const std::vector<BinnedSnapshotRecord>& binned);
  // The daemon's default rule (retention days; 0: none), as snapvold last recorded it.
  // Set: kInvalidArgument outside 0..3650.
  Status SetRecycleBinDefaultRetentionDays(int64_t days);
  Result<int64_t> GetRecycleBinDefaultRetentionDays();

  // A run for the same policy, schedule and time → kAlreadyExists (a run happens once).
  Status InsertLifecycleRun(const LifecycleRunRecord& r);
  // By its key; kNotFound. Fenced by r.lease_generation: kConflict (naming the host and
  // generation recorded) when the stored run was written under a higher generation.
  Status UpdateLifecycleRun(const LifecycleRunRecord& r);
  // Newest first, at most limit.
  Result<std::vector<LifecycleRunRecord>> ListLifecycleRuns(std::optional<std::string> policy_id, size_t limit);
  Result<std::vector<LifecycleRunRecord>> ListRunningLifecycleRuns();
  Result<std::optional<LifecycleRunRecord>> LatestLifecycleRun(const std::string& policy_id,
                                                              const std::string& schedule_name);

  // --- maintenance jobs and what verification found (catalog_maintenance.cc) ---
  // Inserts r and returns its run_id. A scheduled run for the same job and scheduled time →
  // kAlreadyExists (it happens once).
  Result<int64_t> InsertMaintenanceRun(const MaintenanceRunRecord& r);
  // Writes r over its row (by run_id; kNotFound). Fenced by lease generation: kConflict, naming
  // the host and generation recorded, when the row's lease_generation is above
  // r.lease_generation (the run was taken over by a newer holder of the lease).
  Status UpdateMaintenanceRun(const MaintenanceRunRecord& r);
  Result<MaintenanceRunRecord> GetMaintenanceRun(int64_t run_id);  // kNotFound
  // Newest first (by run_id), of one job or all, at most limit.
  Result<std::vector<MaintenanceRunRecord>> ListMaintenanceRuns(std::optional<std::string> job, size_t limit);
  // Queued and running runs, oldest first.
  Result<std::vector<MaintenanceRunRecord>> ListUnfinishedMaintenanceRuns();
  // The scheduled run of job with the latest scheduled time, if any.
  Result<std::optional<MaintenanceRunRecord>> LatestScheduledMaintenanceRun(const std::string& job);
  // Every snapshot verification record, of snapshots still in the catalog (others are removed).
  Result<std::vector<SnapshotVerificationRecord>> ListSnapshotVerifications();
  // Records a clean or damaged check of snapshot_id at checked_ms (full: a full decode).
  Status RecordSnapshotChecked(const std::string& snapshot_id, int64_t checked_ms, bool full);
  // Records the drill of r.snapshot_id, replacing the one before (catalog_drills.cc).
  Status RecordRestoreDrill(const RestoreDrillRecord& r);
  // Every drill record of a snapshot still in the catalog (others are removed), by snapshot id.
  Result<std::vector<RestoreDrillRecord>> ListRestoreDrills();
  // Records damage (kept until the snapshot is deleted) and sets the snapshot's state message to
  // message, in one transaction; its state stays. LatestCompletedSnapshot skips it from now on.
  // kNotFound when the snapshot is not in the catalog.
  Status MarkSnapshotDamaged(const std::string& snapshot_id, int64_t damaged_ms, const std::string& problem,
                             const std::string& message);

  // --- instances ---
  // Inserts i with its tags in one transaction. A Name tag's value is stored as the name; a
  // name given without a Name tag is stored as one too.
  // Unknown account → kNotFound; duplicate id → kAlreadyExists; malformed id or invalid tags
  // → kInvalidArgument (more than 50: kTagLimitExceeded).
  Status InsertInstance(const InstanceRecord& i);
  Result<InstanceRecord> GetInstance(const std::string& id);  // kNotFound
  Result<std::vector<InstanceRecord>> ListInstances(std::optional<std::string> account_id);
  // Marks an instance "running" or "stopped" (kInvalidArgument otherwise). kNotFound.
  Status SetInstanceState(const std::string& id, const std::string& state);

  // Sets (replaces) an instance's freeze hooks. kNotFound for an unknown instance;
  // kInvalidArgument for no command, a command line SplitCommandLine refuses or longer than
  // 4,096 bytes, a timeout outside 1..3600 s, or on_pre_failure other than fail/crash-consistent.
  Status SetInstanceHooks(const InstanceHooksRecord& h);
  // kNotFound when the instance has none (or does not exist).
  Result<InstanceHooksRecord> GetInstanceHooks(const std::string& instance_id);
  Result<std::vector<InstanceHooksRecord>> ListInstanceHooks();
  // Removes them; kNotFound when there were none.
  Status ClearInstanceHooks(const std::string& instance_id);

  // --- volumes ---
  // Inserts v with its tags in one transaction, name and Name tag made equal as InsertInstance
  // does. Duplicate id → kAlreadyExists; unknown
  // account, malformed id, a volume_type other than "gp2"/"standard" or invalid tags →
  // kInvalidArgument.
  Status InsertVolume(const VolumeRecord& v);
  Result<VolumeRecord> GetVolume(const std::string& id);  // "volume vol-… not found"
  // All volumes, or those of one account; by creation time, then id.
  Result<std::vector<VolumeRecord>> ListVolumes(std::optional<std::string> account_id);
  Status UpdateVolumeSize(const std::string& id, uint64_t size);  // kNotFound
  Status SetVolumeState(const std::string& id, const std::string& state,
                        const std::string& message = "");  // kNotFound
  // Attaches (instance_id non-empty) a detached volume, or detaches (instance_id empty) an
  // attached one. kNotFound; kConflict when it is already in the other state. A volume
  // attached at the instance's root device becomes its root (boot); detached, it is not. On
  // PostgreSQL a detach wakes WaitForSnapshotJobs (NOTIFY): the volume's host, if another, ends
  // its NBD connections at once (docs/multi-host.md part 3).
  Status SetVolumeAttachment(const std::string& id, const std::string& instance_id, const std::string& device,
                             int64_t attach_ms);
  // Replaces an instance's root volume in one transaction: old_id, attached at the instance's
  // root device, is detached, and new_id, detached and of the instance's account, is attached
  // there as the root (boot) volume. Both or neither: kConflict (nothing changed) when old_id
  // is not the volume at the root device or new_id cannot be attached; kNotFound (instance).
  Status SwapRootVolume(const std::string& instance_id, const std::string& old_id, const std::string& new_id,
                        int64_t attach_ms);
  // Removes the row and its tags (snapshots of the volume stay). kNotFound; kConflict while it
  // is attached, `creating`, or a replace-root/rollback task of it is pending or in progress,
  // checked in the transaction that removes it; the task except_task (the replace-root task
  // deleting the volume it replaced) does not count. The domain operation around it (NBD
  // connections, the volume's files) is managed/volume_deletion.h.
  Status DeleteVolume(const std::string& id, const std::string& except_task = "");

  // --- deletions of volumes another host holds (catalog_volume_deletions.cc; multi-host.md part 3) ---
  // Marks volume_id `deleting` for its host, whose claimer deletes it (ClaimVolumeDeletion). One
  // write transaction: DeleteVolume's rules (kNotFound; kConflict while it is attached,
  // `creating` or rolling back), then its host's row: a host that is not up at now_ms with
  // timeout_ms (HostStateAt; no row: unregistered) → kConflict naming the host and its state;
  // then state `deleting` with state_message QueuedRunner(host), and on PostgreSQL a NOTIFY that
  // wakes WaitForSnapshotJobs. Every refusal changes nothing. A volume already `deleting` is left
  // as it is (OK). A volume without a host → kInvalidArgument.
  Status QueueVolumeDeletion(const std::string& volume_id, int64_t now_ms, int64_t timeout_ms);
  // Claims one volume `deleting` for host_id (its state_message becomes runner) and returns it;
  // nullopt when host_id has none queued. Deletions queued for other hosts are never returned.
  // Atomic as ClaimReplaceRootVolumeTask. An empty host or runner → kInvalidArgument.
  Result<std::optional<VolumeRecord>> ClaimVolumeDeletion(const std::string& host_id, const std::string& runner);
  // Puts back in host_id's queue the deletions an earlier process of that host claimed and did
  // not finish (a snapvold starting). Returns how many.
  Result<size_t> UnclaimVolumeDeletions(const std::string& host_id);
  // --- routed volume creations (catalog_volume_queue.cc; docs/multi-host.md part 3) ---
  // A volume placed on another host than the one asked: inserts v (`creating`, v.host_id that
  // host, no path yet: the host names it) as InsertVolume does, and queues its creation for
  // v.host_id, in one transaction (NOTIFY on PostgreSQL, as EnqueueSnapshotJob). No host, a
  // state other than creating, or a path → kInvalidArgument; else InsertVolume's errors.
  Status InsertRoutedVolume(const VolumeRecord& v);
  // Claims the oldest unclaimed creation queued for host_id for runner and returns its volume as
  // it stands; nullopt when host_id has none. Atomic as ClaimSnapshotJob: of several callers
  // racing exactly one gets it; other hosts' creations are never returned. A queue row whose
  // volume is no longer `creating` on host_id (ended by the sweep) is dropped, not returned.
  // An empty host or runner → kInvalidArgument.
  Result<std::optional<VolumeRecord>> ClaimVolumeCreation(const std::string& host_id, const std::string& runner,
                                                          int64_t now_ms);
  // The claimer made the volume's data at path: in one transaction sets its path, state
  // (`available`, `error` with message, or `creating` while a background restore fills it) and
  // removes the queue row. Only the claimer of a volume still `creating`: otherwise kConflict
  // (claimed by another, or the volume was ended meanwhile) or kNotFound (not queued), and
  // nothing changes; the caller then removes what it made.
  Status FinishVolumeCreation(const std::string& volume_id, const std::string& runner, const std::string& path,
                              const std::string& state, const std::string& message = "");
  // Puts host_id's claimed creations back in its queue (a snapvold starting on that host, whose
  // earlier process may have claimed some and stopped before finishing). Returns how many.
  Result<size_t> UnclaimVolumeCreations(const std::string& host_id);
  // Every queued or claimed creation, oldest first.
  Result<std::vector<VolumeCreationRecord>> ListVolumeCreations();
  // Ends a `creating` volume of host_id, a host that is not up (docs/multi-host.md part 5), as
  // EndAbandonedSnapshot ends a snapshot: in one write transaction the fence, then host_id's row
  // (up at now_ms with timeout_ms → false, nothing changed), then the volume, `creating` with
  // that host_id, becomes `error` with message and its queue row goes. False when it is no
  // longer creating there.
  Result<bool> EndAbandonedVolume(const std::string& volume_id, const std::string& host_id,
                                  const std::string& message, int64_t now_ms, int64_t timeout_ms,
                                  const LeaseFence& fence);
  // The same for a `pending` rollback task whose runner is exactly `runner` (one of host_id's,
  // or QueuedRunner(host_id)): it becomes `failed` with message as its reason, completed at
  // now_ms, runner cleared. A runner that is not host_id's → kInvalidArgument.
  Result<bool> EndAbandonedRollbackTask(const std::string& task_id, const std::string& runner,
                                        const std::string& host_id, const std::string& message, int64_t now_ms,
                                        int64_t timeout_ms, const LeaseFence& fence);

  // --- snapshots ---
  // Inserts s with its tags in one transaction. Duplicate id → kAlreadyExists; unknown
  // account, malformed id or progress, or invalid tags → kInvalidArgument.
  Status InsertSnapshot(const SnapshotRecord& s);
  Result<SnapshotRecord> GetSnapshot(const std::string& id);  // "snapshot snap-… not found"
  // Matching snapshots ordered by start time, then id.
  Result<std::vector<SnapshotRecord>> ListSnapshots(const SnapshotFilter& f);
  // Sets progress ("0%".."100%") of a pending snapshot. Absent → kNotFound; not pending →
  // kConflict (a writer that gets it should stop: someone else finished or failed it).
  Status UpdateProgress(const std::string& id, const std::string& progress);
  // Counts and byte sums of snapshots by account and state, and lifecycle runs by state,
  // read together on a read-only connection (for /metrics).
  Result<CatalogTotals> MetricsTotals();
  // At most limit snapshots of account_id whose ids sort after after_id (empty: from the
  // start), in id order: one page for keyset paging, read without touching the others.
  Result<std::vector<SnapshotRecord>> ListSnapshotsPage(const std::string& account_id,
                                                        const std::string& after_id, size_t limit);
  // pending → completed: sets progress "100%", the completion time, stored bytes and block
  // counts, and clears the runner. Absent → kNotFound; not pending → kConflict.
  Status MarkCompleted(const std::string& id, int64_t completed_ms, uint64_t stored_bytes,
                       uint64_t changed_blocks, uint64_t total_blocks);
  // pending → error with message as the state message; clears the runner.
  // Absent → kNotFound; not pending → kConflict (a completed snapshot is never demoted).
  Status MarkError(const std::string& id, const std::string& message);
  // Removes the snapshot row, its tags, its lock and its createVolumePermission grants.
  // Absent → kNotFound; a lock in force at now_ms, or a volume still loading from it
  // (ReadsFromItsSnapshot) → kConflict naming it, and nothing changes. before_delete
  // (optional) runs inside the same write transaction after those checks (e.g. to remove the
  // store's manifest): a LockSnapshot or a lazy CreateVolume cannot slip in between, and its
  // failure leaves the row. Callers outside the catalog use engine/snapshot_deletion.h.
  Status DeleteSnapshot(const std::string& id, int64_t now_ms, const std::function<Status()>& before_delete = {});
  // The completed snapshot of volume_id with the latest start time (the parent for the next
  // incremental snapshot); pending and failed snapshots never qualify, nor one that
  // verification found damaged (MarkSnapshotDamaged). None → kNotFound.
  Result<SnapshotRecord> LatestCompletedSnapshot(const std::string& volume_id);

  // --- the journal of EBS direct snapshots (catalog_direct_blocks.cc) ---
  // Starts the journal of pending snapshot id (its deadline). Absent → kNotFound; not pending
  // → kConflict; a journal already there → kAlreadyExists.
  Status InsertDirectJournal(const std::string& id, int64_t deadline_ms);
  // Records blocks (in order: a later entry for an index replaces an earlier one, as does a
  // row already journaled) in one transaction. No journal, or the snapshot no longer pending →
  // kConflict, and nothing is written.
  Status JournalDirectBlocks(const std::string& id, const std::vector<DirectBlockRecord>& blocks);
  // The journals of pending snapshots, by snapshot id.
  Result<std::vector<DirectJournalRecord>> ListDirectJournals();
  // The journaled blocks of id, by index (none when it has no journal).
  Result<std::vector<DirectBlockRecord>> ListDirectBlocks(const std::string& id);
  // Sets the runner of pending snapshot id from `from` to `to` (a handover: a dead runner's
  // snapshot released to adoption, then claimed by the adopting process). kConflict when it is
  // not pending or its runner is not `from` (someone else took it); kNotFound when absent.
  // MarkCompleted and MarkError delete a snapshot's journal in their transaction.
  Status HandOverSnapshot(const std::string& id, const std::string& from, const std::string& to);

  // --- hosts (catalog_hosts.cc; docs/multi-host.md part 2) ---
  // Inserts host.host_id's row or replaces every column of it, and in the same transaction
  // rewrites the kHostTag and kNbdTag of that host's volumes (its name and NBD endpoint may
  // have changed). An empty host id or a negative heartbeat → kInvalidArgument.
  Status UpsertHost(const HostRecord& host);
  // Sets host_id's heartbeat_ms to now_ms (0: stopped cleanly). Absent → kNotFound.
  Status Heartbeat(const std::string& host_id, int64_t now_ms);
  // Every host, by id.
  Result<std::vector<HostRecord>> ListHosts();
  // Absent → kNotFound.
  Result<HostRecord> GetHost(const std::string& host_id);

  // --- ownership (catalog_hosts.cc; docs/multi-host.md part 3) ---
  // The host of the process using this catalog (DIR/host-id): volumes and instances inserted
  // without a host_id get it, and their system tags say so. Set by the data dir that opened
  // the catalog; without it such rows have no host (NULL).
  void SetLocalHost(const std::string& host_id);
  // The host SetLocalHost set; '' when none.
  std::string LocalHost() const;
  // The host that holds volume_host's data when that is not this catalog's local host: the host
  // a request for it is routed to (or refused for). '' when the data is here, and when either
  // host is unknown (a catalog opened outside a data dir, a volume not yet claimed): then
  // everything runs here, as on one host.
  std::string HostElsewhere(const std::string& volume_host) const;
  // "NAME (host-…, API URL)" for people, from the hosts table; the bare id when it is not
  // registered or cannot be read.
  std::string DescribeHost(const std::string& host_id);
  // Gives every volume and instance that has no host (made before migration 25) to host_id,
  // and writes those volumes' kHostTag/kNbdTag, all in one transaction; a row another host
  // owns is never changed. Returns how many rows it claimed; when there are none it writes
  // nothing (no write lock is taken). An empty host_id → kInvalidArgument.
  Result<size_t> ClaimOwnerless(const std::string& host_id);

  // --- cluster leases (catalog_leases.cc; docs/multi-host.md part 4) ---
  // Takes or renews lease `name` for holder until now_ms + ttl_ms, and returns the lease as it
  // stands after the call: holder's when it was absent, expired, released or already holder's
  // (a renewal keeps the generation; a new holder gets generation + 1, the first one 1); else
  // the live holder's, unchanged (its holder and expires_ms say who holds it and until when).
  // One write transaction. An empty name or holder, a negative now_ms or a ttl_ms < 1 →
  // kInvalidArgument.
  Result<ClusterLeaseRecord> AcquireClusterLease(const std::string& name, const std::string& holder,
                                                 int64_t now_ms, int64_t ttl_ms);
  // OK only while holder holds lease `name` at `generation` and now_ms is before its expiry:
  // what a duty calls before each step it cannot repeat. Held by another holder or at another
  // generation (taken over), or expired or released → kConflict, saying which; absent →
  // kNotFound.
  Status CheckClusterLease(const std::string& name, const std::string& holder, int64_t generation,
                           int64_t now_ms);
  // A clean stop: expires holder's lease `name` at once (expires_ms 0), keeping its generation,
  // so another holder may take it without waiting. Held by another holder → kConflict, absent
  // → kNotFound; either changes nothing.
  Status ReleaseClusterLease(const std::string& name, const std::string& holder);
  // Every lease, by name.
  Result<std::vector<ClusterLeaseRecord>> ListClusterLeases();

  // --- routed snapshot jobs (catalog_snapshot_queue.cc; docs/multi-host.md part 3) ---
  // Queues job for job.host_id. Call it in the Transaction() that inserts the job's pending
  // snapshots (runner QueuedRunner(host_id)). An empty job id, host or snapshot list, or a job
  // already claimed → kInvalidArgument; a job id queued before → kAlreadyExists.
  Status EnqueueSnapshotJob(const SnapshotJobRecord& job);
  // Claims the oldest unclaimed job of host_id for runner (claimed_by = runner, claimed_ms =
  // now_ms) and returns it; nullopt when host_id has none. Jobs of other hosts are never
  // returned. Atomic: of several callers racing for one job exactly one gets it (one write
  // transaction; on PostgreSQL the row is also taken FOR UPDATE SKIP LOCKED). An empty host or
  // runner → kInvalidArgument.
  Result<std::optional<SnapshotJobRecord>> ClaimSnapshotJob(const std::string& host_id, const std::string& runner,
                                                            int64_t now_ms);
  // Removes job_id once its snapshots run (or ended): only its claimer may. Claimed by another
  // runner or not claimed → kConflict; absent → kNotFound; either changes nothing.
  Status FinishSnapshotJob(const std::string& job_id, const std::string& runner);
  // Puts host_id's claimed jobs back in its queue (claimed_by ''): a snapvold starting on that
  // host, whose earlier process may have claimed jobs and stopped before running them. Returns
  // how many.
  Result<size_t> UnclaimSnapshotJobs(const std::string& host_id);
  // Ends a pending snapshot that a host which is not up left behind (docs/multi-host.md part 5),
  // in one write transaction: first the fence (fence.holder must hold fence.name under
  // fence.generation at now_ms, as CheckClusterLease says; otherwise its kConflict or kNotFound
  // and nothing changes), then host_id's row (no row counts as not up), then the snapshot:
  // pending under exactly `runner` (a runner of host_id, or QueuedRunner(host_id)) becomes
  // `error` with message (runner cleared, its EBS direct journal deleted), and host_id's queued
  // jobs that name it are removed. Returns false, changing nothing, when the host is up at now_ms
  // with timeout_ms (HostStateAt; e.g. it came back after the caller judged it) or the snapshot
  // is no longer pending under that runner (ended meanwhile, or taken over by a claimer). A
  // runner that is not host_id's → kInvalidArgument.
  Result<bool> EndAbandonedSnapshot(const std::string& snapshot_id, const std::string& runner,
                                    const std::string& host_id, const std::string& message, int64_t now_ms,
                                    int64_t timeout_ms, const LeaseFence& fence);
  // Every queued or claimed job, oldest first.
  Result<std::vector<SnapshotJobRecord>> ListSnapshotJobs();
  // Whether WaitForSnapshotJobs can wake early: on PostgreSQL, where EnqueueSnapshotJob
  // NOTIFYs every listener when its transaction commits. False on SQLite (one host: nothing is
  // ever routed) and for a catalog opened without a URL.
  bool NotifiesSnapshotJobs() const;
  // REQUIRES NotifiesSnapshotJobs(). Waits up to timeout_ms for a job to be queued for any
  // host: true when one was (the caller then claims), false when none was. The first call
  // starts listening (on a session of its own); a job queued before that is not announced,
  // so callers claim after every wait, announced or not. A lost session → kIoError: the next
  // call connects again. One thread at a time.
  Result<bool> WaitForSnapshotJobs(int64_t timeout_ms);

  // --- snapshot locks ---
  // Inserts or replaces the lock of an existing snapshot (kNotFound otherwise).
  Status PutSnapshotLock(const SnapshotLockRecord& lock);
  Result<SnapshotLockRecord> GetSnapshotLock(const std::string& snapshot_id);  // kNotFound
  // Every lock, or one account's, by snapshot id.
  Result<std::vector<SnapshotLockRecord>> ListSnapshotLocks(std::optional<std::string> account_id);
  Status DeleteSnapshotLock(const std::string& snapshot_id);  // kNotFound

  // --- snapshot sharing (createVolumePermission) ---
  // A grantee is a 12-digit account id or "all" (public). Grants live in a table of their
  // own, not in SnapshotRecord.
  // Grants each grantee; one already granted is left as it is. Absent snapshot → kNotFound;
  // a grantee that is neither an account id nor "all" → kInvalidArgument, nothing changes.
  Status AddSnapshotPermissions(const std::string& snapshot_id, const std::vector<std::string>& grantees);
  // Revokes each grantee; ones not granted are ignored. Absent snapshot → kNotFound.
  Status RemoveSnapshotPermissions(const std::string& snapshot_id, const std::vector<std::string>& grantees);
  // Revokes every grant of the snapshot. Absent snapshot → kNotFound.
  Status ResetSnapshotPermissions(const std::string& snapshot_id);
  // The grantees of the snapshot, sorted. Absent snapshot → kNotFound.
  Result<std::vector<std::string>> ListSnapshotPermissions(const std::string& snapshot_id);
  // The grantees of each of these snapshots that has any, sorted, by snapshot id, read in one
  // transaction. A snapshot without grants, or not in the catalog, has no entry (never
  // kNotFound); ids may repeat.
  Result<std::map<std::string, std::vector<std::string>>> ListSnapshotPermissions(
      const std::vector<std::string>& snapshot_ids);
  // Snapshots (with their tags) granted to account_id or to "all" and not owned by
  // account_id, in snapshot id order, whatever their state.
  Result<std::vector<SnapshotRecord>> ListSnapshotsSharedWith(const std::string& account_id);
  // Whether ListSnapshotsSharedWith(account_id) would list any. Read on a read-only
  // connection, as ListSnapshotsPage is, so it does not wait for the main one.
  Result<bool> AnySnapshotsSharedWith(const std::string& account_id);

  // --- usage accounting (catalog_usage.cc) ---
  // MarkCompleted and UpsertSnapshot of a completed snapshot journal an add, DeleteSnapshot a
  // removal, in the same transaction; DeleteAllSnapshots empties the usage index. The usage
  // tables are written only through ApplyUsageUpdate, whose caller (UsageAccounting) works
  // the journal in order.
  Result<std::optional<UsageJournalEntry>> NextUsageEntry();
  Result<uint64_t> PendingUsageEntries();
  // Snapshots whose removal is journalled and not yet applied: their pages must stay readable.
  Result<std::vector<std::string>> PendingUsageRemovals();
  // Moves on with every applied update (and with ResetUsage).
  Result<int64_t> UsageGeneration();
  Result<std::optional<UsageObject>> GetUsageObject(const std::string& id);
  Result<int64_t> GetUsageAccountRefs(const std::string& object_id, const std::string& account_id);
  // Accounts that reference the object (refs above zero), sorted.
  Result<std::vector<std::string>> UsageHolders(const std::string& object_id);
  Result<std::optional<SnapshotUsageRecord>> GetSnapshotUsage(const std::string& snapshot_id);
  // Applies u and removes its journal entry, in one transaction. Conflict (nothing written)
  // when the generation is not u.expected_generation or the entry is gone.
  Status ApplyUsageUpdate(const UsageUpdate& u);
  // Remembers a snapshot's unique bytes as computed at generation (ignored if it moved on).
  Status CacheSnapshotUnique(const std::string& snapshot_id, uint64_t unique_bytes, int64_t generation);
  // Stored bytes of every object in the usage index (each counted once).
  Result<uint64_t> UsageStoredBytes();
  // Every account with accounted snapshots, sorted by id.
  Result<std::vector<AccountUsageRecord>> ListAccountUsage();
  // Empties the usage index and journals an add for every completed snapshot (oldest first):
  // the index is rebuilt by working the journal.
  Status ResetUsage();

  // --- quotas per account (catalog_quotas.cc) ---
  // InsertVolume of a volume that QuotaCountsVolume and InsertSnapshot check the account's
  // limits inside the transaction that writes the row: the count includes the new row, so
  // concurrent inserts (other threads, other processes) cannot both pass. Over a limit they
  // fail with kQuotaExceeded naming the limit, and nothing is written. UpsertSnapshot (the
  // catalog rebuild) is not checked: it records what the store already holds.
  // Sets limits of account_id, or of the defaults with kQuotaDefaults, all in one
  // transaction. Unknown account → kNotFound; a limit above kMaxQuotaLimit →
  // kInvalidArgument; nothing changes on error. Lowering a limit below what an account
  // already holds is allowed: it refuses new resources until the account is under it again.
  Status SetQuotas(const std::string& account_id, const std::vector<std::pair<QuotaKind, QuotaSetting>>& changes);
  // The settings as stored (kInherit where none is set). Unknown account → kNotFound.
  Result<QuotaSettings> GetQuotaSettings(const std::string& account_id);
  // The limits that hold for account_id: its own where set, else the defaults.
  Result<QuotaLimits> EffectiveQuotaLimits(const std::string& account_id);
  Result<QuotaUsage> GetQuotaUsage(const std::string& account_id);
  // kQuotaExceeded if adding one counted volume of add_bytes to account_id would pass a
  // limit now. A read-only early answer (e.g. before making a volume's file); InsertVolume
  // checks again where it counts.
  Status CheckVolumeQuota(const std::string& account_id, uint64_t add_bytes);
  // kQuotaExceeded if add more snapshots of account_id would pass its limit now (as
  // CheckVolumeQuota: an early answer, e.g. before writing a manifest; InsertSnapshot decides).
  Status CheckSnapshotQuota(const std::string& account_id, uint64_t add);

  // --- tags of snapshots (snap-), volumes (vol-) and instances (i-) ---
  // The resource type follows from the id's prefix; an id with none of these prefixes →
  // kInvalidArgument. On an instance or a volume, key Name is also its name (the record's name):
  // setting the tag sets the name and removing it clears the name, in the same transaction.
  // (Insert* and migration 11 make a name into a Name tag, so the two are always equal.)
  // Adds tags or overwrites the values of existing keys. Absent resource → kNotFound; an
  // invalid tag or a key given twice → kInvalidArgument; more than 50 tags afterwards →
  // kInvalidArgument whose message starts with kTagLimitExceeded (IsTagLimitExceeded). On
  // any error nothing changes.
  Status SetTags(const std::string& resource_id, const std::vector<Tag>& tags);
  // Removes the tags with these keys; keys that are not set are ignored. Absent → kNotFound.
  Status RemoveTags(const std::string& resource_id, const std::vector<std::string>& keys);
  // Removes every user tag of the resource (EC2 DeleteTags without keys): system tags, whose
  // keys start with kReservedTagPrefix ("aws:"), stay. Absent → kNotFound.
  Status RemoveAllTags(const std::string& resource_id);

  // --- catalog rebuild ---
  // A rebuild runs DeleteAllSnapshots, UpsertSnapshot for each snapshot in the store, then
  // DeleteOrphanedGrantsAndLocks, in one Transaction().
  // Removes every snapshot and its tags in one transaction. Volumes, accounts, snapshot locks
  // and createVolumePermission grants stay: the store's manifests hold no locks or grants, so
  // a snapshot upserted again keeps its own.
  Status DeleteAllSnapshots();
  // Inserts s, or replaces the stored row and all its tags, in one transaction.
  Status UpsertSnapshot(const SnapshotRecord& s);
  // Removes the createVolumePermission grants and locks of snapshots that are not in the
  // catalog (those the rebuild did not find in the store).
  Status DeleteOrphanedGrantsAndLocks();

  // Runs fn inside one transaction (BEGIN IMMEDIATE … COMMIT). If fn returns an error (or
  // throws), everything it did through this Catalog is rolled back and its error returned.
  // fn may call any method of this Catalog, including Transaction() again (a nested call
  // becomes a savepoint that rolls back on its own). While fn runs, other threads' calls on
  // this Catalog wait, so fn must not wait for a thread that uses this Catalog.
  Status Transaction(const std::function<Status()>& fn);

 private:
  using Connection = catalog_internal::Connection;

  Catalog(std::unique_ptr<Connection> db, Clock* clock);

  // All REQUIRE mu_ held.
  Status Migrate(const std::string& path);
  Status EnsureDefaultAccount(const std::string& what);
  Status AttachDefaultPolicy(const std::string& account_id, const std::string& what);
  // write: take the write lock now (Connection::Begin); else a read transaction.
  Status InTransaction(const std::function<Status()>& fn, bool write = true);
  Status WriteSnapshot(const SnapshotRecord& s, bool replace);
  Status WriteBinned(const BinnedSnapshotRecord& b);  // catalog_rbin.cc; inside a transaction
  Status WriteTags(const std::string& resource_id, const std::vector<Tag>& tags);
  // REQUIRE mu_ held, inside a write transaction: InsertVolume's and InsertRoutedVolume's
  // insert of a checked volume; EnqueueVolumeCreationLocked, the queue row (catalog_volume_queue.cc).
  Status InsertVolumeLocked(const VolumeRecord& v);
  Status EnqueueVolumeCreationLocked(const std::string& volume_id, const std::string& host_id, int64_t created_ms);
  // REQUIRE mu_ held, inside a write transaction: the checks EndAbandoned* make before ending
  // anything (the fence, then host_id not up at now_ms). false: host_id is up, end nothing.
  Result<bool> HostAbandonedLocked(const std::string& host_id, int64_t now_ms, int64_t timeout_ms,
                                   const LeaseFence& fence);
  // REQUIRE mu_ held, inside a write transaction: sets the kHostTag (and, for managed volumes
  // whose host serves NBD, kNbdTag; otherwise removes it) of the volumes with a host that
  // match `where` ("v.host_id = ?" or "v.volume_id = ?", bound to value).
  Status SyncHostTags(const char* where, const std::string& value);
  // REQUIRES mu_ held: CheckClusterLease's judgement, readable inside a write transaction.
  Status CheckClusterLeaseLocked(const std::string& name, const std::string& holder, int64_t generation,
                                 int64_t now_ms);
  Result<std::string> SnapshotStateOf(const std::string& id);
  // REQUIRE mu_ held, inside a write transaction after the row was written: kQuotaExceeded if
  // the account now holds more than its limits allow (the caller's transaction rolls back).
  Status EnforceVolumeQuota(const std::string& account_id);
  Status EnforceSnapshotQuota(const std::string& account_id);
  Result<QuotaLimits> ReadQuotaLimits(const std::string& account_id);
  Result<QuotaUsage> ReadQuotaUsage(const std::string& account_id);
  Status CheckPendingTransition(const std::string& id, const char* action);
  // REQUIRE mu_ held, inside a write transaction: drops id's direct-snapshot journal, if any.
  Status DeleteDirectJournal(const std::string& id);
  // REQUIRE mu_ held, inside a write transaction: journals a usage add or removal.
  Status JournalUsage(bool add, const std::string& snapshot_id);
  // Runs read(db, cached) on one of readers_, whose statements may be cached (cached true:
  // Statement::PrepareOn), or, when there are none, on the main connection (under mu_) with
  // cached false.
  template <typename Read>
  auto OnReader(Read&& read) -> decltype(read(std::declval<Connection&>(), false)) {
    if (!readers_.empty()) {
      Reader& r = *readers_[next_reader_++ % readers_.size()];
      std::lock_guard lock(r.mu);
      return read(*r.db, true);
    }
    std::lock_guard lock(mu_);
    return read(*db_, false);
  }

  struct Reader {
    std::mutex mu;  // guards db
    std::unique_ptr<Connection> db;  // read-only
  };
  static constexpr int kReaderConnections = 2;
  std::vector<std::unique_ptr<Reader>> readers_;  // set by Open, then fixed
  std::unique_ptr<Reader> version_reader_;         // for DataVersion; set by Open, may be null
  std::atomic<size_t> next_reader_{0};
  mutable std::recursive_mutex mu_;  // recursive: methods run inside Transaction(fn)
  std::unique_ptr<Connection> db_;   // guarded by mu_
  Clock* const clock_;
  int schema_version_ = 0;  // guarded by mu_
  std::string local_host_;  // guarded by mu_; SetLocalHost
  std::string postgres_url_;  // set by Open for a PostgreSQL catalog, then fixed
  std::mutex listen_mu_;      // guards listener_
  std::unique_ptr<catalog_internal::PostgresListener> listener_;  // WaitForSnapshotJobs
  std::atomic<int64_t> write_generation_{0};  // changes of identities through this Catalog
};

}  // namespace snapvol
