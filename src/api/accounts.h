// Accounts (teams) and their API access keys: creation, listing, deletion, and the secret
// lookup SigV4 verification needs. Secrets are sealed (AES-256-GCM under the data dir's
// secrets key) before they reach the catalog, so a stolen catalog does not reveal them.
// Thread-safety: safe from many threads (the catalog serialises).
#pragma once

#include <string>

#include "catalog/catalog.h"
#include "core/aead.h"

namespace snapvol {

struct NewAccessKey {
  std::string access_key_id, secret_access_key, account_id, user_name;
};

struct KeyLookup {
  std::string secret_access_key, account_id, user_name;
  bool is_admin = false;
};

class Accounts {
 public:
  Accounts(Catalog* catalog, const Key256& seal_key) : catalog_(catalog), seal_key_(seal_key) {}

  Result<AccountRecord> CreateAccount(const std::string& alias, bool admin);
  Result<NewAccessKey> CreateKey(const std::string& account_id, const std::string& user_name);
  // NotFound for an unknown key; Corruption when the sealed secret does not open.
  Result<KeyLookup> Lookup(const std::string& access_key_id);

  // "[profile]\naws_access_key_id = …\naws_secret_access_key = …\n"
  static std::string CredentialsProfile(const std::string& profile, const NewAccessKey& key);

 private:
  Catalog* catalog_;
  Key256 seal_key_;
};

}  // namespace snapvol
