#include "api/xml_writer.h"

#include <cassert>

#include "api/utf8.h"
#include "core/clock.h"

namespace snapvol::api {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// XML 1.0 Char ::= #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF].
// Surrogates never reach here (DecodeUtf8 rejects them).
bool IsXmlChar(char32_t cp) {
  if (cp < 0x20) return cp == 0x9 || cp == 0xA || cp == 0xD;
  return cp != 0xFFFE && cp != 0xFFFF;
}

// The reference that replaces an ASCII character in text and attribute values, or nullptr.
// CR is written as a reference because parsers turn a literal CR (and CRLF) into LF.
const char* EntityFor(char c) {
  switch (c) {
    case '&':
      return "&amp;";
    case '<':
      return "&lt;";
    case '>':
      return "&gt;";
    case '"':
      return "&quot;";
    case '\'':
      return "&apos;";
    case '\r':
      return "&#xD;";
    default:
      return nullptr;
  }
}

}  // namespace

XmlWriter::XmlWriter(bool with_declaration) {
  out_.reserve(16 << 10);  // a page of snapshots is tens of KiB: grow from here, not from 15 bytes
  if (with_declaration) {
    out_.append(kXmlDeclaration);
    out_.push_back('\n');
  }
}

void XmlWriter::AppendEscaped(std::string* out, std::string_view text) {
  // Printable ASCII other than the five XML specials needs no work: copy such runs whole (most
  // values, ids and tags are all of it), and decode only what is left.
  auto plain = [](unsigned char c) {
    return c >= 0x20 && c < 0x7f && c != '<' && c != '>' && c != '&' && c != '"' && c != '\'';
  };
  size_t i = 0;
  while (i < text.size()) {
    size_t run = i;
    while (run < text.size() && plain(static_cast<unsigned char>(text[run]))) ++run;
    if (run > i) {
      out->append(text.data() + i, run - i);
      i = run;
      continue;
    }
    if (const char* entity = EntityFor(text[i])) {
      out->append(entity);
      ++i;
      continue;
    }
    char32_t cp;
    const size_t n = DecodeUtf8(text, i, &cp);
    if (n == 0) {  // not well-formed UTF-8: replace this one byte and resynchronise
      out->append(kReplacement);
      ++i;
    } else if (!IsXmlChar(cp)) {
      out->append(kReplacement);
      i += n;
    } else {
      out->append(text.substr(i, n));
      i += n;
    }
  }
}

std::string XmlWriter::Escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  AppendEscaped(&out, text);
  return out;
}

void XmlWriter::Open(std::string_view name) {
  out_.push_back('<');
  out_.append(name);
  out_.push_back('>');
  open_.emplace_back(name);
}

void XmlWriter::OpenWithNamespace(std::string_view name, std::string_view xmlns) {
  out_.push_back('<');
  out_.append(name);
  out_.append(" xmlns=\"");
  AppendEscaped(&out_, xmlns);
  out_.append("\">");
  open_.emplace_back(name);
}

void XmlWriter::Close() {
  assert(!open_.empty());
  if (open_.empty()) return;
  out_.append("</");
  out_.append(open_.back());
  out_.push_back('>');
  open_.pop_back();
}

void XmlWriter::Text(std::string_view name, std::string_view text) {
  out_.push_back('<');
  out_.append(name);
  out_.push_back('>');
  AppendEscaped(&out_, text);
  out_.append("</");
  out_.append(name);
  out_.push_back('>');
}

void XmlWriter::Bool(std::string_view name, bool value) { Text(name, value ? "true" : "false"); }

void XmlWriter::Int(std::string_view name, int64_t value) { Text(name, std::to_string(value)); }

void XmlWriter::Timestamp(std::string_view name, int64_t millis) {
  Text(name, FormatIso8601(millis));
}

std::string XmlWriter::Finish() && {
  while (!open_.empty()) Close();
  return std::move(out_);
}

XmlWriter BeginEc2Response(std::string_view action, std::string_view request_id) {
  XmlWriter w;
  w.OpenWithNamespace(std::string(action) + "Response", kEc2Namespace);
  w.Text("requestId", request_id);
  return w;
}

XmlResponse RenderErrorResponse(const ApiError& error, std::string_view request_id) {
  XmlWriter w;
  w.Open("Response");
  w.Open("Errors");
  w.Open("Error");
  w.Text("Code", error.code);
  w.Text("Message", error.message);
  w.Close();
  w.Close();
  w.Text("RequestID", request_id);
  return XmlResponse{error.http_status, std::move(w).Finish()};
}

}  // namespace snapvol::api
