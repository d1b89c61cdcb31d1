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

#include "core/aead.h"
#include "core/hash.h"
#include "core/status.h"

namespace snapvol {

struct KeySet {
  Key256 data_key;
  Key256 id_key;
  Key256 check_key;
  static Result<KeySet> Derive(const Key256& master);
  // HMAC of a fixed string under check_key, stored in the store config.
  Digest KeyCheckValue() const;
};

}  // namespace snapvol
