// Keys by purpose (see key_derivation.h).
#include "core/key_derivation.h"

#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <memory>

namespace snapvol {

std::string_view KeyPurposeLabel(KeyPurpose purpose) {
  switch (purpose) {
    case KeyPurpose::kSealSecrets:
      return "snapvol/v1/seal-secrets";
    case KeyPurpose::kPageTokens:
      return "snapvol/v1/page-tokens";
    case KeyPurpose::kEbsTokens:
      return "snapvol/v1/ebs-tokens";
  }
  return "snapvol/v1/unknown";
}

Result<Key256> HkdfSha256(std::span<const uint8_t> ikm, std::span<const uint8_t> salt, std::string_view info) {
  struct KdfFree {
    void operator()(EVP_KDF* k) const { EVP_KDF_free(k); }
    void operator()(EVP_KDF_CTX* c) const { EVP_KDF_CTX_free(c); }
  };
  std::unique_ptr<EVP_KDF, KdfFree> kdf(EVP_KDF_fetch(nullptr, OSSL_KDF_NAME_HKDF, nullptr));
  if (!kdf) return Internal("HKDF is not available in this OpenSSL");
  std::unique_ptr<EVP_KDF_CTX, KdfFree> ctx(EVP_KDF_CTX_new(kdf.get()));
  if (!ctx) return Internal("cannot allocate an HKDF context");
  char digest[] = "SHA256";
  // OSSL_PARAM takes non-const pointers; OpenSSL only reads them.
  auto* ikm_p = const_cast<uint8_t*>(ikm.data());
  auto* salt_p = const_cast<uint8_t*>(salt.data());
  auto* info_p = const_cast<char*>(info.data());
  // No salt parameter at all for an empty salt: OpenSSL refuses an empty one, and RFC 5869
  // defines a missing salt as HashLen zero bytes, which is what it then uses.
  OSSL_PARAM params[5];
  size_t n = 0;
  params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
  params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, ikm_p, ikm.size());
  if (!salt.empty()) params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, salt_p, salt.size());
  params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info_p, info.size());
  params[n] = OSSL_PARAM_construct_end();
  Key256 out{};
  if (EVP_KDF_derive(ctx.get(), out.data(), out.size(), params) != 1) return Internal("HKDF-SHA256 failed");
  return out;
}

Result<Key256> DeriveKey(const Key256& root, KeyPurpose purpose) {
  return HkdfSha256(root, {}, KeyPurposeLabel(purpose));
}

Result<std::string> SealSecret(const Key256& root, const std::string& secret, const std::string& context) {
  ASSIGN_OR_RETURN(Key256 key, DeriveKey(root, KeyPurpose::kSealSecrets));
  ASSIGN_OR_RETURN(std::string hex, SealToHex(key, secret, context));
  return std::string(kSealedSecretPrefix) + hex;
}

Result<OpenedSecret> OpenSecret(const Key256& root, const std::string& sealed, const std::string& context) {
  if (sealed.starts_with(kSealedSecretPrefix)) {
    ASSIGN_OR_RETURN(Key256 key, DeriveKey(root, KeyPurpose::kSealSecrets));
    ASSIGN_OR_RETURN(std::string secret, OpenFromHex(key, sealed.substr(kSealedSecretPrefix.size()), context));
    return OpenedSecret{std::move(secret), false};
  }
  ASSIGN_OR_RETURN(std::string secret, OpenFromHex(root, sealed, context));
  return OpenedSecret{std::move(secret), true};
}

}  // namespace snapvol
