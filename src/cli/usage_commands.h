// `snapvol account usage`: the stored bytes each account's snapshots hold exclusively and share
// with other accounts (engine/usage_accounting.h), brought up to date first.
// Thread-safety: call from one thread (the CLI's).
#pragma once

#include <optional>
#include <ostream>
#include <string>

#include "engine/usage_accounting.h"

namespace snapvol {

// Applies the pending usage changes (all of them after a rebuild, which empties the index and
// counts every completed snapshot again), then prints every account (or only account_id) as
// a table or JSON, with the store's total. kNotFound for an unknown account.
Status AccountUsageCommand(Catalog* catalog, UsageAccounting* usage, const std::optional<std::string>& account_id,
                           bool rebuild, bool json, std::ostream& out);

}  // namespace snapvol
