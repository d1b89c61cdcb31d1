// AES-256-GCM authenticated encryption (OpenSSL), for store objects and sealed secrets.
// Thread-safety: free functions, safe from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace snapvol {

using Key256 = std::array<uint8_t, 32>;

inline constexpr size_t kGcmNonceBytes = 12;
inline constexpr size_t kGcmTagBytes = 16;

// Appends nonce || ciphertext || tag to out. aad is authenticated but not encrypted.
Status AesGcmEncrypt(const Key256& key, std::span<const uint8_t> plain,
                     std::span<const uint8_t> aad, std::vector<uint8_t>& out);
// in = nonce || ciphertext || tag. Corruption when authentication fails.
Result<std::vector<uint8_t>> AesGcmDecrypt(const Key256& key, std::span<const uint8_t> in,
                                           std::span<const uint8_t> aad);

// A small secret sealed under key as hex text (for storing in a database), and back.
Result<std::string> SealToHex(const Key256& key, const std::string& secret, const std::string& context);
Result<std::string> OpenFromHex(const Key256& key, const std::string& sealed, const std::string& context);

// Reads a 64-hex-digit key from path; nullopt when the file does not exist.
Result<std::optional<Key256>> ReadKeyFile(const std::string& path);
// Reads a 64-hex-digit key from path, creating it (mode 0600) with a random key if absent.
Result<Key256> LoadOrCreateKeyFile(const std::string& path);

}  // namespace snapvol
