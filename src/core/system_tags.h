// snapvol's system tags: the tag keys snapvol writes itself. The one home of their names.
//
// They live under "aws:", the prefix EC2 reserves for tags that AWS's own services write (DLM
// writes aws:dlm:lifecycle-policy-id on the snapshots it makes): a user can neither set nor
// delete one (CreateTags, DeleteTags and the CLI refuse the prefix), DeleteTags without Tag.N
// keeps them, they do not count toward the 50 tags of a resource, and the tools users drive
// snapvol with already leave them alone (Ansible's purge_tags and tag comparisons skip aws:
// keys). Where AWS has a key for the same fact, snapvol uses AWS's key (the lifecycle ones);
// the others are aws:snapvol:….
//
// Before catalog migration 27 these keys were snapvol:… (kLegacySystemTags). The migration
// renames them in the catalog, and manifests in the store, which keep the keys they were
// written with, are read with today's names (CurrentSystemTagKey).
#pragma once

#include <string_view>
#include <utility>

namespace snapvol {

// Tag keys starting with this (in any case) are the system's: refused from users.
inline constexpr char kReservedTagPrefix[] = "aws:";
// snapvol's own system tags (the keys it writes that AWS has no name for) start with this.
inline constexpr char kSystemTagPrefix[] = "aws:snapvol:";

// How a snapshot's data was cut (point in time or read while running) and how its changed
// blocks were found. Values: engine/snapshot_jobs.h AddSourceTags.
inline constexpr char kConsistencyTag[] = "aws:snapvol:consistency";
inline constexpr char kChangedBlocksTag[] = "aws:snapvol:changed-blocks";
// Where a volume lives (docs/multi-host.md part 3): the name of the host holding its data (its
// host id while that host has no row in hosts) and, for a managed volume whose host serves NBD,
// its export's URI. Kept in step by the catalog whenever a volume gets its host or a host
// registers.
inline constexpr char kHostTag[] = "aws:snapvol:host";
inline constexpr char kNbdTag[] = "aws:snapvol:nbd";
// A snapshot verification found damaged: when (lifecycle/maintenance.h).
inline constexpr char kDamagedTag[] = "aws:snapvol:damaged";
// The rollback task whose safety snapshot this is (engine/rollback_tasks.cc).
inline constexpr char kReplaceRootVolumeTaskTag[] = "aws:snapvol:replace-root-volume-task";
// Snapshots a lifecycle policy makes: the policy and schedule, AWS DLM's keys, and the run's
// scheduled time (lifecycle/scheduler.h).
inline constexpr char kPolicyIdTag[] = "aws:dlm:lifecycle-policy-id";
inline constexpr char kScheduleTag[] = "aws:dlm:lifecycle-schedule-name";
inline constexpr char kRunTag[] = "aws:snapvol:lifecycle-run";
// A volume restored from the latest snapshot of a volume whose host is not up
// (`snapvol host evacuate`, docs/multi-host.md part 5): that volume's id. Evacuating the same
// host again finds it and makes no second copy.
inline constexpr char kEvacuatedFromTag[] = "aws:snapvol:evacuated-from";

// Every system tag key snapvol wrote before migration 27, with its key today.
inline constexpr std::pair<std::string_view, std::string_view> kLegacySystemTags[] = {
    {"snapvol:consistency", kConsistencyTag},
    {"snapvol:changed-blocks", kChangedBlocksTag},
    {"snapvol:host", kHostTag},
    {"snapvol:nbd", kNbdTag},
    {"snapvol:damaged", kDamagedTag},
    {"snapvol:replace-root-volume-task", kReplaceRootVolumeTaskTag},
    {"snapvol:policy-id", kPolicyIdTag},
    {"snapvol:schedule", kScheduleTag},
    {"snapvol:run", kRunTag},
};

// True when key starts with kReservedTagPrefix, in any case (as EC2 compares it).
bool HasReservedTagPrefix(std::string_view key);
// True for a key snapvol itself writes: the keys above, exactly.
bool IsSystemTagKey(std::string_view key);
// key under today's name: a kLegacySystemTags key becomes its new key; any other is itself.
std::string_view CurrentSystemTagKey(std::string_view key);

}  // namespace snapvol
