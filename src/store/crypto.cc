#include "store/crypto.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include <memory>
#include <string_view>

namespace snapvol {
namespace {

Status Hkdf(const Key256& master, std::string_view info, Key256& out) {
  std::unique_ptr<EVP_KDF, decltype(&EVP_KDF_free)> kdf(EVP_KDF_fetch(nullptr, "HKDF", nullptr),
                                                        EVP_KDF_free);
  if (!kdf) return Internal("OpenSSL has no HKDF");
  std::unique_ptr<EVP_KDF_CTX, decltype(&EVP_KDF_CTX_free)> ctx(EVP_KDF_CTX_new(kdf.get()),
                                                                EVP_KDF_CTX_free);
  static const char kSalt[] = "snapvol-store-v1";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(master.data()),
                                        master.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<char*>(kSalt),
                                        sizeof kSalt - 1),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char*>(info.data()),
                                        info.size()),
      OSSL_PARAM_construct_end()};
  if (!ctx || EVP_KDF_derive(ctx.get(), out.data(), out.size(), params) != 1)
    return Internal("HKDF derivation failed");
  return OkStatus();
}

}  // namespace

Result<KeySet> KeySet::Derive(const Key256& master) {
  KeySet k{};
  RETURN_IF_ERROR(Hkdf(master, "data key", k.data_key));
  RETURN_IF_ERROR(Hkdf(master, "id key", k.id_key));
  RETURN_IF_ERROR(Hkdf(master, "check key", k.check_key));
  return k;
}

Digest KeySet::KeyCheckValue() const {
  return HmacSha256(check_key, AsBytes("snapvol key check v1"));
}

}  // namespace snapvol
