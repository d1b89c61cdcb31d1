// Store encryption keys and AES-256-GCM, on OpenSSL.
//
// A store created with encryption has one 32-byte master key (kept in the data dir, never in
// the store). HKDF-SHA256 derives from it a data key (AES-256-GCM), an id key (HMAC-SHA256
// object ids, so equal plaintext under different keys never shares an id) and a check key
// (a value in the store config that tells a wrong key from a right one).
// Thread-safety: KeySet is immutable after creation; functions are safe from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "core/hash.h"
#include "core/status.h"

namespace snapvol {

using Key256 = std::array<uint8_t, 32>;

struct KeySet {
  Key256 data_key;
  Key256 id_key;
  Key256 check_key;
  static Result<KeySet> Derive(const Key256& master);
  // HMAC of a fixed string under check_key, stored in the store config.
  Digest KeyCheckValue() const;
};

inline constexpr size_t kGcmNonceBytes = 12;
inline constexpr size_t kGcmTagBytes = 16;

// Appends nonce || ciphertext || tag to out. aad is authenticated but not encrypted.
Status AesGcmEncrypt(const Key256& key, std::span<const uint8_t> plain,
                     std::span<const uint8_t> aad, std::vector<uint8_t>& out);
// in = nonce || ciphertext || tag. Corruption when authentication fails.
Result<std::vector<uint8_t>> AesGcmDecrypt(const Key256& key, std::span<const uint8_t> in,
                                           std::span<const uint8_t> aad);

}  // namespace snapvol
