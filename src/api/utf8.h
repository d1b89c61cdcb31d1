// Strict UTF-8 decoding shared by the api layer (request validation, XML escaping, wildcard
// matching). Rejects overlong forms, UTF-16 surrogates (U+D800..U+DFFF), code points above
// U+10FFFF, stray continuation bytes and truncated sequences.
// Thread-safety: pure functions; safe from any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace snapvol::api {

// Decodes the code point starting at s[pos]. On success stores it in *cp and returns its
// length in bytes (1..4); returns 0 when the bytes there are not well-formed UTF-8.
// REQUIRES: pos < s.size().
size_t DecodeUtf8(std::string_view s, size_t pos, char32_t* cp);

bool IsValidUtf8(std::string_view s);

// Appends the UTF-8 encoding of cp. REQUIRES: cp is a Unicode scalar value.
void AppendUtf8(std::string* out, char32_t cp);

}  // namespace snapvol::api
