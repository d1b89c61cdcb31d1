// Restore requests, shared by the Query API (XML) and the JSON API: file one (a member, for
// its own completed snapshot), list them (administrators see every team's), decide one
// (administrators; approving restores the snapshot into a new volume of the team).
// Thread-safety: as Ec2Context; deciding is atomic in the catalog (pending → decided once).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "api/ec2_context.h"

namespace snapvol::api {

// State filter: pending, approved or rejected; anything else → InvalidParameterValue.
ApiStatus CheckRestoreRequestState(const std::optional<std::string>& state);
ApiResult<RestoreRequestRecord> FileRestoreRequest(Ec2Context& x, const Caller& c, const std::string& snap_id,
                                                   const std::string& reason, bool dry);
ApiResult<std::vector<RestoreRequestRecord>> ListRestoreRequests(Ec2Context& x, const Caller& c,
                                                                 const std::vector<std::string>& ids,
                                                                 const std::optional<std::string>& state, bool dry);
ApiResult<RestoreRequestRecord> DecideRestoreRequest(Ec2Context& x, const Caller& c, const std::string& id, bool approve,
                                                     const std::string& reason, bool dry);

}  // namespace snapvol::api
