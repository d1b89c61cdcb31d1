// ChunkCodec turns plaintext (a volume block, an index page, a manifest root) into the bytes
// stored in an object and back: zstd (raw when it does not pay, or when samples show a
// chunk to be incompressible), AES-256-GCM when the store is encrypted, and an XXH3-128
// checksum over everything so verify finds damage without the key (docs/store-format.md):
//
//   0  "SVOB"   4  version u8   5  kind u8   6  flags u8 (1 zstd, 2 aes-256-gcm)   7  0
//   8  plaintext length u32      12 payload length u32
//   16 payload (nonce || ciphertext || tag when encrypted)
//   16+n checksum: XXH3-128 of bytes [0, 16+n), little endian (low 64 bits first)
//
// Ids are SHA-256 of the plaintext, or HMAC-SHA256 under the id key when encrypted.
// Thread-safety: a ChunkCodec is immutable; all methods are safe from many threads.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "core/hash.h"
#include "store/crypto.h"

namespace snapvol {

// kPackIndex: the index at the end of a format-2 pack (store/pack.h); kStoreIndex: a
// packindex/ object, the entries of the packs one writer published (store/packed_objects.h).
enum class ObjectKind : uint8_t { kChunk = 1, kIndexPage = 2, kManifestRoot = 3, kPackIndex = 4, kStoreIndex = 5 };

inline constexpr uint8_t kObjectFormatVersion = 1;
inline constexpr size_t kObjectHeaderBytes = 16;
inline constexpr size_t kObjectChecksumBytes = 16;
inline constexpr uint32_t kMaxPlaintextBytes = 64u << 20;

class ChunkCodec {
 public:
  // keys == nullopt: a plain store. zstd_level 1 is the default.
  explicit ChunkCodec(std::optional<KeySet> keys, int zstd_level = 1)
      : keys_(std::move(keys)), zstd_level_(zstd_level) {}

  bool encrypted() const { return keys_.has_value(); }
  Digest Id(std::span<const uint8_t> plain) const;

  // Encodes plain as an object of the given kind. bind is authenticated with the payload when
  // encrypted (the object's id, or for a root a digest of its key), so objects cannot be
  // swapped.
  Result<std::vector<uint8_t>> Encode(ObjectKind kind, const Digest& bind,
                                      std::span<const uint8_t> plain) const;

  // Checks the checksum, decrypts, decompresses into out (which must be exactly the plaintext
  // length, see PlainLength) and, when verify_id, checks that Id(out) == bind.
  // Corruption on any mismatch; Unsupported for a newer format version or a missing key.
  Status DecodeInto(ObjectKind kind, const Digest& bind, std::span<const uint8_t> stored,
                    std::span<uint8_t> out, bool verify_id) const;
  Result<std::vector<uint8_t>> Decode(ObjectKind kind, const Digest& bind,
                                      std::span<const uint8_t> stored, bool verify_id) const;

  // Header and checksum checks only; needs no key. Returns the plaintext length.
  static Result<uint32_t> CheckIntegrity(std::span<const uint8_t> stored,
                                         std::optional<ObjectKind> kind = std::nullopt);

 private:
  std::optional<KeySet> keys_;
  int zstd_level_;
};

}  // namespace snapvol
