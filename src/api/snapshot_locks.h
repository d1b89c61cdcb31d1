// EC2 snapshot locks (LockSnapshot, UnlockSnapshot, DescribeLockedSnapshots): the rules for
// setting, changing and lifting a lock, apart from the service so they can be tested alone.
//
// A lock in governance mode can be changed or lifted at any time; one in compliance mode only
// during its cooling-off period, after which it can only be extended until it expires. A
// snapshot with a lock in force cannot be deleted (the catalog refuses; see
// Catalog::DeleteSnapshot).
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "api/api_error.h"
#include "api/xml_writer.h"
#include "catalog/catalog.h"

namespace snapvol::api {

struct LockRequest {
  std::string mode;                      // LockMode: "governance" or "compliance"
  std::optional<int64_t> cool_off_hours;  // CoolOffPeriod, 1–72, compliance only
  std::optional<int64_t> duration_days;   // LockDuration, 1–36500
  std::optional<int64_t> expiration_ms;   // ExpirationDate (exactly one of the two)
};

// The lock to store for `req` on a snapshot whose lock is `current` (nullopt: none), at
// now_ms, or the EC2 error that refuses it.
ApiResult<SnapshotLockRecord> NextLock(const std::string& snapshot_id, const std::string& account_id,
                                       const std::optional<SnapshotLockRecord>& current, const LockRequest& req,
                                       int64_t now_ms);

// OK when UnlockSnapshot may lift `current` at now_ms.
ApiStatus CheckUnlock(const SnapshotLockRecord& current, int64_t now_ms);

// The lock's fields as EC2 names them (lockState, lockDuration, coolOffPeriod, …), for the
// LockSnapshot response and DescribeLockedSnapshots items.
void WriteLockFields(XmlWriter& w, const SnapshotLockRecord& lock, int64_t now_ms);

}  // namespace snapvol::api
