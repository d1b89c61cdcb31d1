// The catalog's numbered schema migrations (catalog_internal::Migrations, catalog_sql.h),
// applied in order by Catalog::Open (catalog_schema.cc). Append new migrations; never edit a
// released one, because databases in the field already record its version.
#include <span>

#include "catalog/catalog_sql.h"

namespace snapvol::catalog_internal {

std::span<const Migration> Migrations() {
  static constexpr Migration kMigrations[] = {
    {1, R"sql(
PRAGMA application_id = 1399739953;

CREATE TABLE accounts (
  account_id TEXT NOT NULL PRIMARY KEY,
  alias      TEXT NOT NULL UNIQUE,
  created_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE volumes (
  volume_id  TEXT NOT NULL PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(account_id),
  name       TEXT NOT NULL,
  path       TEXT NOT NULL,
  size_bytes INTEGER NOT NULL CHECK (size_bytes >= 0),
  block_size INTEGER NOT NULL CHECK (block_size > 0),
  created_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX volumes_by_account ON volumes(account_id, created_ms);

-- No foreign key to volumes: a snapshot outlives its volume, and a rebuild from the store
-- may find snapshots of volumes this catalog never registered.
CREATE TABLE snapshots (
  snapshot_id        TEXT NOT NULL PRIMARY KEY,
  volume_id          TEXT NOT NULL,
  account_id         TEXT NOT NULL REFERENCES accounts(account_id),
  state              TEXT NOT NULL CHECK (state IN ('pending', 'completed', 'error')),
  progress           TEXT NOT NULL,
  start_time_ms      INTEGER NOT NULL,
  completed_time_ms  INTEGER NOT NULL,
  volume_size_bytes  INTEGER NOT NULL CHECK (volume_size_bytes >= 0),
  block_size         INTEGER NOT NULL CHECK (block_size > 0),
  description        TEXT NOT NULL,
  state_message      TEXT NOT NULL,
  parent_snapshot_id TEXT NOT NULL,
  encrypted          INTEGER NOT NULL CHECK (encrypted IN (0, 1)),
  stored_bytes       INTEGER NOT NULL CHECK (stored_bytes >= 0),
  changed_blocks     INTEGER NOT NULL CHECK (changed_blocks >= 0),
  total_blocks       INTEGER NOT NULL CHECK (total_blocks >= 0),
  runner             TEXT NOT NULL
) STRICT;
CREATE INDEX snapshots_by_volume ON snapshots(volume_id, state, start_time_ms);
CREATE INDEX snapshots_by_account ON snapshots(account_id, start_time_ms);
CREATE INDEX snapshots_by_state ON snapshots(state);

-- Tags of volumes and snapshots; resource_id is a vol- or snap- id.
CREATE TABLE tags (
  resource_id TEXT NOT NULL,
  key         TEXT NOT NULL,
  value       TEXT NOT NULL,
  PRIMARY KEY (resource_id, key)
) STRICT, WITHOUT ROWID;
)sql"},
    {2, R"sql(
-- Administrators may do everything; members get the built-in member policy.
ALTER TABLE accounts ADD COLUMN is_admin INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1));

-- API access keys. The secret is sealed (encrypted) by the caller; the catalog never sees it
-- in clear.
CREATE TABLE access_keys (
  access_key_id TEXT NOT NULL PRIMARY KEY,
  account_id    TEXT NOT NULL REFERENCES accounts(account_id),
  user_name     TEXT NOT NULL,
  secret_sealed TEXT NOT NULL,
  created_ms    INTEGER NOT NULL
) STRICT;
CREATE INDEX access_keys_by_account ON access_keys(account_id);
)sql"},
    {3, R"sql(
-- Instances group an account's volumes; CreateSnapshots cuts all of them at one instant.
CREATE TABLE instances (
  instance_id TEXT NOT NULL PRIMARY KEY,
  account_id  TEXT NOT NULL REFERENCES accounts(account_id),
  name        TEXT NOT NULL,
  created_ms  INTEGER NOT NULL
) STRICT;
CREATE INDEX instances_by_account ON instances(account_id, created_ms);

-- A volume's attachment: empty instance_id when detached.
ALTER TABLE volumes ADD COLUMN instance_id TEXT NOT NULL DEFAULT '';
ALTER TABLE volumes ADD COLUMN device TEXT NOT NULL DEFAULT '';
ALTER TABLE volumes ADD COLUMN boot INTEGER NOT NULL DEFAULT 0 CHECK (boot IN (0, 1));
)sql"},
    {4, R"sql(
-- The snapshot a volume was restored from; empty for volumes registered by path.
ALTER TABLE volumes ADD COLUMN snapshot_id TEXT NOT NULL DEFAULT '';
)sql"},
    {5, R"sql(
-- Keyset paging of an account's snapshots in id order (DescribeSnapshots with MaxResults).
CREATE INDEX snapshots_by_account_and_id ON snapshots(account_id, snapshot_id);
)sql"},
    {6, R"sql(
-- EC2 volume states: a volume restored from a snapshot is 'creating' until its data is in.
ALTER TABLE volumes ADD COLUMN state TEXT NOT NULL DEFAULT 'available';
ALTER TABLE volumes ADD COLUMN state_message TEXT NOT NULL DEFAULT '';
)sql"},
    {7, R"sql(
-- Restores asked for by members and decided by administrators.
CREATE TABLE restore_requests (
  request_id      TEXT NOT NULL PRIMARY KEY,
  account_id      TEXT NOT NULL REFERENCES accounts(account_id),
  snapshot_id     TEXT NOT NULL,
  requested_by    TEXT NOT NULL,
  reason          TEXT NOT NULL,
  state           TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected')),
  decided_by      TEXT NOT NULL,
  decision_reason TEXT NOT NULL,
  volume_id       TEXT NOT NULL,
  created_ms      INTEGER NOT NULL,
  decided_ms      INTEGER NOT NULL
) STRICT;
CREATE INDEX restore_requests_by_account ON restore_requests(account_id, created_ms);
)sql"},
    {8, R"sql(
-- IAM: custom policy documents and which policies apply to which account. The built-ins
-- 'administrator' and 'member' are not stored; every existing account keeps what it had.
CREATE TABLE iam_policies (
  name       TEXT NOT NULL PRIMARY KEY,
  document   TEXT NOT NULL,
  created_ms INTEGER NOT NULL
) STRICT;
CREATE TABLE account_policies (
  account_id  TEXT NOT NULL REFERENCES accounts(account_id) ON DELETE CASCADE,
  policy_name TEXT NOT NULL,
  attached_ms INTEGER NOT NULL,
  PRIMARY KEY (account_id, policy_name)
) STRICT;
INSERT INTO account_policies (account_id, policy_name, attached_ms)
  SELECT account_id, CASE WHEN is_admin THEN 'administrator' ELSE 'member' END, created_ms
  FROM accounts;
-- Set once the account's default lifecycle policy was made (deleting it later is final).
ALTER TABLE accounts ADD COLUMN lifecycle_default_made INTEGER NOT NULL DEFAULT 0;
-- Lifecycle (DLM) policies: details is the policy's PolicyDetails JSON, kept as sent.
CREATE TABLE lifecycle_policies (
  policy_id   TEXT NOT NULL PRIMARY KEY,
  account_id  TEXT NOT NULL REFERENCES accounts(account_id) ON DELETE CASCADE,
  description TEXT NOT NULL,
  state       TEXT NOT NULL CHECK (state IN ('ENABLED', 'DISABLED')),
  role_arn    TEXT NOT NULL,
  details     TEXT NOT NULL,
  tags        TEXT NOT NULL,
  created_ms  INTEGER NOT NULL,
  modified_ms INTEGER NOT NULL
) STRICT;
-- One row per scheduled run of a policy schedule; the unique key makes a run happen once
-- even across restarts.
CREATE TABLE lifecycle_runs (
  policy_id     TEXT NOT NULL,
  schedule_name TEXT NOT NULL,
  scheduled_ms  INTEGER NOT NULL,
  started_ms    INTEGER NOT NULL,
  finished_ms   INTEGER NOT NULL,
  state         TEXT NOT NULL CHECK (state IN ('running', 'succeeded', 'partial', 'failed')),
  created       INTEGER NOT NULL,
  failed        INTEGER NOT NULL,
  deleted       INTEGER NOT NULL,
  missed        INTEGER NOT NULL,
  message       TEXT NOT NULL,
  PRIMARY KEY (policy_id, schedule_name, scheduled_ms)
) STRICT;
)sql"},
    {9, R"sql(
-- Managed volumes: snapvol owns the file (DIR/volumes/vol-….img) and serves it over NBD.
ALTER TABLE volumes ADD COLUMN managed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE volumes ADD COLUMN attach_ms INTEGER NOT NULL DEFAULT 0;
)sql"},
    {10, R"sql(
-- EC2 snapshot locks (LockSnapshot): a locked snapshot cannot be deleted until its lock ends.
CREATE TABLE snapshot_locks (
  snapshot_id         TEXT NOT NULL PRIMARY KEY,
  account_id          TEXT NOT NULL,
  mode                TEXT NOT NULL CHECK (mode IN ('governance', 'compliance')),
  created_ms          INTEGER NOT NULL,
  duration_start_ms   INTEGER NOT NULL,
  expires_ms          INTEGER NOT NULL,
  duration_days       INTEGER NOT NULL,
  cool_off_hours      INTEGER NOT NULL,
  cool_off_expires_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX snapshot_locks_by_account ON snapshot_locks(account_id, snapshot_id);
)sql"},
    {11, R"sql(
-- EC2 VolumeType of a volume. No CHECK: SQLite cannot change one later, and the types a
-- snapvol accepts are its code's to say (ValidateVolume), not the file's.
ALTER TABLE volumes ADD COLUMN volume_type TEXT NOT NULL DEFAULT 'gp2';

-- Snapshot sharing (createVolumePermission): grantee is a 12-digit account id or 'all'.
-- No foreign key: a rebuild deletes every snapshot and keeps their grants for the ones it
-- finds again; DeleteSnapshot and DeleteOrphanedGrantsAndLocks remove grants themselves.
-- (From this version on, the tags table also holds tags of instances: resource_id i-….)
CREATE TABLE snapshot_permissions (
  snapshot_id TEXT NOT NULL,
  grantee     TEXT NOT NULL
    CHECK (grantee = 'all' OR (length(grantee) = 12 AND grantee NOT GLOB '*[^0-9]*')),
  PRIMARY KEY (snapshot_id, grantee)
) STRICT, WITHOUT ROWID;
CREATE INDEX snapshot_permissions_by_grantee ON snapshot_permissions(grantee, snapshot_id);

-- An instance's or a volume's name is its Name tag from this version on. A volume's Name tag
-- already set wins (instances had no tags before); a name without a Name tag becomes one.
UPDATE volumes SET name = (SELECT value FROM tags WHERE resource_id = volume_id AND key = 'Name')
  WHERE EXISTS (SELECT 1 FROM tags WHERE resource_id = volume_id AND key = 'Name');
INSERT INTO tags (resource_id, key, value)
  SELECT volume_id, 'Name', name FROM volumes WHERE name <> '' ON CONFLICT DO NOTHING;
INSERT INTO tags (resource_id, key, value)
  SELECT instance_id, 'Name', name FROM instances WHERE name <> '' ON CONFLICT DO NOTHING;
)sql"},
    {12, R"sql(
-- Quotas per account: account_id '' holds the defaults. A row's max_value is the limit (0:
-- none allowed) or NULL (unlimited, overriding a default); an absent row inherits the default
-- (and an absent default is no limit). No foreign key: the defaults have no account.
CREATE TABLE quotas (
  account_id TEXT NOT NULL
    CHECK (account_id = '' OR (length(account_id) = 12 AND account_id NOT GLOB '*[^0-9]*')),
  kind       TEXT NOT NULL CHECK (kind IN ('volume-gib', 'volumes', 'snapshots')),
  max_value  INTEGER CHECK (max_value IS NULL OR max_value >= 0),
  PRIMARY KEY (account_id, kind)
) STRICT, WITHOUT ROWID;
)sql"},
    {13, R"sql(
-- An access key can be disabled (IAM's Inactive) and enabled again; a disabled key is
-- refused wherever a key is accepted. status_ms: when it last changed (0: never).
ALTER TABLE access_keys ADD COLUMN active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1));
ALTER TABLE access_keys ADD COLUMN status_ms INTEGER NOT NULL DEFAULT 0;
)sql"},
    {14, R"sql(
-- Usage accounting: which stored chunks and index pages the completed snapshots reference,
-- counted per account, so a snapshot's unique bytes and an account's exclusive and shared
-- bytes follow from what changed, not from a walk of the whole store (engine/usage_accounting.h).
CREATE TABLE usage_journal (
  seq         INTEGER PRIMARY KEY AUTOINCREMENT,
  op          INTEGER NOT NULL CHECK (op IN (1, -1)),
  snapshot_id TEXT NOT NULL,
  account_id  TEXT NOT NULL
) STRICT;
CREATE TABLE usage_objects (
  object_id    BLOB NOT NULL PRIMARY KEY CHECK (length(object_id) = 32),
  kind         INTEGER NOT NULL CHECK (kind IN (1, 2)),
  stored_bytes INTEGER NOT NULL CHECK (stored_bytes >= 0),
  refs         INTEGER NOT NULL CHECK (refs > 0),
  holders      INTEGER NOT NULL CHECK (holders >= 0),
  data_blocks  INTEGER NOT NULL CHECK (data_blocks >= 0)
) STRICT, WITHOUT ROWID;
CREATE TABLE usage_account_refs (
  object_id  BLOB NOT NULL,
  account_id TEXT NOT NULL,
  refs       INTEGER NOT NULL CHECK (refs > 0),
  PRIMARY KEY (object_id, account_id)
) STRICT, WITHOUT ROWID;
CREATE TABLE usage_snapshots (
  snapshot_id       TEXT NOT NULL PRIMARY KEY,
  account_id        TEXT NOT NULL,
  root              BLOB NOT NULL CHECK (length(root) = 32),
  depth             INTEGER NOT NULL CHECK (depth >= 0),
  full_bytes        INTEGER NOT NULL CHECK (full_bytes >= 0),
  unique_bytes      INTEGER,
  unique_generation INTEGER NOT NULL DEFAULT -1
) STRICT;
CREATE TABLE usage_accounts (
  account_id      TEXT NOT NULL PRIMARY KEY,
  exclusive_bytes INTEGER NOT NULL CHECK (exclusive_bytes >= 0),
  shared_bytes    INTEGER NOT NULL CHECK (shared_bytes >= 0)
) STRICT;
CREATE TABLE usage_state (
  one        INTEGER NOT NULL PRIMARY KEY CHECK (one = 1),
  generation INTEGER NOT NULL
) STRICT;
INSERT INTO usage_state (one, generation) VALUES (1, 0);
-- The snapshots completed before this version are accounted by working the journal.
INSERT INTO usage_journal (op, snapshot_id, account_id)
  SELECT 1, snapshot_id, account_id FROM snapshots WHERE state = 'completed'
  ORDER BY start_time_ms, snapshot_id;
)sql"},
    {15, R"sql(
-- Maintenance jobs (GC, verification): one row per run. A scheduled run is unique per job and
-- scheduled time, so it happens once even across restarts; manual runs are keyed by the time
-- they were asked for.
CREATE TABLE maintenance_runs (
  run_id            INTEGER PRIMARY KEY AUTOINCREMENT,
  job               TEXT NOT NULL CHECK (job IN ('gc', 'verify')),
  trigger_kind      TEXT NOT NULL CHECK (trigger_kind IN ('scheduled', 'manual')),
  mode              TEXT NOT NULL,
  scheduled_ms      INTEGER NOT NULL,
  started_ms        INTEGER NOT NULL,
  finished_ms       INTEGER NOT NULL,
  state             TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
  missed            INTEGER NOT NULL,
  bytes_freed       INTEGER NOT NULL,
  objects_deleted   INTEGER NOT NULL,
  snapshots_checked INTEGER NOT NULL,
  objects_checked   INTEGER NOT NULL,
  damaged           TEXT NOT NULL,
  message           TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX maintenance_runs_once ON maintenance_runs(job, trigger_kind, scheduled_ms);
CREATE INDEX maintenance_runs_by_state ON maintenance_runs(state, run_id);
-- What verification knows of each snapshot. No foreign key: rows of deleted snapshots are
-- removed by the verification job (ListSnapshotVerifications).
CREATE TABLE snapshot_verifications (
  snapshot_id TEXT NOT NULL PRIMARY KEY,
  checked_ms  INTEGER NOT NULL,
  full_ms     INTEGER NOT NULL,
  damaged_ms  INTEGER NOT NULL,
  problem     TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX snapshot_verifications_damaged ON snapshot_verifications(damaged_ms);
)sql"},
    {16, R"sql(
-- Restore drills join GC and verification as a maintenance job: the runs table is rebuilt
-- with 'drill' allowed (SQLite cannot change a CHECK in place), ids and rows as they were.
CREATE TABLE maintenance_runs_16 (
  run_id            INTEGER PRIMARY KEY AUTOINCREMENT,
  job               TEXT NOT NULL CHECK (job IN ('gc', 'verify', 'drill')),
  trigger_kind      TEXT NOT NULL CHECK (trigger_kind IN ('scheduled', 'manual')),
  mode              TEXT NOT NULL,
  scheduled_ms      INTEGER NOT NULL,
  started_ms        INTEGER NOT NULL,
  finished_ms       INTEGER NOT NULL,
  state             TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
  missed            INTEGER NOT NULL,
  bytes_freed       INTEGER NOT NULL,
  objects_deleted   INTEGER NOT NULL,
  snapshots_checked INTEGER NOT NULL,
  objects_checked   INTEGER NOT NULL,
  damaged           TEXT NOT NULL,
  message           TEXT NOT NULL
) STRICT;
INSERT INTO maintenance_runs_16 SELECT * FROM maintenance_runs;
DROP TABLE maintenance_runs;
ALTER TABLE maintenance_runs_16 RENAME TO maintenance_runs;
CREATE UNIQUE INDEX maintenance_runs_once ON maintenance_runs(job, trigger_kind, scheduled_ms);
CREATE INDEX maintenance_runs_by_state ON maintenance_runs(state, run_id);
-- The latest restore drill of each snapshot: when, how long the full restore took, and how it
-- ended. No foreign key: rows of deleted snapshots are removed by ListRestoreDrills.
CREATE TABLE restore_drills (
  snapshot_id  TEXT NOT NULL PRIMARY KEY,
  run_id       INTEGER NOT NULL,
  drilled_ms   INTEGER NOT NULL,
  restore_ms   INTEGER NOT NULL,
  volume_bytes INTEGER NOT NULL,
  ok           INTEGER NOT NULL CHECK (ok IN (0, 1)),
  problem      TEXT NOT NULL
) STRICT, WITHOUT ROWID;
)sql"},
    {17, R"sql(
-- Recycle Bin (rbin API): retention rules, and the deleted snapshots they keep. A binned
-- snapshot's row leaves snapshots (so nothing that lists snapshots sees it) and is kept here
-- with its tags until it is restored or its retention ends.
CREATE TABLE rbin_rules (
  rule_id           TEXT NOT NULL PRIMARY KEY,
  account_id        TEXT NOT NULL REFERENCES accounts(account_id) ON DELETE CASCADE,
  resource_type     TEXT NOT NULL,
  description       TEXT NOT NULL,
  retention_days    INTEGER NOT NULL CHECK (retention_days BETWEEN 1 AND 3650),
  resource_tags     TEXT NOT NULL,
  exclude_tags      TEXT NOT NULL,
  tags              TEXT NOT NULL,
  lock_state        TEXT NOT NULL CHECK (lock_state IN ('', 'locked', 'pending_unlock', 'unlocked')),
  unlock_delay_days INTEGER NOT NULL,
  lock_end_ms       INTEGER NOT NULL,
  created_ms        INTEGER NOT NULL
) STRICT;
CREATE INDEX rbin_rules_by_account ON rbin_rules(account_id, created_ms);
CREATE TABLE recycle_bin (
  snapshot_id        TEXT NOT NULL PRIMARY KEY,
  volume_id          TEXT NOT NULL,
  account_id         TEXT NOT NULL,
  state              TEXT NOT NULL,
  progress           TEXT NOT NULL,
  start_time_ms      INTEGER NOT NULL,
  completed_time_ms  INTEGER NOT NULL,
  volume_size_bytes  INTEGER NOT NULL,
  block_size         INTEGER NOT NULL,
  description        TEXT NOT NULL,
  state_message      TEXT NOT NULL,
  parent_snapshot_id TEXT NOT NULL,
  encrypted          INTEGER NOT NULL,
  stored_bytes       INTEGER NOT NULL,
  changed_blocks     INTEGER NOT NULL,
  total_blocks       INTEGER NOT NULL,
  runner             TEXT NOT NULL,
  rule_id            TEXT NOT NULL,
  entered_ms         INTEGER NOT NULL,
  exit_ms            INTEGER NOT NULL
) STRICT;
CREATE INDEX recycle_bin_by_account ON recycle_bin(account_id, entered_ms);
CREATE INDEX recycle_bin_by_exit ON recycle_bin(exit_ms);
CREATE TABLE recycle_bin_tags (
  snapshot_id TEXT NOT NULL REFERENCES recycle_bin(snapshot_id) ON DELETE CASCADE,
  key         TEXT NOT NULL,
  value       TEXT NOT NULL,
  PRIMARY KEY (snapshot_id, key)
) STRICT, WITHOUT ROWID;
)sql"},
    {18, R"sql(
-- In-place rollbacks of volumes (ReplaceRootVolumeTask). Tags live in the tags table
-- (resource_id replacevol-…). A ClientToken is unique per account.
CREATE TABLE replace_root_volume_tasks (
  task_id            TEXT NOT NULL PRIMARY KEY,
  account_id         TEXT NOT NULL REFERENCES accounts(account_id),
  instance_id        TEXT NOT NULL,
  volume_id          TEXT NOT NULL,
  snapshot_id        TEXT NOT NULL,
  state              TEXT NOT NULL
    CHECK (state IN ('pending', 'in-progress', 'succeeded', 'failed', 'failed-detached')),
  progress           INTEGER NOT NULL CHECK (progress BETWEEN 0 AND 100),
  blocks_compared    INTEGER NOT NULL,
  bytes_read         INTEGER NOT NULL,
  bytes_written      INTEGER NOT NULL,
  safety_snapshot_id TEXT NOT NULL,
  reason             TEXT NOT NULL,
  client_token       TEXT NOT NULL,
  delete_replaced    INTEGER NOT NULL CHECK (delete_replaced IN (0, 1)),
  force              INTEGER NOT NULL CHECK (force IN (0, 1)),
  requested_by       TEXT NOT NULL,
  runner             TEXT NOT NULL,
  start_ms           INTEGER NOT NULL,
  complete_ms        INTEGER NOT NULL
) STRICT;
CREATE INDEX replace_root_volume_tasks_by_account ON replace_root_volume_tasks(account_id, task_id);
CREATE INDEX replace_root_volume_tasks_by_state ON replace_root_volume_tasks(state);
CREATE UNIQUE INDEX replace_root_volume_tasks_token
  ON replace_root_volume_tasks(account_id, client_token) WHERE client_token <> '';
-- An instance's state as an operator marks it (snapvol does not run instances).
ALTER TABLE instances ADD COLUMN state TEXT NOT NULL DEFAULT 'running'
  CHECK (state IN ('running', 'stopped'));
)sql"},
    {19, R"sql(
-- A restore request asks for a new volume (as before) or an in-place rollback of one of the
-- team's volumes (volume_id, named when filed), which approval runs as a rollback task.
ALTER TABLE restore_requests ADD COLUMN restore_type TEXT NOT NULL DEFAULT 'new-volume'
  CHECK (restore_type IN ('new-volume', 'in-place'));
ALTER TABLE restore_requests ADD COLUMN task_id TEXT NOT NULL DEFAULT '';
)sql"},
    {20, R"sql(
-- The daemon's account-wide default Recycle Bin rule (snapvold
-- --recycle-bin-default-retention-days), recorded by snapvold when it starts so that the
-- offline CLI's deletions apply the same rule. One row; 0: no default rule.
CREATE TABLE recycle_bin_settings (
  one                    INTEGER NOT NULL PRIMARY KEY CHECK (one = 1),
  default_retention_days INTEGER NOT NULL CHECK (default_retention_days BETWEEN 0 AND 3650)
) STRICT;
INSERT INTO recycle_bin_settings (one, default_retention_days) VALUES (1, 0);
-- A binned snapshot's createVolumePermission grants: of no use while it is in the bin (nobody
-- can use a binned snapshot), given back when it is restored, gone when its retention ends.
CREATE TABLE recycle_bin_permissions (
  snapshot_id TEXT NOT NULL REFERENCES recycle_bin(snapshot_id) ON DELETE CASCADE,
  grantee     TEXT NOT NULL,
  PRIMARY KEY (snapshot_id, grantee)
) STRICT, WITHOUT ROWID;
)sql"},
    {21, R"sql(
-- An instance's root device name (EC2's rootDeviceName): the volume attached there is its root
-- (boot) volume. Taken from an existing boot volume's device, /dev/xvda otherwise; a volume
-- already at that device becomes the root, and no volume elsewhere stays one.
ALTER TABLE instances ADD COLUMN root_device TEXT NOT NULL DEFAULT '/dev/xvda';
UPDATE instances SET root_device = (SELECT v.device FROM volumes v
    WHERE v.instance_id = instances.instance_id AND v.boot = 1 ORDER BY v.volume_id LIMIT 1)
  WHERE EXISTS (SELECT 1 FROM volumes v WHERE v.instance_id = instances.instance_id AND v.boot = 1
                AND v.device <> '');
UPDATE volumes SET boot = CASE WHEN instance_id <> '' AND device =
    (SELECT i.root_device FROM instances i WHERE i.instance_id = volumes.instance_id) THEN 1 ELSE 0 END;
-- A managed root volume is replaced by a new volume restored from the snapshot: which one.
ALTER TABLE replace_root_volume_tasks ADD COLUMN replacement_volume_id TEXT NOT NULL DEFAULT '';
)sql"},
    {22, R"sql(
-- Freeze hooks of instances: pre and post commands run around the cut of all of an
-- instance's volumes (set by an administrator on the host only).
CREATE TABLE instance_hooks (
  instance_id    TEXT NOT NULL PRIMARY KEY REFERENCES instances(instance_id) ON DELETE CASCADE,
  pre_command    TEXT NOT NULL,
  post_command   TEXT NOT NULL,
  timeout_s      INTEGER NOT NULL CHECK (timeout_s BETWEEN 1 AND 3600),
  on_pre_failure TEXT NOT NULL CHECK (on_pre_failure IN ('fail', 'crash-consistent')),
  updated_ms     INTEGER NOT NULL,
  CHECK (pre_command <> '' OR post_command <> '')
) STRICT, WITHOUT ROWID;
)sql"},
    {23, R"sql(
-- The journal of snapshots written through the EBS direct APIs (engine/direct_snapshots.h):
-- what a restarted snapvold needs to resume a pending one. Its deadline (StartSnapshot's
-- Timeout) per snapshot; per acknowledged block its chunk id (32 zero bytes: a hole), the
-- client's SHA-256 and the bytes its chunk added to the store (0: it was there already).
-- Rows live while the snapshot is pending: completing or failing it deletes them.
CREATE TABLE direct_snapshots (
  snapshot_id TEXT NOT NULL PRIMARY KEY REFERENCES snapshots(snapshot_id) ON DELETE CASCADE,
  deadline_ms INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE TABLE direct_blocks (
  snapshot_id  TEXT NOT NULL REFERENCES direct_snapshots(snapshot_id) ON DELETE CASCADE,
  block_index  INTEGER NOT NULL CHECK (block_index >= 0),
  chunk_id     BLOB NOT NULL CHECK (length(chunk_id) = 32),
  sha256       BLOB NOT NULL CHECK (length(sha256) = 32),
  stored_bytes INTEGER NOT NULL CHECK (stored_bytes >= 0),
  PRIMARY KEY (snapshot_id, block_index)
) STRICT, WITHOUT ROWID;
)sql"},
    {24, R"sql(
-- The hosts of the service (docs/multi-host.md part 2): each snapvold upserts its row at start
-- and refreshes heartbeat_ms every few seconds; 0 there means it stopped cleanly. A runner
-- naming another host (cli/runners.h) is alive while that host's heartbeat is fresh.
CREATE TABLE hosts (
  host_id      TEXT NOT NULL PRIMARY KEY,
  name         TEXT NOT NULL,
  api_url      TEXT NOT NULL,
  nbd_endpoint TEXT NOT NULL,
  version      TEXT NOT NULL,
  started_ms   INTEGER NOT NULL,
  heartbeat_ms INTEGER NOT NULL CHECK (heartbeat_ms >= 0)
) STRICT, WITHOUT ROWID;
)sql"},
    {25, R"sql(
-- The host holding a volume's or an instance's data (docs/multi-host.md part 3). NULL for rows
-- made before: the first data dir that opens the catalog claims them (Catalog::ClaimOwnerless).
ALTER TABLE volumes ADD COLUMN host_id TEXT;
ALTER TABLE instances ADD COLUMN host_id TEXT;
CREATE INDEX volumes_by_host ON volumes(host_id);
)sql"},
    {26, R"sql(
-- Cluster leases (docs/multi-host.md part 4): who runs each once-per-cluster duty, until when,
-- and the generation, bumped when a different holder takes the lease (Catalog::
-- AcquireClusterLease). expires_ms 0: released.
CREATE TABLE cluster_leases (
  name       TEXT NOT NULL PRIMARY KEY,
  holder     TEXT NOT NULL,
  expires_ms INTEGER NOT NULL CHECK (expires_ms >= 0),
  generation INTEGER NOT NULL CHECK (generation >= 1)
) STRICT, WITHOUT ROWID;
)sql"},
    {27, kMoveSystemTagsUnderAwsSql},
    {28, R"sql(
-- Which host ran a maintenance run, and under which generation of the cluster lease
-- `maintenance` (docs/multi-host.md part 4). A run's record is written only by a holder whose
-- generation is at least the one recorded (Catalog::UpdateMaintenanceRun): a host that lost
-- the lease cannot overwrite what the new holder wrote. '' and 0: before leases, or no lease.
ALTER TABLE maintenance_runs ADD COLUMN host_id TEXT NOT NULL DEFAULT '';
ALTER TABLE maintenance_runs ADD COLUMN lease_generation INTEGER NOT NULL DEFAULT 0;
)sql"},
    {29, R"sql(
-- Routed snapshot jobs (docs/multi-host.md part 3): snapshots accepted by one host for volumes
-- another host holds. Their pending rows are written at once; this row asks host_id to cut and
-- run them (Catalog::ClaimSnapshotJob), and goes once they run. snapshot_ids: space-separated,
-- in the order they are cut together. claimed_by '': queued.
CREATE TABLE snapshot_queue (
  job_id       TEXT NOT NULL PRIMARY KEY,
  host_id      TEXT NOT NULL,
  instance_id  TEXT NOT NULL,
  snapshot_ids TEXT NOT NULL CHECK (snapshot_ids <> ''),
  full_copy    INTEGER NOT NULL CHECK (full_copy IN (0, 1)),
  created_ms   INTEGER NOT NULL,
  claimed_by   TEXT NOT NULL,
  claimed_ms   INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX snapshot_queue_by_host ON snapshot_queue(host_id, claimed_by, created_ms);
)sql"},
    {30, R"sql(
-- Which host advanced a lifecycle run last, and under which generation of the cluster lease
-- `lifecycle` (docs/multi-host.md part 4). A run's record is written only by a holder whose
-- generation is at least the one recorded (Catalog::UpdateLifecycleRun): a host that lost the
-- lease cannot overwrite what the new holder wrote. '' and 0: before leases, or no lease.
ALTER TABLE lifecycle_runs ADD COLUMN host_id TEXT NOT NULL DEFAULT '';
ALTER TABLE lifecycle_runs ADD COLUMN lease_generation INTEGER NOT NULL DEFAULT 0;
)sql"},
    {31, R"sql(
-- Routed volume creations (docs/multi-host.md part 3): a CreateVolume (or an approved restore
-- into a new volume) placed on another host than the one asked. The volume's row is written at
-- once, `creating`, with that host's host_id; this row asks the host to make its data
-- (Catalog::ClaimVolumeCreation) and goes when it has. claimed_by '': queued.
CREATE TABLE volume_queue (
  volume_id  TEXT NOT NULL PRIMARY KEY,
  host_id    TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  claimed_by TEXT NOT NULL,
  claimed_ms INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX volume_queue_by_host ON volume_queue(host_id, claimed_by, created_ms);
)sql"},
};
  return kMigrations;
}

}  // namespace snapvol::catalog_internal
