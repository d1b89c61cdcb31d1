// `snapvol key disable|enable|delete ID`: an operator's changes to an access key on the data
// dir, with the same rules as the JSON API (the last active administrator key is kept).
// Thread-safety: call from one thread (the CLI's).
#pragma once

#include <ostream>
#include <string>

#include "api/accounts.h"

namespace snapvol {

// Disables (active false) or enables key id and prints what changed ("disabled ID", or
// "ID was already disabled"). kNotFound for an unknown key; kConflict, changing nothing, for
// the last active key of an administrator account.
Status KeyStatusCommand(Accounts* accounts, Catalog* catalog, const std::string& id, bool active, std::ostream& out);

// Deletes key id and prints "deleted ID". kNotFound; kConflict as for KeyStatusCommand.
Status KeyDeleteCommand(Accounts* accounts, const std::string& id, std::ostream& out);

}  // namespace snapvol
