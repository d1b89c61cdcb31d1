// The NBD TLS pre-shared key of an API access key, and the PSK file line clients read.
//
// The key is HMAC-SHA256(secret access key, "snapvol nbd-psk v1"): whoever holds an access
// key's secret can compute it (snapvol nbd connect does), the daemon derives the same from
// the sealed secret it keeps, and the PSK is never the API secret itself. The PSK identity
// is the access key id. File format (GnuTLS psktool's, which qemu's tls-creds-psk, nbdkit
// and libnbd read): one "identity:hexkey" line per key.
// Thread-safety: free functions.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace snapvol::nbd {

std::vector<uint8_t> PskForSecret(std::string_view secret_access_key);
std::string PskFileLine(std::string_view identity, std::span<const uint8_t> key);

}  // namespace snapvol::nbd
