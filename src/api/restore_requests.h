// Restore requests, shared by the Query API (XML) and the JSON API: file one (a member, for
// its own completed snapshot: into a new volume, or in place over one of its registered
// volumes), list them (administrators see every team's), decide one (administrators; approving
// runs exactly what was asked: a restore into a new volume of the team, or an in-place rollback
// task, engine/rollback_tasks.h, whose state and progress the request then shows).
// Thread-safety: as Ec2Context; deciding is atomic in the catalog (pending → decided once).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "api/ec2_context.h"

namespace snapvol::api {

// State filter: pending, approved or rejected; anything else → InvalidParameterValue.
ApiStatus CheckRestoreRequestState(const std::optional<std::string>& state);
struct RestoreAsk {
  std::string snapshot_id, reason;
  std::string restore_type;  // "new-volume" (also when empty) or "in-place"
  std::string volume_id;     // in-place: the volume rolled back (required); new-volume: refused
};
ApiResult<RestoreRequestRecord> FileRestoreRequest(Ec2Context& x, const Caller& c, const RestoreAsk& ask, bool dry);
ApiResult<std::vector<RestoreRequestRecord>> ListRestoreRequests(Ec2Context& x, const Caller& c,
                                                                 const std::vector<std::string>& ids,
                                                                 const std::optional<std::string>& state, bool dry);
// The rollback task an approved in-place request started (nullopt: none, or gone).
std::optional<ReplaceRootVolumeTaskRecord> RestoreRequestTask(Ec2Context& x, const RestoreRequestRecord& r);
ApiResult<RestoreRequestRecord> DecideRestoreRequest(Ec2Context& x, const Caller& c, const std::string& id, bool approve,
                                                     const std::string& reason, bool dry);

}  // namespace snapvol::api
