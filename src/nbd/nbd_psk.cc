#include "nbd/nbd_psk.h"

#include "core/hash.h"

namespace snapvol::nbd {

std::vector<uint8_t> PskForSecret(std::string_view secret_access_key) {
  Digest d = HmacSha256(AsBytes(secret_access_key), AsBytes("snapvol nbd-psk v1"));
  return std::vector<uint8_t>(d.begin(), d.end());
}

std::string PskFileLine(std::string_view identity, std::span<const uint8_t> key) {
  return std::string(identity) + ":" + ToHex(key) + "\n";
}

}  // namespace snapvol::nbd
