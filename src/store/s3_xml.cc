#include "store/s3_xml.h"

#include <expat.h>

#include <charconv>
#include <ctime>
#include <functional>
#include <memory>
#include <optional>

#include "core/clock.h"

namespace snapvol {
namespace {

// Streams an XML document and calls on_leaf(path, text) for every element that ends, with
// path the '/'-joined local names from the root ("ListBucketResult/Contents/Key").
// Namespaces are dropped: S3 servers differ in whether they send them.
class LeafParser {
 public:
  using LeafFn = std::function<void(const std::string& path, const std::string& text)>;

  static Status Parse(std::string_view xml, const LeafFn& on_leaf) {
    std::unique_ptr<XML_ParserStruct, void (*)(XML_Parser)> p(XML_ParserCreate(nullptr), XML_ParserFree);
    if (!p) return MakeError(ErrorCode::kIoError, "out of memory parsing an S3 response");
    LeafParser self(on_leaf);
    XML_SetUserData(p.get(), &self);
    XML_SetElementHandler(p.get(), &LeafParser::Start, &LeafParser::End);
    XML_SetCharacterDataHandler(p.get(), &LeafParser::Text);
    if (xml.size() > (1u << 30)) return MakeError(ErrorCode::kIoError, "S3 response too large");
    if (XML_Parse(p.get(), xml.data(), static_cast<int>(xml.size()), XML_TRUE) != XML_STATUS_OK)
      return MakeError(ErrorCode::kIoError, std::string("S3 sent malformed XML: ") +
                                                XML_ErrorString(XML_GetErrorCode(p.get())));
    return OkStatus();
  }

 private:
  explicit LeafParser(const LeafFn& fn) : on_leaf_(fn) {}

  static void Start(void* ud, const XML_Char* name, const XML_Char**) {
    auto* self = static_cast<LeafParser*>(ud);
    std::string_view n(name);
    if (auto colon = n.rfind(':'); colon != std::string_view::npos) n = n.substr(colon + 1);
    self->stack_.push_back(self->path_.size());
    if (!self->path_.empty()) self->path_ += '/';
    self->path_ += n;
    self->text_.clear();
  }
  static void End(void* ud, const XML_Char*) {
    auto* self = static_cast<LeafParser*>(ud);
    self->on_leaf_(self->path_, self->text_);
    self->text_.clear();
    self->path_.resize(self->stack_.back());
    self->stack_.pop_back();
  }
  static void Text(void* ud, const XML_Char* s, int len) {
    static_cast<LeafParser*>(ud)->text_.append(s, static_cast<size_t>(len));
  }

  const LeafFn& on_leaf_;
  std::string path_, text_;
  std::vector<size_t> stack_;
};

bool ParseInt(std::string_view s, int64_t* out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

Result<S3ListPage> ParseS3ListPage(std::string_view xml) {
  S3ListPage page;
  bool is_list = false;
  std::optional<Error> bad;
  Status st = LeafParser::Parse(xml, [&](const std::string& path, const std::string& text) {
    if (path == "ListBucketResult") is_list = true;
    if (path == "ListBucketResult/Contents/Key") {
      page.entries.push_back({text, 0, 0});
    } else if (path == "ListBucketResult/Contents/Size" && !page.entries.empty()) {
      int64_t v = 0;
      if (!ParseInt(text, &v) || v < 0) bad = Error(ErrorCode::kIoError, "S3 listing has a bad Size '" + text + "'");
      page.entries.back().size = static_cast<uint64_t>(v);
    } else if (path == "ListBucketResult/Contents/LastModified" && !page.entries.empty()) {
      auto t = ParseIso8601Millis(text);
      if (!t) bad = t.error();
      else page.entries.back().mtime_ms = *t;
    } else if (path == "ListBucketResult/IsTruncated") {
      page.truncated = text == "true";
    } else if (path == "ListBucketResult/NextContinuationToken") {
      page.next_token = text;
    }
  });
  RETURN_IF_ERROR(st);
  if (bad) return std::unexpected(*bad);
  if (!is_list) return MakeError(ErrorCode::kIoError, "S3 answered a listing with something that is not a ListBucketResult");
  if (page.truncated && page.next_token.empty())
    return MakeError(ErrorCode::kIoError, "S3 listing is truncated but has no continuation token");
  return page;
}

S3ErrorDoc ParseS3Error(std::string_view xml) {
  S3ErrorDoc doc;
  (void)LeafParser::Parse(xml, [&](const std::string& path, const std::string& text) {
    if (path == "Error/Code") doc.code = text;
    else if (path == "Error/Message") doc.message = text;
  });
  return doc;
}

Result<int64_t> ParseIso8601Millis(std::string_view s) {
  auto t = ParseIso8601(s);
  if (!t) return MakeError(ErrorCode::kIoError, "S3 sent a bad timestamp '" + std::string(s) + "'");
  // No fraction: the last millisecond of the second (see header).
  return s.size() == 20 ? *t + 999 : *t;
}

Result<int64_t> ParseHttpDateMillis(std::string_view s) {
  std::tm tm{};
  std::string str(s);
  const char* end = ::strptime(str.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (!end || *end != '\0') return MakeError(ErrorCode::kIoError, "S3 sent a bad Date '" + str + "'");
  return static_cast<int64_t>(::timegm(&tm)) * 1000;
}

}  // namespace snapvol
