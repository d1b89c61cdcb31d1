// Events an operator must hear about (a lifecycle run that failed, a snapshot that ended in
// error, damage found by verification, a failed GC, a store filling up), raised by any layer
// through an EventSink and delivered by whatever the daemon plugs in (webhook, email, log).
// Raising never blocks on delivery and never fails the work that raised it.
// Thread-safety: EventSink implementations must be safe to call from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace snapvol {

// The kinds, as sent on the wire (webhook "event" field, email subject); stable names.
inline constexpr char kEventLifecycleRunFailed[] = "lifecycle-run-failed";  // failed or partial run
inline constexpr char kEventSnapshotFailed[] = "snapshot-failed";
inline constexpr char kEventVerifyDamage[] = "verify-damage";
inline constexpr char kEventGcFailed[] = "gc-failed";
inline constexpr char kEventDrillFailed[] = "drill-failed";  // a restore drill did not restore or check
inline constexpr char kEventStoreFilling[] = "store-filling";
inline constexpr char kEventTest[] = "test";  // sent by the operator's test command

struct OperatorEvent {
  std::string kind;      // one of the kEvent… names
  std::string severity;  // "error" or "warning"
  std::string summary;   // one line a person can act on, e.g. "verification found 2 damaged snapshots"
  int64_t time_ms = 0;   // when it happened (the raiser's Clock)
  // Details by name, in order (ids, counts, messages): "snapshot_id" → "snap-…".
  std::vector<std::pair<std::string, std::string>> details;
};

class EventSink {
 public:
  virtual ~EventSink() = default;
  // Queues the event for delivery and returns at once.
  virtual void Raise(OperatorEvent event) = 0;
};

}  // namespace snapvol
