// The catalog's record types (accounts, keys, volumes, instances, snapshots, locks, policies,
// runs, restore requests, tags) and the checks on them that need no database.
//
// Thread-safety: plain value types; safe to copy between threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/system_tags.h"

namespace snapvol {

// The offline account every catalog has: `snapvol` run directly on a data dir acts as it.
inline constexpr char kDefaultAccountId[] = "100000000001";
inline constexpr char kDefaultAccountAlias[] = "default";

// Limits on tags, as EC2 enforces them. Lengths count Unicode code points (UTF-8 input).
inline constexpr size_t kMaxTagKeyChars = 128;
inline constexpr size_t kMaxTagValueChars = 256;
inline constexpr size_t kMaxTagsPerResource = 50;
// snapvol's system tags (kConsistencyTag, kHostTag, …) and the reserved prefix "aws:" are
// named in core/system_tags.h. The catalog writes them; RemoveAllTags keeps every "aws:" tag.
// Tags that do not count toward the kMaxTagsPerResource a user may set: the system's (as EC2
// does not count aws: tags).
bool IsUncountedTag(std::string_view key);
// v cut to at most kMaxTagValueChars code points, never inside a UTF-8 sequence, with "..."
// marking a cut: for tag values snapvol writes itself (labels that quote an error or a path).
inline std::string ClipTagValue(std::string v) {
  auto lead = [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; };
  size_t chars = 0;
  for (char c : v) chars += lead(c) ? 1 : 0;
  if (chars <= kMaxTagValueChars) return v;
  size_t keep = kMaxTagValueChars - 3, i = 0;
  for (size_t seen = 0; i < v.size(); ++i)
    if (lead(v[i]) && seen++ == keep) break;
  v.resize(i);
  return v + "...";
}
// Too many tags on one resource is kInvalidArgument (status.h has no code for exhausted
// quotas) with a message that starts with this, so that the API can answer EC2's
// TagLimitExceeded instead of InvalidParameterValue. Test with IsTagLimitExceeded, never by
// searching the message: other errors quote tag keys, which may hold this text.
inline constexpr char kTagLimitExceeded[] = "TagLimitExceeded:";
// True if e is the catalog's tag limit error, also after Error::WithContext added context to
// it; false for every other error, whatever tag keys or values its message quotes.
bool IsTagLimitExceeded(const Error& e);

struct Tag {
  std::string key;
  std::string value;
  bool operator==(const Tag&) const = default;
};

struct AccountRecord {
  std::string account_id;  // 12 digits
  std::string alias;       // unique, 1..63 of [A-Za-z0-9._-]
  int64_t created_ms = 0;
  bool is_admin = false;   // administrators may restore; members may not
  bool operator==(const AccountRecord&) const = default;
};

// An API access key. secret_sealed is the secret encrypted by the caller (the catalog never
// holds it in clear).
struct AccessKeyRecord {
  std::string access_key_id;
  std::string account_id;
  std::string user_name;
  std::string secret_sealed;
  int64_t created_ms = 0;
  // A disabled key (IAM's "Inactive") is kept but refused wherever a key is accepted.
  bool active = true;
  int64_t status_ms = 0;  // when active last changed; 0 if never
  bool operator==(const AccessKeyRecord&) const = default;
};

struct VolumeRecord {
  std::string volume_id;   // "vol-" + 17 hex
  std::string account_id;  // must exist in the catalog
  std::string name;        // its Name tag, kept equal as InstanceRecord::name is
  std::string path;  // file or block device holding the data
  uint64_t size_bytes = 0;
  uint32_t block_size = 0;
  int64_t created_ms = 0;
  std::vector<Tag> tags;  // returned sorted by key
  std::string instance_id;  // the instance it is attached to; empty when detached
  std::string device;       // e.g. "/dev/xvda"
  bool boot = false;        // the instance's boot (root) volume
  std::string snapshot_id;  // the snapshot it was restored from, if any
  std::string state = "available";  // EC2 names: creating, available, in-use (attached), error
  std::string state_message;        // why it is in error
  bool managed = false;  // snapvol owns the file (CreateVolume) and serves it over NBD
  int64_t attach_ms = 0;  // when it was attached (0: unknown or detached)
  std::string volume_type = "gp2";  // EC2 VolumeType: "gp2" or "standard"
  // The host holding its data (docs/multi-host.md part 3); '' for a row made before hosts
  // owned volumes, until a data dir opening the catalog claims it (Catalog::ClaimOwnerless).
  // InsertVolume: '' means the catalog's local host (Catalog::SetLocalHost).
  std::string host_id;
  bool operator==(const VolumeRecord&) const = default;
};

// --- quotas per account ---
// What an account may hold: the total size (GiB) and number of the volumes whose data snapvol
// keeps (QuotaCountsVolume), and the number of its snapshots (every state, and those in the
// Recycle Bin). Each limit is set as a default for every account and may be overridden per
// account.
enum class QuotaKind { kVolumeGib, kVolumes, kSnapshots };
inline constexpr QuotaKind kQuotaKinds[] = {QuotaKind::kVolumeGib, QuotaKind::kVolumes, QuotaKind::kSnapshots};
// "volume-gib", "volumes", "snapshots" (the CLI's option names without "--").
const char* QuotaKindName(QuotaKind kind);
// The account id under which the defaults are kept (no account has it).
inline constexpr char kQuotaDefaults[] = "";
// The largest limit that can be set: volume GiB whose bytes still fit in an int64.
inline constexpr uint64_t kMaxQuotaLimit = (uint64_t{1} << 33) - 1;

// One limit as set. For an account: kInherit takes the default; for the defaults, kInherit
// and kUnlimited both mean no limit.
struct QuotaSetting {
  enum class Mode { kInherit, kUnlimited, kLimit };
  Mode mode = Mode::kInherit;
  uint64_t limit = 0;  // with kLimit: at most this many (0: none at all)
  bool operator==(const QuotaSetting&) const = default;
};
struct QuotaSettings {  // as stored for one account, or the defaults
  QuotaSetting volume_gib, volumes, snapshots;
  const QuotaSetting& Get(QuotaKind kind) const;
  QuotaSetting& Get(QuotaKind kind);
  bool operator==(const QuotaSettings&) const = default;
};
// The limits that hold for one account (its own, else the default); nullopt: unlimited.
struct QuotaLimits {
  std::optional<uint64_t> volume_gib, volumes, snapshots;
  std::optional<uint64_t> Get(QuotaKind kind) const;
};
struct QuotaUsage {
  uint64_t volume_bytes = 0, volumes = 0;
  uint64_t snapshots = 0;  // every state, and those in the Recycle Bin
};
// Whether a volume counts towards its account's volume quotas: a managed volume or one
// restored from a snapshot (snapvol keeps their data), unless it was recorded in state error
// (a failed restore, which holds none) — that one is inserted without a quota check but
// still counts until it is deleted. Volumes registered by path are the operator's files.
bool QuotaCountsVolume(const VolumeRecord& v);

// An EC2 snapshot lock (LockSnapshot): while in force the snapshot cannot be deleted, by
// DeleteSnapshot, a lifecycle policy's retention or `snapvol snapshot delete`.
struct SnapshotLockRecord {
  std::string snapshot_id;
  std::string account_id;
  std::string mode;                // "governance" or "compliance"
  int64_t created_ms = 0;          // when the snapshot was first locked
  int64_t duration_start_ms = 0;   // when the current lock settings were set
  int64_t expires_ms = 0;          // the lock ends here
  int64_t duration_days = 0;       // LockDuration, or 0 when set by ExpirationDate
  int64_t cool_off_hours = 0;      // compliance only; 0: none
  int64_t cool_off_expires_ms = 0; // compliance only; 0: none
  bool operator==(const SnapshotLockRecord&) const = default;
};
// EC2's LockState at now_ms: "expired", "compliance-cooloff", "compliance" or "governance".
std::string LockStateAt(const SnapshotLockRecord& lock, int64_t now_ms);

// A volume restored lazily keeps PATH.load beside its file until every block is in.
inline std::string LoadMapPath(const std::string& volume_path) { return volume_path + ".load"; }
// True while v still reads from the snapshot it was restored from (its restore runs, or it is
// loading lazily): that snapshot must not be deleted.
bool ReadsFromItsSnapshot(const VolumeRecord& v);

// A custom IAM policy document (the built-ins 'administrator' and 'member' are not stored).
struct IamPolicyRecord {
  std::string name;
  std::string document;  // IAM JSON, validated by the caller
  int64_t created_ms = 0;
  bool operator==(const IamPolicyRecord&) const = default;
};

// A policy (built-in or custom, by name) that applies to an account.
struct PolicyAttachment {
  std::string account_id, policy_name;
  int64_t attached_ms = 0;
  bool operator==(const PolicyAttachment&) const = default;
};

// A lifecycle (DLM) policy. details and tags are JSON text (PolicyDetails and the TagMap),
// validated by the lifecycle layer.
struct LifecyclePolicyRecord {
  std::string policy_id;  // "policy-" + 17 hex
  std::string account_id;
  std::string description;
  std::string state = "ENABLED";  // ENABLED | DISABLED
  std::string role_arn;
  std::string details;
  std::string tags = "{}";
  int64_t created_ms = 0, modified_ms = 0;
  bool operator==(const LifecyclePolicyRecord&) const = default;
};

// A Recycle Bin retention rule (rbin API). resource_tags, exclude_tags and tags are JSON text
// (arrays of {ResourceTagKey, ResourceTagValue} and of {Key, Value}), validated by the api
// layer. A rule with resource tags is tag-level; without, it is account-level (AWS says
// "Region-level": one region here). Lock: lock_state "" (never locked), "locked",
// "pending_unlock" (until lock_end_ms, then it reads as unlocked) or "unlocked".
struct RbinRuleRecord {
  std::string rule_id;  // 11 of [0-9a-zA-Z]
  std::string account_id;
  std::string resource_type = "EBS_SNAPSHOT";
  std::string description;
  int64_t retention_days = 0;
  std::string resource_tags = "[]", exclude_tags = "[]", tags = "[]";
  std::string lock_state;
  int64_t unlock_delay_days = 0;  // set while locked or pending_unlock
  int64_t lock_end_ms = 0;        // pending_unlock: when the unlock delay ends
  int64_t created_ms = 0;
  bool operator==(const RbinRuleRecord&) const = default;
};

// One scheduled run of a lifecycle policy's schedule (unique per policy, schedule and time).
struct LifecycleRunRecord {
  std::string policy_id, schedule_name;
  int64_t scheduled_ms = 0;  // the schedule's time this run is for
  int64_t started_ms = 0, finished_ms = 0;
  std::string state = "running";  // running | succeeded | partial | failed
  int64_t created = 0, failed = 0, deleted = 0;
  int64_t missed = 0;   // earlier scheduled times skipped (the service was down)
  std::string message;  // what happened, in words
  // The host that started or last advanced the run, and the generation of the cluster lease
  // `lifecycle` it held then ('' and 0 without a lease). UpdateLifecycleRun refuses a write
  // under a lower generation than the one recorded.
  std::string host_id;
  int64_t lease_generation = 0;
  bool operator==(const LifecycleRunRecord&) const = default;
};

// One run of a maintenance job (GC or verification), scheduled or asked for by an operator.
// A scheduled run is unique per job and scheduled time, so it happens once, across restarts too.
struct MaintenanceRunRecord {
  int64_t run_id = 0;                 // assigned by InsertMaintenanceRun, increasing
  std::string job;                    // "gc" | "verify" | "drill"
  std::string trigger = "scheduled";  // scheduled | manual
  std::string mode;                   // verify: "full" | "quick"; gc: ""
  int64_t scheduled_ms = 0;           // the schedule's time (manual: when asked)
  int64_t started_ms = 0, finished_ms = 0;  // 0 until it starts / ends
  std::string state = "queued";       // queued | running | succeeded | failed
  int64_t missed = 0;                 // earlier scheduled times skipped (the service was down)
  int64_t bytes_freed = 0, objects_deleted = 0;        // gc
  int64_t snapshots_checked = 0, objects_checked = 0;  // verify; drill: snapshots restored, blocks checked
  std::string damaged;  // verify: ids of the snapshots found damaged; drill: whose drill failed; space-separated
  std::string message;  // what happened, in words
  // The host that queued or last ran it, and the generation of the cluster lease
  // `maintenance` it did so under (docs/multi-host.md part 4); "" and 0 without a lease.
  std::string host_id;
  int64_t lease_generation = 0;
  bool operator==(const MaintenanceRunRecord&) const = default;
};

// The latest restore drill of one snapshot (absent: never drilled).
struct RestoreDrillRecord {
  std::string snapshot_id;
  int64_t run_id = 0;        // the maintenance run that drilled it
  int64_t drilled_ms = 0;    // when the drill ended
  int64_t restore_ms = 0;    // how long the full restore took (0 when it did not finish)
  uint64_t volume_bytes = 0;
  bool ok = false;
  std::string problem;  // why it failed (empty when ok)
  bool operator==(const RestoreDrillRecord&) const = default;
};

// What verification knows of one snapshot (absent: never checked).
struct SnapshotVerificationRecord {
  std::string snapshot_id;
  int64_t checked_ms = 0;  // last check of any kind
  int64_t full_ms = 0;     // last full decode
  int64_t damaged_ms = 0;  // when damage was found (0: none); damage stays recorded
  std::string problem;     // the first problem found
  bool operator==(const SnapshotVerificationRecord&) const = default;
};

// A member's request for a restore, decided by an administrator.
struct RestoreRequestRecord {
  std::string request_id;  // "rr-" + 17 hex
  std::string account_id, snapshot_id, requested_by, reason;
  std::string state = "pending";  // pending | approved | rejected
  std::string decided_by, decision_reason;
  std::string volume_id;  // new-volume: the restored volume, once approved; in-place: the volume rolled back
  int64_t created_ms = 0, decided_ms = 0;
  std::string restore_type = "new-volume";  // new-volume | in-place
  std::string task_id;  // in-place: the rollback task (replacevol-…), once approved
  bool operator==(const RestoreRequestRecord&) const = default;
};

// An instance's root device name unless `snapvol instance create --root-device` says otherwise.
inline constexpr std::string_view kDefaultRootDevice = "/dev/xvda";

struct InstanceRecord {
  std::string instance_id;  // "i-" + 17 hex
  std::string account_id;
  // The value of its Name tag ('' without one), which the catalog keeps equal to it: SetTags,
  // RemoveTags and RemoveAllTags update it, and InsertInstance makes a name given without a
  // Name tag into one (a Name tag given wins over name).
  std::string name;
  int64_t created_ms = 0;
  std::vector<Tag> tags;  // returned sorted by key (resource_id = instance_id)
  // "running" or "stopped", as an operator marks it (`snapvol instance stop|start`): snapvol
  // does not run instances; the mark tells an in-place rollback that the disk is idle.
  std::string state = "running";
  // Its root device name (EC2's rootDeviceName): the volume attached there is its root (boot)
  // volume, and only that one.
  std::string root_device = std::string(kDefaultRootDevice);
  // The host holding its volumes' data, as VolumeRecord::host_id (same rules).
  std::string host_id;
  bool operator==(const InstanceRecord&) const = default;
};

// An instance's freeze hooks (snapvol's take on DLM's pre and post scripts): commands run on
// the host, as the daemon's user, around the cut of all the instance's volumes when they are
// snapshotted together (CreateSnapshots, lifecycle policies targeting instances). Set only by
// an administrator on the host (`snapvol instance set-hooks`), never through the API.
struct InstanceHooksRecord {
  std::string instance_id;
  // Command lines, split into argv by SplitCommandLine (core/subprocess.h); '' = none. At
  // least one of the two is set.
  std::string pre_command, post_command;
  int64_t timeout_s = 10;  // each command's deadline (DLM's ExecutionTimeout), 1..3600
  // What a failed or timed-out pre-command does: "crash-consistent" (the snapshots are taken
  // anyway and say so; DLM's ExecuteOperationOnScriptFailure=true, its default) or "fail"
  // (they end `error`, no data taken).
  std::string on_pre_failure = "crash-consistent";
  int64_t updated_ms = 0;
  bool operator==(const InstanceHooksRecord&) const = default;
};

// A pending snapshot written through the EBS direct APIs, as its journal holds it
// (engine/direct_snapshots.h): enough to resume it after a restart.
struct DirectJournalRecord {
  std::string snapshot_id;
  std::string runner;     // the snapshot row's runner ('' once handed over for adoption)
  int64_t deadline_ms = 0;  // StartSnapshot's Timeout ends here
  bool operator==(const DirectJournalRecord&) const = default;
};

// A snapvold host of the service (docs/multi-host.md part 2), as it registered itself.
struct HostRecord {
  std::string host_id;       // "host-" + 17 hex, kept in the data dir (DIR/host-id)
  std::string name;          // for people: snapvold --host-name, default the machine's name
  std::string api_url;       // e.g. http://127.0.0.1:8787
  std::string nbd_endpoint;  // the NBD server: "unix:PATH" and/or "tcp:HOST:PORT", space-separated
  std::string version;       // snapvol's version
  int64_t started_ms = 0;
  int64_t heartbeat_ms = 0;  // last heartbeat; 0: stopped cleanly
  bool operator==(const HostRecord&) const = default;
};

// The URI an NBD client opens export_name with on a host whose nbd_endpoint is as above:
// "nbds://HOST:PORT/NAME" (TLS-PSK; `snapvol nbd connect` makes the key file) when the host
// listens on TCP, else "nbd+unix:///NAME?socket=PATH" (root on that host, no key); '' when
// the endpoint names neither.
std::string NbdExportUri(const std::string& nbd_endpoint, const std::string& export_name);

// A host's state at now_ms: "up" while its heartbeat is at most timeout_ms old, "stopped"
// after a clean stop (heartbeat_ms 0), "unreachable" otherwise.
std::string HostStateAt(const HostRecord& host, int64_t now_ms, int64_t timeout_ms);
// The --host-timeout default: a host whose heartbeat is older is unreachable.
inline constexpr int64_t kDefaultHostTimeoutMs = 30'000;
// The state of the host that holds a volume (its host_id) among hosts, at now_ms: "" when the
// volume names no host (a catalog opened outside a data dir), HostStateAt of the host's row, or
// "unregistered" when no row has that id (a host whose snapvold never started). Whatever is
// not "up" runs nothing and serves nothing (docs/multi-host.md part 5).
std::string VolumeHostState(const std::vector<HostRecord>& hosts, const std::string& host_id, int64_t now_ms,
                            int64_t timeout_ms);

// A cluster lease (docs/multi-host.md part 4): the right to run a once-per-cluster duty (GC,
// lifecycle scheduling, verification) named by `name`, held by one holder (a host id) until
// expires_ms. generation goes up by one each time a different holder takes the lease, so a
// holder that lost it (paused past its expiry) is told by CheckClusterLease before it acts.
struct ClusterLeaseRecord {
  std::string name;
  std::string holder;
  int64_t expires_ms = 0;  // live while now < expires_ms; 0: released
  int64_t generation = 0;  // 1 for the first holder
  bool operator==(const ClusterLeaseRecord&) const = default;
};

// Which cluster lease, holder and generation a write is fenced by: the write happens only while
// that holder holds that generation (as CheckClusterLease says), in the write's transaction.
struct LeaseFence {
  std::string name;
  std::string holder;
  int64_t generation = 0;
};

// A snapshot request routed to the host that holds its volumes (docs/multi-host.md part 3): the
// host that got the request wrote the `pending` rows at once (runner QueuedRunner(host_id));
// this row asks host_id to cut and run them. One row per CreateSnapshot, or per instance cut
// (all its snapshots in one row, cut together).
struct SnapshotJobRecord {
  std::string job_id;                     // the first snapshot's id
  std::string host_id;                    // the host that must run it
  std::string instance_id;                // '' or the instance cut together (its freeze hooks)
  std::vector<std::string> snapshot_ids;  // in the order they are cut
  bool full = false;                      // ignore the parents (as asked)
  int64_t created_ms = 0;
  std::string claimed_by;  // '' while queued; else the runner that claimed it
  int64_t claimed_ms = 0;
  bool operator==(const SnapshotJobRecord&) const = default;
};

// A volume creation routed to the host it is placed on (docs/multi-host.md part 3): the host that
// got the request wrote the volume's row (`creating`, host_id that host); this row asks host_id
// to make its data.
struct VolumeCreationRecord {
  std::string volume_id;
  std::string host_id;  // the host that must make it
  int64_t created_ms = 0;
  std::string claimed_by;  // '' while queued; else the runner that claimed it
  int64_t claimed_ms = 0;
  bool operator==(const VolumeCreationRecord&) const = default;
};

// The runner of a pending snapshot queued for host_id ("queued@host-…"): no process runs it
// yet; host_id will claim it (RunnerJudge counts it alive while that host is up).
std::string QueuedRunner(const std::string& host_id);
// The host a QueuedRunner names; "" when runner is not one.
std::string QueuedRunnerHost(std::string_view runner);

// A lease's state at now_ms: "held" while live, "released" after ReleaseClusterLease,
// "expired" otherwise (its holder stopped renewing it).
std::string ClusterLeaseStateAt(const ClusterLeaseRecord& lease, int64_t now_ms);

// One acknowledged block of such a snapshot.
struct DirectBlockRecord {
  uint64_t index = 0;
  std::string chunk_id;  // 32 bytes; all zero: an all-zero block (a hole)
  std::string sha256;    // 32 bytes: the client's checksum of the block
  uint64_t stored_bytes = 0;  // what its chunk added to the store (0: it was there already)
  bool operator==(const DirectBlockRecord&) const = default;
};

// An in-place rollback of a volume to a snapshot (EC2's ReplaceRootVolumeTask, and snapvol's
// RestoreVolumeFromSnapshot for any volume). pending → in-progress → succeeded | failed |
// failed-detached.
struct ReplaceRootVolumeTaskRecord {
  std::string task_id;  // "replacevol-" + 17 hex
  std::string account_id, instance_id /* '' for a detached volume */, volume_id, snapshot_id;
  std::string state = "pending";
  int progress = 0;  // percent of the volume compared
  uint64_t blocks_compared = 0, bytes_read = 0, bytes_written = 0;
  std::string safety_snapshot_id;  // taken before the rollback; '' when asked not to
  // A managed root volume is not rolled back in place but replaced: the new volume restored
  // from the snapshot ('' for an in-place rollback). volume_id stays the replaced (old) one.
  std::string replacement_volume_id;
  std::string reason;              // why it failed, or why it was forced
  std::string client_token;
  bool delete_replaced = false;  // DeleteReplacedRootVolume as asked (in place: nothing is replaced)
  bool force = false;            // the volume was in use and the caller said Force
  std::string requested_by;      // the caller's ARN
  std::string runner;            // the process running it
  int64_t start_ms = 0, complete_ms = 0;
  std::vector<Tag> tags;  // sorted by key
  bool operator==(const ReplaceRootVolumeTaskRecord&) const = default;
};

enum class SnapshotState { kPending, kCompleted, kError };

// "pending", "completed", "error" (the EC2 wire values).
const char* SnapshotStateName(SnapshotState state);
// Inverse of SnapshotStateName; anything else → kInvalidArgument.
Result<SnapshotState> ParseSnapshotState(std::string_view name);

struct SnapshotRecord {
  std::string snapshot_id;  // "snap-" + 17 hex
  std::string volume_id;    // need not be registered here: a snapshot outlives its volume
  std::string account_id;   // must exist in the catalog
  SnapshotState state = SnapshotState::kPending;
  std::string progress = "0%";    // "0%".."100%"
  int64_t start_time_ms = 0;      // the instant the data is from
  int64_t completed_time_ms = 0;  // 0 unless completed
  uint64_t volume_size_bytes = 0;
  uint32_t block_size = 0;
  std::string description;
  std::string state_message;       // why it is in kError
  std::string parent_snapshot_id;  // empty if this is a full snapshot
  bool encrypted = false;
  uint64_t stored_bytes = 0;  // new bytes this snapshot wrote to the store
  uint64_t changed_blocks = 0;
  uint64_t total_blocks = 0;
  std::string runner;     // who writes it while pending, e.g. "pid:1234@bootid"; empty when done
  std::vector<Tag> tags;  // returned sorted by key
  bool operator==(const SnapshotRecord&) const = default;
};

// A deleted snapshot held by the Recycle Bin: the snapshot's row as it was (tags included),
// when it entered the bin and when its retention ends.
struct BinnedSnapshotRecord {
  SnapshotRecord snapshot;
  std::string rule_id;  // the rule that kept it ("default" for the daemon's configured rule)
  int64_t entered_ms = 0, exit_ms = 0;
  bool operator==(const BinnedSnapshotRecord&) const = default;
};

// --- usage accounting (catalog_usage.cc; the rules are in engine/usage_accounting.h) ---
// Object ids here are the store's 32-byte ids as raw bytes.

// A snapshot whose references the usage index must add (it completed) or remove (it was
// deleted), in the order they happened.
struct UsageJournalEntry {
  int64_t seq = 0;
  bool add = true;
  std::string snapshot_id, account_id;
};

// A chunk or index page referenced by at least one accounted snapshot.
struct UsageObject {
  std::string id;
  int kind = 0;               // ObjectKind: 1 chunk, 2 index page
  uint64_t stored_bytes = 0;  // its encoded size in the store
  int64_t refs = 0;           // references from accounted roots and live pages, all accounts (0: remove)
  int64_t holders = 0;        // accounts whose own reference count is above zero
  uint64_t data_blocks = 0;   // a page: blocks under it that are not holes; a chunk: 1
  bool operator==(const UsageObject&) const = default;
};

struct UsageAccountRef {
  std::string object_id, account_id;
  int64_t refs = 0;  // references within that account's snapshots (0: remove)
};

struct SnapshotUsageRecord {
  std::string snapshot_id, account_id;
  std::string root;  // root page id (32 bytes; all zero when every block is a hole)
  uint32_t depth = 0;
  uint64_t full_bytes = 0;  // bytes of the volume's blocks that are not holes (EC2 FullSnapshotSizeInBytes)
  std::optional<uint64_t> unique_bytes;  // cached: stored bytes only this snapshot references
  int64_t unique_generation = -1;        // the usage generation unique_bytes was computed at
};

struct AccountUsageRecord {
  std::string account_id;
  uint64_t exclusive_bytes = 0;  // stored bytes only this account's snapshots reference
  uint64_t shared_bytes = 0;     // stored bytes its snapshots share with other accounts'
  uint64_t snapshots = 0;        // its accounted snapshots
};

// One journal entry's effect, applied in one transaction by ApplyUsageUpdate.
struct UsageUpdate {
  int64_t journal_seq = 0;
  int64_t expected_generation = 0;  // Conflict when the usage index moved since it was read
  std::vector<UsageObject> objects;
  std::vector<UsageAccountRef> account_refs;
  std::map<std::string, std::pair<int64_t, int64_t>> account_deltas;  // account → (exclusive Δ, shared Δ)
  std::optional<SnapshotUsageRecord> add_snapshot;
  std::optional<std::string> remove_snapshot;
};

// Every set field must match (AND). An empty snapshot_ids means "any id"; ids that do not
// exist are simply absent from the result.
// The initializers let callers use designated initializers without -Wextra warnings.
struct SnapshotFilter {
  std::optional<std::string> volume_id = std::nullopt;
  std::optional<std::string> account_id = std::nullopt;
  std::optional<SnapshotState> state = std::nullopt;
  std::vector<std::string> snapshot_ids = {};
  std::optional<Tag> tag = std::nullopt;  // has this tag (key and value)
};

// The value of the Name tag among tags, if there is one. An instance's or a volume's name is
// its Name tag: the catalog keeps the two equal (see InstanceRecord::name).
std::optional<std::string> NameFromTags(const std::vector<Tag>& tags);

// Checks tags against the limits above (count of the counted ones, key and value length, no
// "aws:" key but snapvol's own system tags, no key twice). what names the tags in the message, e.g. "tags of snap-…". More than 50 →
// kInvalidArgument starting with kTagLimitExceeded; other problems → kInvalidArgument.
Status ValidateTagList(const std::vector<Tag>& tags, const std::string& what);

// What /metrics reads from the catalog at scrape time (Catalog::MetricsTotals).
struct SnapshotTotals {
  std::string account_id, state;
  uint64_t snapshots = 0, stored_bytes = 0, volume_bytes = 0;
};
struct LifecycleRunTotals {
  std::string state;     // running | succeeded | partial | failed
  uint64_t runs = 0;     // recorded runs in this state
  int64_t last_ms = 0;   // the latest one's end (its start while running)
};
struct CatalogTotals {
  std::vector<SnapshotTotals> snapshots;  // by account and state
  std::vector<LifecycleRunTotals> lifecycle_runs;
};

}  // namespace snapvol
