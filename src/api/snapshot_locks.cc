#include "api/snapshot_locks.h"

#include "core/clock.h"

namespace snapvol::api {
namespace {
constexpr int64_t kHourMs = 3'600'000;
constexpr int64_t kDayMs = 24 * kHourMs;
constexpr int64_t kMaxDays = 36'500;
}  // namespace

ApiResult<SnapshotLockRecord> NextLock(const std::string& snapshot_id, const std::string& account_id,
                                       const std::optional<SnapshotLockRecord>& current, const LockRequest& req,
                                       int64_t now_ms) {
  if (req.mode != "governance" && req.mode != "compliance")
    return std::unexpected(InvalidParameterValue("LockMode", req.mode, "Expected governance or compliance."));
  if (req.duration_days && req.expiration_ms)
    return ApiFail(ec2::kInvalidParameterCombination, "Specify either LockDuration or ExpirationDate, not both.");
  if (!req.duration_days && !req.expiration_ms)
    return ApiFail(ec2::kMissingParameter, "The request must contain the parameter LockDuration or ExpirationDate");
  if (req.duration_days && (*req.duration_days < 1 || *req.duration_days > kMaxDays))
    return std::unexpected(InvalidParameterValue("LockDuration", std::to_string(*req.duration_days),
                                                 "Expected a number of days from 1 to 36500."));
  if (req.expiration_ms && (*req.expiration_ms <= now_ms || *req.expiration_ms > now_ms + kMaxDays * kDayMs))
    return std::unexpected(InvalidParameterValue("ExpirationDate", FormatIso8601(*req.expiration_ms),
                                                 "Expected a time in the future, at most 36500 days away."));
  if (req.cool_off_hours) {
    if (req.mode != "compliance")
      return ApiFail(ec2::kInvalidParameterCombination, "CoolOffPeriod applies only to compliance mode.");
    if (*req.cool_off_hours < 1 || *req.cool_off_hours > 72)
      return std::unexpected(InvalidParameterValue("CoolOffPeriod", std::to_string(*req.cool_off_hours),
                                                   "Expected a number of hours from 1 to 72."));
  }
  const int64_t expires = req.duration_days ? now_ms + *req.duration_days * kDayMs : *req.expiration_ms;
  const std::string state = current ? LockStateAt(*current, now_ms) : "expired";
  if (state == "compliance") {
    // Past its cooling-off period a compliance lock can only be extended.
    if (req.mode != "compliance")
      return ApiFail(ec2::kIncorrectState, "Snapshot " + snapshot_id +
                                               " is locked in compliance mode past its cooling-off period; its mode "
                                               "cannot be changed.");
    if (req.cool_off_hours)
      return ApiFail(ec2::kInvalidParameterCombination,
                     "Snapshot " + snapshot_id + " is past its cooling-off period; omit CoolOffPeriod.");
    if (expires < current->expires_ms)
      return ApiFail(ec2::kIncorrectState, "Snapshot " + snapshot_id + " is locked in compliance mode until " +
                                               FormatIso8601(current->expires_ms) +
                                               "; the lock can only be extended.");
  }
  SnapshotLockRecord next;
  next.snapshot_id = snapshot_id;
  next.account_id = account_id;
  next.mode = req.mode;
  next.created_ms = state != "expired" ? current->created_ms : now_ms;
  next.duration_start_ms = now_ms;
  next.expires_ms = expires;
  next.duration_days = req.duration_days.value_or(0);
  if (req.cool_off_hours) {
    next.cool_off_hours = *req.cool_off_hours;
    next.cool_off_expires_ms = now_ms + *req.cool_off_hours * kHourMs;
  }
  return next;
}

ApiStatus CheckUnlock(const SnapshotLockRecord& current, int64_t now_ms) {
  if (LockStateAt(current, now_ms) == "compliance")
    return ApiFail(ec2::kIncorrectState, "Snapshot " + current.snapshot_id +
                                             " is locked in compliance mode past its cooling-off period; it stays "
                                             "locked until " + FormatIso8601(current.expires_ms) + ".");
  return {};
}

void WriteLockFields(XmlWriter& w, const SnapshotLockRecord& lock, int64_t now_ms) {
  w.Text("lockState", LockStateAt(lock, now_ms));
  if (lock.duration_days) w.Int("lockDuration", lock.duration_days);
  if (lock.cool_off_hours) {
    w.Int("coolOffPeriod", lock.cool_off_hours);
    w.Timestamp("coolOffPeriodExpiresOn", lock.cool_off_expires_ms);
  }
  w.Timestamp("lockCreatedOn", lock.created_ms);
  w.Timestamp("lockDurationStartTime", lock.duration_start_ms);
  w.Timestamp("lockExpiresOn", lock.expires_ms);
}

}  // namespace snapvol::api
