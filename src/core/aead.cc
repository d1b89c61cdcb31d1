#include "core/aead.h"

#include <fcntl.h>
#include <openssl/evp.h>

#include <algorithm>
#include <memory>

#include "core/file_util.h"
#include "core/hash.h"

namespace snapvol {
namespace {
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;
}  // namespace

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

Result<std::string> SealToHex(const Key256& key, const std::string& secret,
                              const std::string& context) {
  std::vector<uint8_t> out;
  RETURN_IF_ERROR(AesGcmEncrypt(key, AsBytes(secret), AsBytes(context), out));
  return ToHex(out);
}

Result<std::string> OpenFromHex(const Key256& key, const std::string& sealed,
                                const std::string& context) {
  if (sealed.size() % 2 != 0) return Corruption("sealed secret is not hex");
  std::vector<uint8_t> raw(sealed.size() / 2);
  RETURN_IF_ERROR(FromHex(sealed, raw));
  ASSIGN_OR_RETURN(auto plain, AesGcmDecrypt(key, raw, AsBytes(context)));
  return std::string(plain.begin(), plain.end());
}

Result<std::optional<Key256>> ReadKeyFile(const std::string& path) {
  auto raw = ReadWholeFile(path);
  if (!raw) {
    if (raw.error().code() == ErrorCode::kNotFound) return std::optional<Key256>{};
    return std::unexpected(raw.error());
  }
  std::string hex(raw->begin(), raw->end());
  while (!hex.empty() && (hex.back() == '\n' || hex.back() == ' ')) hex.pop_back();
  Key256 key;
  if (!FromHex(hex, key)) return Corruption(path + " does not hold a 64-digit hex key");
  return std::optional<Key256>(key);
}

Result<Key256> LoadOrCreateKeyFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::optional<Key256> existing, ReadKeyFile(path));
  if (existing) return *existing;
  Key256 key;
  RETURN_IF_ERROR(RandomBytes(key));
  std::string hex = ToHex(key) + "\n";
  RETURN_IF_ERROR(WriteFileAtomic(path, AsBytes(hex), 0600));
  return key;
}

}  // namespace snapvol
