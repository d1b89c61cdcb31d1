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

using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

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

Status AesGcmEncrypt(const Key256& key, std::span<const uint8_t> plain,
                     std::span<const uint8_t> aad, std::vector<uint8_t>& out) {
  uint8_t nonce[kGcmNonceBytes];
  RETURN_IF_ERROR(RandomBytes(nonce));
  CipherCtx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  int len = 0;
  size_t start = out.size();
  out.resize(start + kGcmNonceBytes + plain.size() + kGcmTagBytes);
  uint8_t* p = out.data() + start;
  std::copy(nonce, nonce + kGcmNonceBytes, p);
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), nonce) != 1 ||
      (!aad.empty() &&
       EVP_EncryptUpdate(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1) ||
      EVP_EncryptUpdate(ctx.get(), p + kGcmNonceBytes, &len, plain.data(),
                        static_cast<int>(plain.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), p + kGcmNonceBytes + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kGcmTagBytes,
                          p + kGcmNonceBytes + plain.size()) != 1)
    return Internal("AES-256-GCM encryption failed");
  return OkStatus();
}

Result<std::vector<uint8_t>> AesGcmDecrypt(const Key256& key, std::span<const uint8_t> in,
                                           std::span<const uint8_t> aad) {
  if (in.size() < kGcmNonceBytes + kGcmTagBytes) return Corruption("encrypted payload is truncated");
  size_t clen = in.size() - kGcmNonceBytes - kGcmTagBytes;
  std::vector<uint8_t> out(clen);
  CipherCtx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  int len = 0;
  uint8_t tag[kGcmTagBytes];
  std::copy(in.end() - kGcmTagBytes, in.end(), tag);
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), in.data()) != 1)
    return Internal("AES-256-GCM setup failed");
  if ((!aad.empty() &&
       EVP_DecryptUpdate(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1) ||
      EVP_DecryptUpdate(ctx.get(), out.data(), &len, in.data() + kGcmNonceBytes,
                        static_cast<int>(clen)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kGcmTagBytes, tag) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), out.data() + len, &len) != 1)
    return Corruption("decryption failed: wrong key or damaged data");
  return out;
}

}  // namespace snapvol
