#include "api/accounts.h"

#include <array>

#include "core/hash.h"

namespace snapvol {
namespace {

// n characters drawn uniformly from alphabet (rejection sampling keeps it unbiased).
Result<std::string> RandomString(size_t n, std::string_view alphabet) {
  std::string out;
  while (out.size() < n) {
    std::array<uint8_t, 64> raw{};
    RETURN_IF_ERROR(RandomBytes(raw));
    size_t limit = 256 - 256 % alphabet.size();
    for (uint8_t b : raw) {
      if (b >= limit) continue;
      out.push_back(alphabet[b % alphabet.size()]);
      if (out.size() == n) break;
    }
  }
  return out;
}

}  // namespace

Result<AccountRecord> Accounts::CreateAccount(const std::string& alias, bool admin) {
  ASSIGN_OR_RETURN(AccountRecord rec, catalog_->CreateAccount(alias));
  if (admin) {
    RETURN_IF_ERROR(catalog_->SetAccountAdmin(rec.account_id, true));
    rec.is_admin = true;
  }
  return rec;
}

Result<NewAccessKey> Accounts::CreateKey(const std::string& account_id, const std::string& user_name) {
  ASSIGN_OR_RETURN(AccountRecord acct, catalog_->GetAccount(account_id));
  NewAccessKey key;
  ASSIGN_OR_RETURN(std::string suffix, RandomString(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"));
  key.access_key_id = "AKIA" + suffix;
  ASSIGN_OR_RETURN(key.secret_access_key,
                   RandomString(40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"));
  key.account_id = acct.account_id;
  key.user_name = user_name.empty() ? acct.alias : user_name;
  ASSIGN_OR_RETURN(std::string sealed, SealSecret(secrets_key_, key.secret_access_key, key.access_key_id));
  RETURN_IF_ERROR(catalog_->InsertAccessKey(
      {key.access_key_id, key.account_id, key.user_name, sealed, Clock::Real()->NowMillis()}));
  return key;
}

Result<KeyLookup> Accounts::Lookup(const std::string& access_key_id) {
  ASSIGN_OR_RETURN(AccessKeyRecord rec, catalog_->GetAccessKey(access_key_id));
  // Refused before its secret is opened: a disabled key signs nothing.
  if (!rec.active) return MakeError(ErrorCode::kUnauthorized, "access key " + access_key_id + " is disabled");
  auto opened = OpenSecret(secrets_key_, rec.secret_sealed, rec.access_key_id);
  if (!opened)
    return Corruption("the secret of access key " + access_key_id +
                      " does not open with this data dir's secrets.key");
  if (opened->legacy) {
    // Sealed under the secrets key itself (before keys by purpose): seal it again under the
    // derived key, unless someone changed it meanwhile. Best effort: the old one still opens.
    if (auto fresh = SealSecret(secrets_key_, opened->secret, rec.access_key_id))
      (void)catalog_->ReplaceAccessKeySecret(access_key_id, rec.secret_sealed, *fresh);
  }
  ASSIGN_OR_RETURN(AccountRecord acct, catalog_->GetAccount(rec.account_id));
  return KeyLookup{opened->secret, rec.account_id, rec.user_name, acct.is_admin};
}

Status Accounts::SetKeyActive(const std::string& access_key_id, bool active) {
  return catalog_->SetAccessKeyActive(access_key_id, active, Clock::Real()->NowMillis());
}

Status Accounts::DeleteKey(const std::string& access_key_id) { return catalog_->DeleteAccessKey(access_key_id); }

bool Accounts::IsBuiltinPolicy(const std::string& name) { return name == "administrator" || name == "member"; }

Status Accounts::PutPolicy(const std::string& name, const std::string& document) {
  static constexpr std::string_view kNameChars =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+=,.@_-";
  if (name.empty() || name.size() > 128 || name.find_first_not_of(kNameChars) != std::string::npos)
    return InvalidArgument("policy name '" + name + "' must be 1 to 128 of A-Z a-z 0-9 + = , . @ _ -");
  if (IsBuiltinPolicy(name)) return InvalidArgument("policy '" + name + "' is built in and cannot be changed");
  auto parsed = iam::Policy::Parse(document, name);
  if (!parsed) return InvalidArgument("policy " + name + ": " + parsed.error().message());
  return catalog_->PutIamPolicy({name, document, Clock::Real()->NowMillis()});
}

Status Accounts::AttachPolicy(const std::string& account_id, const std::string& name) {
  if (!IsBuiltinPolicy(name)) RETURN_IF_ERROR(catalog_->GetIamPolicy(name));
  auto st = catalog_->AttachPolicy(account_id, name);
  if (!st && st.error().code() == ErrorCode::kAlreadyExists)
    return MakeError(ErrorCode::kAlreadyExists, "policy " + name + " is already attached to account " + account_id);
  return st;
}

Status Accounts::DetachPolicy(const std::string& account_id, const std::string& name) {
  return catalog_->DetachPolicy(account_id, name);
}

Result<std::vector<iam::Policy>> Accounts::PoliciesOf(const std::string& account_id) {
  ASSIGN_OR_RETURN(auto attached, catalog_->ListPolicyAttachments(account_id));
  std::vector<iam::Policy> out;
  for (const auto& a : attached) {
    if (a.policy_name == "administrator") {
      out.push_back(iam::AdministratorPolicy());
    } else if (a.policy_name == "member") {
      out.push_back(iam::MemberPolicy());
    } else {
      ASSIGN_OR_RETURN(IamPolicyRecord rec, catalog_->GetIamPolicy(a.policy_name));
      auto p = iam::Policy::Parse(rec.document, rec.name);
      if (!p) return Corruption("stored policy " + rec.name + " no longer parses: " + p.error().message());
      out.push_back(std::move(*p));
    }
  }
  return out;
}

Result<std::shared_ptr<const Identity>> Accounts::Identify(const std::string& access_key_id) {
  ASSIGN_OR_RETURN(int64_t version, catalog_->DataVersion());
  {
    std::lock_guard lock(cache_mu_);
    if (version != cache_version_) {
      cache_.clear();
      cache_version_ = version;
    }
    if (auto it = cache_.find(access_key_id); it != cache_.end()) return it->second;
  }
  auto id = std::make_shared<Identity>();
  ASSIGN_OR_RETURN(id->key, Lookup(access_key_id));
  ASSIGN_OR_RETURN(id->account, catalog_->GetAccount(id->key.account_id));
  ASSIGN_OR_RETURN(id->policies, PoliciesOf(id->key.account_id));
  std::lock_guard lock(cache_mu_);
  if (cache_version_ == version && cache_.size() < 100000) cache_.emplace(access_key_id, id);
  return std::shared_ptr<const Identity>(std::move(id));
}

std::string Accounts::CredentialsProfile(const std::string& profile, const NewAccessKey& key) {
  return "[" + profile + "]\naws_access_key_id = " + key.access_key_id +
         "\naws_secret_access_key = " + key.secret_access_key + "\n";
}

}  // namespace snapvol
