// Text helpers that SigV4 verification (sigv4.cc) and its building blocks
// (sigv4_canonical.cc) share: trimming and splitting header values, digits and hex, calendar
// dates, and a raw query string decoded into its parameters. Internal to snapvol_iam.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace snapvol::iam::sigv4_text {

inline constexpr std::string_view kWhitespace = " \t\r\n";

std::string_view Trim(std::string_view s);                       // without leading/trailing kWhitespace
std::vector<std::string_view> Split(std::string_view s, char sep);  // every piece, empty ones too
bool IsDigits(std::string_view s);                               // non-empty, 0-9 only
int HexValue(char c);                                            // 0-15, or -1 for a non-hex character
// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's civil algorithm).
int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d);
int ParseInt(std::string_view s);                                // REQUIRES IsDigits(s), short
std::string HexSha256(std::string_view data);                    // lower-case hex
std::string JoinSemicolon(const std::vector<std::string>& names);  // a;b;c

struct QueryParam {
  std::string name;
  std::string value;
};
// name=value pairs split at '&', each percent-decoded; empty pieces skipped. kInvalidArgument
// for a bad escape.
Result<std::vector<QueryParam>> ParseQuery(std::string_view raw_query);

}  // namespace snapvol::iam::sigv4_text
