// Accounts (teams), their API access keys and the IAM policies attached to them: creation,
// listing, deletion, the secret lookup SigV4 verification needs, and the policies IAM
// evaluates for a caller. Secrets are sealed (AES-256-GCM under a key derived from the data
// dir's secrets key for this purpose alone, core/key_derivation.h) before they reach the
// catalog, so a stolen catalog does not reveal them. A secret sealed before keys by purpose
// (under the secrets key itself) still opens, and is re-sealed the first time it is used.
// Thread-safety: safe from many threads (the catalog serialises).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "catalog/catalog.h"
#include "core/aead.h"
#include "core/key_derivation.h"
#include "iam/policy.h"

namespace snapvol {

struct NewAccessKey {
  std::string access_key_id, secret_access_key, account_id, user_name;
};

struct KeyLookup {
  std::string secret_access_key, account_id, user_name;
  bool is_admin = false;
};

// Everything a request needs to know about its signer.
struct Identity {
  KeyLookup key;
  AccountRecord account;
  std::vector<iam::Policy> policies;
};

class Accounts {
 public:
  // secrets_key: the data dir's secrets key (DataDir::SecretsKey), from which the sealing key
  // is derived.
  Accounts(Catalog* catalog, const Key256& secrets_key) : catalog_(catalog), secrets_key_(secrets_key) {}

  Result<AccountRecord> CreateAccount(const std::string& alias, bool admin);
  Result<NewAccessKey> CreateKey(const std::string& account_id, const std::string& user_name);
  // Disables or enables a key; deletes one. kNotFound for an unknown key; kConflict for the
  // last active key of any administrator account (Catalog::SetAccessKeyActive). The change is
  // seen by the next request (Identify's cache follows the catalog's DataVersion).
  Status SetKeyActive(const std::string& access_key_id, bool active);
  Status DeleteKey(const std::string& access_key_id);
  // NotFound for an unknown key, Unauthorized for a disabled one; Corruption when the sealed secret does not open. A secret in
  // the legacy format is re-sealed in the catalog (best effort: a failure leaves it as it was,
  // still usable).
  Result<KeyLookup> Lookup(const std::string& access_key_id);
  // The key's secret, account and policies: read once and cached until the catalog's
  // DataVersion changes (a key deleted or a policy detached by the CLI in another process
  // takes effect on the next request).
  Result<std::shared_ptr<const Identity>> Identify(const std::string& access_key_id);

  // --- IAM policies ---
  // The built-in policies, 'administrator' and 'member', cannot be created, changed or deleted.
  static bool IsBuiltinPolicy(const std::string& name);
  // Stores (or replaces) a custom policy after validating its name (1-128 of
  // [A-Za-z0-9+=,.@_-]) and document (IAM JSON, see iam/policy.h): kInvalidArgument.
  Status PutPolicy(const std::string& name, const std::string& document);
  // Built-in or stored; kNotFound otherwise.
  Status AttachPolicy(const std::string& account_id, const std::string& name);
  Status DetachPolicy(const std::string& account_id, const std::string& name);
  // The parsed policies attached to an account (none means every action is denied).
  Result<std::vector<iam::Policy>> PoliciesOf(const std::string& account_id);

  // "[profile]\naws_access_key_id = …\naws_secret_access_key = …\n"
  static std::string CredentialsProfile(const std::string& profile, const NewAccessKey& key);

 private:
  Catalog* catalog_;
  Key256 secrets_key_;  // the root: SealSecret/OpenSecret derive the sealing key from it
  std::mutex cache_mu_;
  int64_t cache_version_ = -1;  // guarded by cache_mu_
  std::unordered_map<std::string, std::shared_ptr<const Identity>> cache_;  // guarded by cache_mu_
};

}  // namespace snapvol
