#include "engine/managed_root_replacement.h"

#include <set>

namespace snapvol {
namespace {

bool IsRootOf(const Result<VolumeRecord>& v, const std::string& instance_id) {
  return v && v->instance_id == instance_id && v->boot;
}

}  // namespace

ManagedRootReplacement::ManagedRootReplacement(Catalog* catalog, ManagedRootHooks hooks, Clock* clock)
    : catalog_(catalog), hooks_(std::move(hooks)), clock_(clock) {}

Result<bool> ManagedRootReplacement::InLineage(Catalog* catalog, const VolumeRecord& root, const SnapshotRecord& snap) {
  std::set<std::string> seen;  // a cycle cannot happen, but a loop must not spin
  VolumeRecord v = root;
  for (;;) {
    if (snap.volume_id == v.volume_id) return true;
    if (v.snapshot_id.empty() || !seen.insert(v.volume_id).second) return false;
    auto parent_snap = catalog->GetSnapshot(v.snapshot_id);
    if (!parent_snap) {
      if (parent_snap.error().code() == ErrorCode::kNotFound) return false;
      return std::unexpected(parent_snap.error());
    }
    if (snap.volume_id == parent_snap->volume_id) return true;
    auto parent = catalog->GetVolume(parent_snap->volume_id);
    if (!parent) {
      if (parent.error().code() == ErrorCode::kNotFound) return false;
      return std::unexpected(parent.error());
    }
    v = std::move(*parent);
  }
}

void ManagedRootReplacement::Fail(ReplaceRootVolumeTaskRecord& t, const std::string& why, bool remove_new) {
  t.state = "failed";
  t.reason = why;
  t.complete_ms = clock_->NowMillis();
  (void)catalog_->UpdateReplaceRootVolumeTask(t);
  if (remove_new && hooks_.delete_volume) {
    auto v = catalog_->GetVolume(t.replacement_volume_id);
    if (v && v->instance_id.empty()) (void)hooks_.delete_volume(t.replacement_volume_id, "");
  }
}

void ManagedRootReplacement::Succeed(ReplaceRootVolumeTaskRecord& t) {
  if (t.delete_replaced && hooks_.delete_volume) {
    auto old = catalog_->GetVolume(t.volume_id);
    if (old && old->instance_id.empty()) {
      if (auto st = hooks_.delete_volume(t.volume_id, t.task_id); !st)
        t.reason = "the replaced root volume " + t.volume_id + " was not deleted: " + st.error().message();
    }
  }
  t.state = "succeeded";
  t.progress = 100;
  t.complete_ms = clock_->NowMillis();
  (void)catalog_->UpdateReplaceRootVolumeTask(t);
}

void ManagedRootReplacement::Run(ReplaceRootVolumeTaskRecord t) {
  if (t.state == "in-progress") return Settle(std::move(t));
  auto fresh = catalog_->GetVolume(t.replacement_volume_id);
  if (!fresh) return Fail(t, "the replacement volume " + t.replacement_volume_id + " is gone", false);
  if (fresh->state == "error")
    return Fail(t, "the replacement volume " + t.replacement_volume_id + " failed: " + fresh->state_message, true);
  if (!IsRootOf(catalog_->GetVolume(t.volume_id), t.instance_id))
    return Fail(t, "volume " + t.volume_id + " is no longer the root volume of " + t.instance_id, true);
  t.state = "in-progress";
  if (auto st = catalog_->UpdateReplaceRootVolumeTask(t); !st) return;  // ended by someone else
  // Connections first: no write reaches the old volume once the new one is the root.
  if (hooks_.end_connections) {
    if (auto ended = hooks_.end_connections(t.volume_id); !ended) {
      if (hooks_.admit) hooks_.admit(t.volume_id);
      return Fail(t, "the NBD connections of " + t.volume_id + " did not end: " + ended.error().message(), true);
    }
  }
  auto swapped = catalog_->SwapRootVolume(t.instance_id, t.volume_id, t.replacement_volume_id, clock_->NowMillis());
  if (hooks_.admit) hooks_.admit(t.volume_id);
  if (!swapped) return Fail(t, "the root volume was not replaced: " + swapped.error().message(), true);
  Succeed(t);
}

void ManagedRootReplacement::Settle(ReplaceRootVolumeTaskRecord t) {
  if (IsRootOf(catalog_->GetVolume(t.replacement_volume_id), t.instance_id)) return Succeed(t);
  if (IsRootOf(catalog_->GetVolume(t.volume_id), t.instance_id))
    return Fail(t, "interrupted before the swap (the service stopped); the root volume " + t.volume_id +
                       " was kept", true);
  t.state = "failed-detached";
  t.reason = "interrupted (the service stopped) and neither " + t.volume_id + " nor the replacement " +
             t.replacement_volume_id + " is attached to " + t.instance_id + " at its root device now";
  t.complete_ms = clock_->NowMillis();
  (void)catalog_->UpdateReplaceRootVolumeTask(t);
}

}  // namespace snapvol
