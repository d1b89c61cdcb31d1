// A small streaming XML writer for EC2 Query API responses, and the EC2 error document.
//
// Element names are trusted compile-time constants; text is escaped: & < > " ' become
// entities, CR becomes &#xD; (so a parser does not fold it into LF), and every code point that
// XML 1.0 forbids (C0 controls other than TAB/LF/CR, U+FFFE, U+FFFF) as well as every byte
// that is not part of well-formed UTF-8 is replaced by U+FFFD. Nothing is dropped silently
// into nothing, so lengths stay recognisable and the document always parses.
// Thread-safety: an XmlWriter is not thread-safe; the free functions are.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "api/api_error.h"

namespace snapvol::api {

inline constexpr std::string_view kEc2Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/";
inline constexpr std::string_view kXmlDeclaration = R"(<?xml version="1.0" encoding="UTF-8"?>)";
// The Content-Type EC2 sends with every XML body.
inline constexpr std::string_view kXmlContentType = "text/xml;charset=UTF-8";

class XmlWriter {
 public:
  // Starts with the XML declaration and a newline when with_declaration.
  explicit XmlWriter(bool with_declaration = true);

  // <name> (optionally with xmlns="ns"). Must be balanced by Close().
  void Open(std::string_view name);
  void OpenWithNamespace(std::string_view name, std::string_view xmlns);
  // Closes the innermost open element. REQUIRES: an element is open.
  void Close();

  // Leaf elements. Separate names (not overloads) so a string literal never becomes a bool.
  void Text(std::string_view name, std::string_view text);
  void Bool(std::string_view name, bool value);  // "true" / "false"
  void Int(std::string_view name, int64_t value);
  void Timestamp(std::string_view name, int64_t millis);  // 2026-11-26T02:00:00.000Z

  size_t depth() const { return open_.size(); }
  // Closes every open element and returns the document.
  std::string Finish() &&;

  // Appends text escaped for element content or a double-quoted attribute value.
  static void AppendEscaped(std::string* out, std::string_view text);
  static std::string Escape(std::string_view text);

 private:
  std::string out_;
  std::vector<std::string> open_;
};

// Starts "<{action}Response xmlns=kEc2Namespace><requestId>{request_id}</requestId>".
XmlWriter BeginEc2Response(std::string_view action, std::string_view request_id);

// An HTTP response body for the daemon to send.
struct XmlResponse {
  int http_status = 200;
  std::string body;
};

// The EC2 error document
//   <?xml version="1.0" encoding="UTF-8"?>
//   <Response><Errors><Error><Code>..</Code><Message>..</Message></Error></Errors>
//   <RequestID>..</RequestID></Response>
// with error.http_status. Note the capital "RequestID" here versus "requestId" in successes.
XmlResponse RenderErrorResponse(const ApiError& error, std::string_view request_id);

}  // namespace snapvol::api
