// The EBS direct APIs' tokens. A BlockToken names one block of one snapshot until a short
// expiry: base64 of the expiry (ms, 8 bytes big-endian) and an HMAC-SHA256 (truncated to 24
// bytes) over the snapshot id, the block index and that expiry, under a key derived from the
// daemon's secrets key. A token for another block or snapshot, altered, or past its expiry
// does not verify. A NextToken carries the next block index of one listing (the snapshot ids
// it compares), signed the same way, so a client cannot point it at another listing.
// Thread-safety: immutable after construction.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/hash.h"
#include "core/key_derivation.h"

namespace snapvol::api {

std::string Base64Encode(std::span<const uint8_t> in);
// Standard alphabet with padding; nullopt when malformed.
std::optional<std::vector<uint8_t>> Base64Decode(std::string_view in);

class EbsTokenCodec {
 public:
  explicit EbsTokenCodec(const Key256& key) : key_(key) {}
  std::string Block(const std::string& snapshot_id, uint64_t index, int64_t expiry_ms) const;
  // Whether token names this block and has not expired at now_ms.
  bool CheckBlock(std::string_view token, const std::string& snapshot_id, uint64_t index, int64_t now_ms) const;
  // listing: what the page belongs to (e.g. "blocks snap-…" or "changed snap-a snap-b").
  std::string Page(const std::string& listing, uint64_t next_index) const;
  // The next index, or nullopt when token is not one of this listing's.
  std::optional<uint64_t> CheckPage(std::string_view token, const std::string& listing) const;

 private:
  Digest Mac(std::string_view what) const;
  Key256 key_;
};

}  // namespace snapvol::api
