// The parts of the PostgreSQL backend with no server in them (catalog_postgres.h): `?`
// numbering, the SQLSTATE → Error mapping and the URL's password redaction.
#include <algorithm>
#include <cctype>
#include <cstring>
#include <string>
#include <string_view>

#include "catalog/catalog_postgres.h"

namespace snapvol::catalog_internal {

ErrorInfo ClassifySqlState(std::string_view state, std::string_view constraint,
                           bool connection_lost) {
  if (connection_lost || state.empty()) {
    // No SQLSTATE: libpq's own failure (a lost connection, nothing sent).
    return {ErrorCode::kIoError, connection_lost, Violation::kNone};
  }
  const std::string_view cls = state.substr(0, 2);
  if (state == "23505") {
    const bool pkey = constraint.size() >= 5 && constraint.substr(constraint.size() - 5) == "_pkey";
    return {ErrorCode::kAlreadyExists, false, pkey ? Violation::kPrimaryKey : Violation::kUnique};
  }
  if (state == "23503") return {ErrorCode::kInvalidArgument, false, Violation::kForeignKey};
  if (cls == "23") return {ErrorCode::kInvalidArgument, false, Violation::kOther};
  // Serialization failure, deadlock, lock not available, statement timeout / cancel, the
  // server shutting down or not up yet, connection exceptions: worth another try.
  if (state == "40001" || state == "40P01" || state == "55P03" || state == "57014" || cls == "57" ||
      cls == "08") {
    return {ErrorCode::kIoError, true, Violation::kNone};
  }
  if (state == "53100") return {ErrorCode::kNoSpace, false, Violation::kNone};
  if (cls == "53") return {ErrorCode::kIoError, true, Violation::kNone};  // memory, connections
  if (state == "XX001" || state == "XX002")
    return {ErrorCode::kCorruption, false, Violation::kNone};
  if (cls == "42") return {ErrorCode::kInternal, false, Violation::kNone};
  return {ErrorCode::kIoError, false, Violation::kNone};
}

std::string NumberParameters(std::string_view sql, int* count) {
  std::string out;
  out.reserve(sql.size() + 16);
  int n = 0;
  // Copies sql[i, end) and continues after it; end is clamped to the text.
  auto copy_to = [&](size_t i, size_t end) {
    end = std::min(end, sql.size());
    out.append(sql.substr(i, end - i));
    return end;
  };
  size_t i = 0;
  while (i < sql.size()) {
    const char c = sql[i];
    const char next = i + 1 < sql.size() ? sql[i + 1] : '\0';
    if (c == '\'' || c == '"') {
      // A doubled quote inside ends one literal and starts the next: same result.
      size_t close = sql.find(c, i + 1);
      i = copy_to(i, close == std::string_view::npos ? sql.size() : close + 1);
    } else if (c == '-' && next == '-') {
      size_t eol = sql.find('\n', i);
      i = copy_to(i, eol == std::string_view::npos ? sql.size() : eol + 1);
    } else if (c == '/' && next == '*') {
      size_t close = sql.find("*/", i + 2);
      i = copy_to(i, close == std::string_view::npos ? sql.size() : close + 2);
    } else if (c == '?') {
      out += '$';
      out += std::to_string(++n);
      ++i;
    } else {
      out += c;
      ++i;
    }
  }
  if (count != nullptr) *count = n;
  return out;
}

bool MayWrite(std::string_view sql) {
  auto word_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_'; };
  auto upper_word = [&](std::string_view text, size_t at, size_t* end) {
    std::string word;
    while (at < text.size() && word_char(text[at])) {
      word += static_cast<char>(std::toupper(static_cast<unsigned char>(text[at])));
      ++at;
    }
    *end = at;
    return word;
  };
  auto writes = [](const std::string& w) {
    return w == "INSERT" || w == "UPDATE" || w == "DELETE" || w == "MERGE";
  };
  size_t at = 0;
  while (at < sql.size() && (std::isspace(static_cast<unsigned char>(sql[at])) != 0 || sql[at] == '(')) {
    ++at;
  }
  size_t end = at;
  const std::string first = upper_word(sql, at, &end);
  if (writes(first)) return true;
  if (first != "WITH") return false;
  for (at = end; at < sql.size();) {
    if (!word_char(sql[at])) {
      ++at;
      continue;
    }
    if (writes(upper_word(sql, at, &end))) return true;
    at = end;
  }
  return false;
}

std::string RedactPassword(std::string_view url) {
  std::string out(url);
  const size_t scheme = out.find("://");
  if (scheme != std::string::npos) {
    const size_t start = scheme + 3;
    size_t end = out.find_first_of("/?", start);
    if (end == std::string::npos) end = out.size();
    const size_t at = out.rfind('@', end);
    if (at != std::string::npos && at >= start) {
      const size_t colon = out.find(':', start);
      if (colon != std::string::npos && colon < at) out.erase(colon, at - colon);
    }
  }
  // password=… as a URI query parameter or a key=value pair (possibly 'quoted').
  size_t from = 0;
  while ((from = out.find("password=", from)) != std::string::npos) {
    const bool key_start = from == 0 || out[from - 1] == '?' || out[from - 1] == '&' ||
                           out[from - 1] == ' ' || out[from - 1] == '\t';
    const size_t value = from + std::strlen("password=");
    if (!key_start) {
      from = value;
      continue;
    }
    size_t end = value;
    if (end < out.size() && out[end] == '\'') {
      ++end;
      while (end < out.size() && out[end] != '\'') end += out[end] == '\\' ? 2 : 1;
      end = std::min(end + 1, out.size());
    } else {
      while (end < out.size() && out[end] != '&' && out[end] != ' ' && out[end] != '\t') ++end;
    }
    out.replace(value, end - value, "***");
    from = value + 3;
  }
  return out;
}

}  // namespace snapvol::catalog_internal
