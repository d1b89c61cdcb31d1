#include "core/ids.h"

#include <array>

#include "core/hash.h"

namespace snapvol {
namespace {

std::string PrefixedId(const char* prefix) {
  std::array<uint8_t, 9> raw{};
  (void)RandomBytes(raw);  // RAND_bytes does not fail once OpenSSL is seeded.
  return std::string(prefix) + ToHex(raw).substr(0, 17);
}

// 17 hex digits, or the 8 of ids made before 2016 (vol-1234abcd), which EC2 still accepts.
bool HasHexSuffix(std::string_view s, std::string_view prefix) {
  if ((s.size() != prefix.size() + 17 && s.size() != prefix.size() + 8) || s.substr(0, prefix.size()) != prefix)
    return false;
  for (char c : s.substr(prefix.size()))
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

}  // namespace

std::string NewSnapshotId() { return PrefixedId("snap-"); }
std::string NewVolumeId() { return PrefixedId("vol-"); }
std::string NewInstanceId() { return PrefixedId("i-"); }
std::string NewReplaceRootVolumeTaskId() { return PrefixedId("replacevol-"); }
std::string NewHostId() { return PrefixedId("host-"); }

std::string NewAccountId() {
  std::array<uint8_t, 12> raw{};
  (void)RandomBytes(raw);
  std::string out(12, '0');
  out[0] = static_cast<char>('1' + raw[0] % 9);  // no leading zero
  for (size_t i = 1; i < 12; ++i) out[i] = static_cast<char>('0' + raw[i] % 10);
  return out;
}

bool IsSnapshotId(std::string_view s) { return HasHexSuffix(s, "snap-"); }
bool IsVolumeId(std::string_view s) { return HasHexSuffix(s, "vol-"); }
bool IsInstanceId(std::string_view s) { return HasHexSuffix(s, "i-"); }
bool IsReplaceRootVolumeTaskId(std::string_view s) {
  return s.size() == 11 + 17 && HasHexSuffix(s, "replacevol-");
}
bool IsHostId(std::string_view s) { return s.size() == 5 + 17 && HasHexSuffix(s, "host-"); }
bool IsDeviceName(std::string_view s) {
  return s.size() >= 6 && s.size() <= 32 && s.starts_with("/dev/") &&
         s.find_first_not_of("/abcdefghijklmnopqrstuvwxyz0123456789") == std::string_view::npos;
}
bool IsAccountId(std::string_view s) {
  if (s.size() != 12) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

}  // namespace snapvol
