// Keys by purpose: every key snapvol uses for one job is derived from the data dir's
// secrets key (DIR/secrets.key) with HKDF-SHA256 (RFC 5869) and a label naming that job, so a
// key exposed through one use (page tokens carry MACs made with theirs) tells nothing about
// another (the key that seals access-key secrets in the catalog). Also the sealed-secret
// format that uses the derived key while still opening secrets sealed before it existed.
// Thread-safety: free functions, safe from any thread.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "core/aead.h"
#include "core/status.h"

namespace snapvol {

enum class KeyPurpose {
  kSealSecrets,  // AES-256-GCM of access-key secrets stored in the catalog
  kPageTokens,   // HMAC of DescribeSnapshots' NextToken (api/filters.h PageTokenCodec)
  kEbsTokens,    // HMAC of the EBS direct APIs' BlockToken and NextToken (api/ebs_tokens.h)
};

// The HKDF info label of a purpose, e.g. "snapvol/v1/seal-secrets". Never change a label: a
// new one derives a different key, and what the old key sealed no longer opens.
std::string_view KeyPurposeLabel(KeyPurpose purpose);

// HKDF-SHA256 (extract, then expand) of ikm with salt and info, 32 bytes of output.
// kInternal only if OpenSSL fails.
Result<Key256> HkdfSha256(std::span<const uint8_t> ikm, std::span<const uint8_t> salt, std::string_view info);

// The key for purpose, derived from the secrets key root (no salt: root is already uniformly
// random; the label alone separates purposes).
Result<Key256> DeriveKey(const Key256& root, KeyPurpose purpose);

// Sealed secrets (hex text for a database column), in two formats:
//   "k1:" + hex(nonce || ciphertext || tag) under DeriveKey(root, kSealSecrets) — written now;
//   hex(...) without a prefix under root itself — written before keys by purpose (legacy).
// A value is opened only with the key its format names, never with both.
inline constexpr std::string_view kSealedSecretPrefix = "k1:";
Result<std::string> SealSecret(const Key256& root, const std::string& secret, const std::string& context);
struct OpenedSecret {
  std::string secret;
  bool legacy = false;  // sealed under the root key: re-seal it with SealSecret
};
// kCorruption when the value is not one of the two formats or does not authenticate.
Result<OpenedSecret> OpenSecret(const Key256& root, const std::string& sealed, const std::string& context);

}  // namespace snapvol
