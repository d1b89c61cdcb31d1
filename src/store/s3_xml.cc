#include "store/s3_xml.h"

#include <expat.h>

#include <charconv>
#include <ctime>
#include <functional>
#include <memory>
#include <optional>

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
  // YYYY-MM-DDTHH:MM:SS[.fff...]Z
  auto bad = [&] { return MakeError(ErrorCode::kIoError, "S3 sent a bad timestamp '" + std::string(s) + "'"); };
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s.back() != 'Z')
    return bad();
  int64_t y, mo, d, h, mi, sec;
  if (!ParseInt(s.substr(0, 4), &y) || !ParseInt(s.substr(5, 2), &mo) || !ParseInt(s.substr(8, 2), &d) ||
      !ParseInt(s.substr(11, 2), &h) || !ParseInt(s.substr(14, 2), &mi) || !ParseInt(s.substr(17, 2), &sec))
    return bad();
  int64_t ms = 999;  // no fraction: the last millisecond of the second (see header)
  std::string_view frac = s.substr(19, s.size() - 20);
  if (!frac.empty()) {
    if (frac[0] != '.' || frac.size() < 2) return bad();
    frac = frac.substr(1);
    int64_t v = 0;
    std::string digits(frac.substr(0, 3));
    while (digits.size() < 3) digits += '0';
    if (!ParseInt(digits, &v) || frac.find_first_not_of("0123456789") != std::string_view::npos) return bad();
    ms = v;
  }
  std::tm tm{};
  tm.tm_year = static_cast<int>(y - 1900);
  tm.tm_mon = static_cast<int>(mo - 1);
  tm.tm_mday = static_cast<int>(d);
  tm.tm_hour = static_cast<int>(h);
  tm.tm_min = static_cast<int>(mi);
  tm.tm_sec = static_cast<int>(sec);
  time_t t = ::timegm(&tm);
  if (t == static_cast<time_t>(-1)) return bad();
  return static_cast<int64_t>(t) * 1000 + ms;
}

Result<int64_t> ParseHttpDateMillis(std::string_view s) {
  std::tm tm{};
  std::string str(s);
  const char* end = ::strptime(str.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (!end || *end != '\0') return MakeError(ErrorCode::kIoError, "S3 sent a bad Date '" + str + "'");
  return static_cast<int64_t>(::timegm(&tm)) * 1000;
}

}  // namespace snapvol
