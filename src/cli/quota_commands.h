// `snapvol account set-quota` and `snapvol account show-quota`: an operator's limits on what
// each account may hold (catalog quotas), and what each holds against them.
// Thread-safety: call from one thread (the CLI's).
#pragma once

#include <map>
#include <optional>
#include <ostream>
#include <string>

#include "catalog/catalog.h"

namespace snapvol {

// A limit as written on the command line: a whole number (0 allows none), "unlimited", or,
// for an account (not the defaults), "default" to drop its own limit and take the default.
Result<QuotaSetting> ParseQuotaSetting(const std::string& option, const std::string& text, bool for_defaults);

// Sets the given limits (option text by kind) of account_id, or of the defaults when
// account_id is kQuotaDefaults, in one transaction; nothing changes if any is invalid.
Status SetQuotaCommand(Catalog* catalog, const std::string& account_id, const std::map<QuotaKind, std::string>& given);

// Prints the defaults, then every account's (or only account_id's) usage and limits, as a
// table or JSON.
Status ShowQuotaCommand(Catalog* catalog, const std::optional<std::string>& account_id, bool json, std::ostream& out);

}  // namespace snapvol
