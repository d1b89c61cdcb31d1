#include "cli/api_client.h"

#include <httplib.h>

#include <cstdlib>
#include <regex>

#include "core/clock.h"
#include "core/file_util.h"
#include "iam/sigv4.h"

namespace snapvol {
namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  return s.substr(i);
}

// Keys from $AWS_ACCESS_KEY_ID/$AWS_SECRET_ACCESS_KEY, else the profile of the shared
// credentials file ($AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials).
Result<iam::SigningCredentials> LoadCredentials(const std::string& profile_flag) {
  if (!Env("AWS_ACCESS_KEY_ID").empty() && !Env("AWS_SECRET_ACCESS_KEY").empty() && profile_flag.empty())
    return iam::SigningCredentials{Env("AWS_ACCESS_KEY_ID"), Env("AWS_SECRET_ACCESS_KEY")};
  std::string profile = !profile_flag.empty() ? profile_flag : !Env("AWS_PROFILE").empty() ? Env("AWS_PROFILE") : "default";
  std::string path = Env("AWS_SHARED_CREDENTIALS_FILE");
  if (path.empty()) path = Env("HOME") + "/.aws/credentials";
  auto raw = ReadWholeFile(path);
  if (!raw) return std::unexpected(raw.error().WithContext("credentials file " + path));
  std::string text(raw->begin(), raw->end()), section;
  iam::SigningCredentials creds;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string line = Trim(text.substr(pos, nl - pos));
    pos = nl + 1;
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      section = Trim(line.substr(1, line.size() - 2));
      continue;
    }
    if (section != profile) continue;
    auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = Trim(line.substr(0, eq)), value = Trim(line.substr(eq + 1));
    if (key == "aws_access_key_id") creds.access_key_id = value;
    if (key == "aws_secret_access_key") creds.secret_access_key = value;
  }
  if (creds.access_key_id.empty() || creds.secret_access_key.empty())
    return NotFound("no keys for profile '" + profile + "' in " + path);
  return creds;
}

}  // namespace

std::string XmlField(const std::string& xml, const std::string& name) {
  std::smatch m;
  std::regex re("<" + name + ">([^<]*)</" + name + ">");
  if (std::regex_search(xml, m, re)) return m[1].str();
  return "";
}

Result<std::string> CallApi(const ApiClientOptions& o, const std::string& action,
                            const std::vector<std::pair<std::string, std::string>>& params) {
  static const std::regex kUrl(R"(^(https?)://([^/:]+)(?::(\d+))?/?$)");
  std::smatch m;
  if (!std::regex_match(o.endpoint, m, kUrl))
    return InvalidArgument("--endpoint must look like http://HOST:PORT, not '" + o.endpoint + "'");
  ASSIGN_OR_RETURN(iam::SigningCredentials creds, LoadCredentials(o.profile));
  std::string host = m[2].str() + (m[3].matched ? ":" + m[3].str() : "");

  iam::HttpRequest req;
  req.method = "POST";
  req.path = "/";
  req.headers.emplace("Host", host);
  req.headers.emplace("Content-Type", "application/x-www-form-urlencoded; charset=utf-8");
  req.body = "Action=" + iam::sigv4::UriEncode(action, false) + "&Version=2016-11-15";
  for (const auto& [k, v] : params)
    req.body += "&" + iam::sigv4::UriEncode(k, false) + "=" + iam::sigv4::UriEncode(v, false);
  iam::SigningOptions so;
  so.region = !o.region.empty() ? o.region
              : !Env("AWS_DEFAULT_REGION").empty() ? Env("AWS_DEFAULT_REGION")
              : !Env("AWS_REGION").empty() ? Env("AWS_REGION") : "us-east-1";
  so.time_ms = Clock::Real()->NowMillis();
  RETURN_IF_ERROR(iam::SignRequest(&req, creds, so));

  httplib::Client client(m[1].str() + "://" + host);
  client.set_connection_timeout(10);
  client.set_read_timeout(120);
  httplib::Headers headers;
  for (const auto& [k, v] : req.headers)
    if (k != "Content-Type") headers.emplace(k, v);
  auto res = client.Post("/", headers, req.body, "application/x-www-form-urlencoded; charset=utf-8");
  if (!res)
    return MakeError(ErrorCode::kIoError, "cannot reach " + o.endpoint + ": " + httplib::to_string(res.error()), true);
  if (res->status == 200) return res->body;
  std::string code = XmlField(res->body, "Code"), message = XmlField(res->body, "Message");
  if (code.empty()) return MakeError(ErrorCode::kIoError, "HTTP " + std::to_string(res->status) + " from " + o.endpoint);
  ErrorCode ec = code == "UnauthorizedOperation" || code == "AuthFailure" ? ErrorCode::kUnauthorized
                 : code.find("NotFound") != std::string::npos ? ErrorCode::kNotFound
                                                              : ErrorCode::kInvalidArgument;
  return MakeError(ec, code + ": " + message);
}

}  // namespace snapvol
