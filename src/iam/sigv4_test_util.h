// Test support for the SigV4 tests: the time and empty-payload hash of AWS's published test
// suite, and a SecretLookup over a fixed map of keys.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "iam/sigv4.h"

namespace snapvol::iam::sigv4_testing {

inline constexpr int64_t kSuiteTime = 1440938160000;  // 20150830T123600Z
inline constexpr char kEmptyHash[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

inline SecretLookup LookupFor(std::map<std::string, SecretInfo> keys) {
  return [keys = std::move(keys)](std::string_view akid) -> Result<SecretInfo> {
    auto it = keys.find(std::string(akid));
    if (it == keys.end()) return NotFound("no access key " + std::string(akid));
    return it->second;
  };
}

}  // namespace snapvol::iam::sigv4_testing
