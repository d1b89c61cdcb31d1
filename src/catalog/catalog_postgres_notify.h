// Internal to src/catalog: a PostgreSQL session that LISTENs on one channel, so a process can
// sleep until another host NOTIFYs it (a snapshot job queued for it, docs/multi-host.md part 3)
// instead of polling. Notifications are only a wake-up: what they announce is read from the
// tables, so one lost (a reconnect, a listener opened late) costs only the caller's polling
// interval.
// Thread-safety: one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"

namespace snapvol::catalog_internal {

// The channel a host is woken on when work is queued for some host: a routed snapshot job
// (EnqueueSnapshotJob) or a routed rollback task (InsertReplaceRootVolumeTask).
inline constexpr char kJobQueueChannel[] = "snapvol_snapshot_queue";

class PostgresListener {
 public:
  virtual ~PostgresListener() = default;
  // Waits up to timeout_ms for a notification on the channel; true when at least one came (all
  // that came are consumed), false when none did. A lost connection → kIoError (retryable):
  // the caller opens a new listener.
  virtual Result<bool> Wait(int64_t timeout_ms) = 0;
};

// Connects to url (as OpenPostgres, with a 10 s connect timeout unless the URL sets one) and
// LISTENs on channel (an identifier: lower-case letters, digits and _).
Result<std::unique_ptr<PostgresListener>> OpenPostgresListener(const std::string& url, const std::string& channel);

}  // namespace snapvol::catalog_internal
