#include "core/system_tags.h"

#include <algorithm>

namespace snapvol {

bool HasReservedTagPrefix(std::string_view key) {
  constexpr std::string_view kPrefix = kReservedTagPrefix;
  if (key.size() < kPrefix.size()) return false;
  return std::equal(kPrefix.begin(), kPrefix.end(), key.begin(), [](char want, char c) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return c == want;
  });
}

bool IsSystemTagKey(std::string_view key) {
  if (key == kEvacuatedFromTag) return true;  // newer than the rename: no legacy key
  return std::any_of(std::begin(kLegacySystemTags), std::end(kLegacySystemTags),
                     [&](const auto& entry) { return entry.second == key; });
}

std::string_view CurrentSystemTagKey(std::string_view key) {
  for (const auto& [old_key, new_key] : kLegacySystemTags)
    if (old_key == key) return new_key;
  return key;
}

}  // namespace snapvol
