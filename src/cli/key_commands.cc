// `snapvol key disable|enable|delete` (see key_commands.h).
#include "cli/key_commands.h"

namespace snapvol {

Status KeyStatusCommand(Accounts* accounts, Catalog* catalog, const std::string& id, bool active, std::ostream& out) {
  ASSIGN_OR_RETURN(AccessKeyRecord before, catalog->GetAccessKey(id));
  const char* word = active ? "enabled" : "disabled";
  if (before.active == active) {
    out << id << " was already " << word << "\n";
    return OkStatus();
  }
  RETURN_IF_ERROR(accounts->SetKeyActive(id, active));
  out << word << " " << id << "\n";
  return OkStatus();
}

Status KeyDeleteCommand(Accounts* accounts, const std::string& id, std::ostream& out) {
  RETURN_IF_ERROR(accounts->DeleteKey(id));
  out << "deleted " << id << "\n";
  return OkStatus();
}

}  // namespace snapvol
