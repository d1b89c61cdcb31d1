// SHA-256 and HMAC-SHA256 (OpenSSL; uses SHA-NI where the CPU has it) and hex helpers.
// Thread-safety: free functions, safe from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>

#include "core/status.h"

namespace snapvol {

using Digest = std::array<uint8_t, 32>;

// Ids are uniform already: their first bytes are a hash.
struct DigestHash {
  size_t operator()(const Digest& d) const {
    size_t h;
    std::memcpy(&h, d.data(), sizeof h);
    return h;
  }
};
using DigestSet = std::unordered_set<Digest, DigestHash>;

Digest Sha256(std::span<const uint8_t> data);
Digest HmacSha256(std::span<const uint8_t> key, std::span<const uint8_t> data);
bool IsZeroDigest(const Digest& d);

std::string ToHex(std::span<const uint8_t> data);
// Parses exactly 2*out.size() hex digits.
Status FromHex(std::string_view hex, std::span<uint8_t> out);
Result<Digest> DigestFromHex(std::string_view hex);

// Constant-time comparison of equal-length buffers.
bool ConstantTimeEqual(std::span<const uint8_t> a, std::span<const uint8_t> b);

// Fills out with cryptographically secure random bytes.
Status RandomBytes(std::span<uint8_t> out);

inline std::span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace snapvol
