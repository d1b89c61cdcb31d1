#include "cli/api_client.h"

#include <httplib.h>

#include <cstdlib>
#include <regex>

#include "core/clock.h"
#include "iam/sigv4.h"
#include "store/s3_config.h"

namespace snapvol {
namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

}  // namespace

// Keys from $AWS_ACCESS_KEY_ID/$AWS_SECRET_ACCESS_KEY, else the profile of the shared
// credentials file ($AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials).
Result<iam::SigningCredentials> LoadCredentials(const std::string& profile_flag) {
  if (!Env("AWS_ACCESS_KEY_ID").empty() && !Env("AWS_SECRET_ACCESS_KEY").empty() && profile_flag.empty())
    return iam::SigningCredentials{Env("AWS_ACCESS_KEY_ID"), Env("AWS_SECRET_ACCESS_KEY")};
  std::string profile = !profile_flag.empty() ? profile_flag : !Env("AWS_PROFILE").empty() ? Env("AWS_PROFILE") : "default";
  std::string path = Env("AWS_SHARED_CREDENTIALS_FILE");
  if (path.empty()) path = Env("HOME") + "/.aws/credentials";
  // The same INI reader the S3 store uses for its keys.
  ASSIGN_OR_RETURN(S3Credentials creds, ReadSharedCredentials(path, profile));
  return iam::SigningCredentials{creds.access_key_id, creds.secret_access_key};
}

std::string XmlField(const std::string& xml, const std::string& name) {
  std::smatch m;
  std::regex re("<" + name + ">([^<]*)</" + name + ">");
  if (std::regex_search(xml, m, re)) return m[1].str();
  return "";
}

namespace {

struct Endpoint {
  std::string scheme, host;  // host with :port when given
};

Result<Endpoint> ParseEndpoint(const std::string& endpoint) {
  static const std::regex kUrl(R"(^(https?)://([^/:]+)(?::(\d+))?/?$)");
  std::smatch m;
  if (!std::regex_match(endpoint, m, kUrl))
    return InvalidArgument("--endpoint must look like http://HOST:PORT, not '" + endpoint + "'");
  return Endpoint{m[1].str(), m[2].str() + (m[3].matched ? ":" + m[3].str() : "")};
}

std::string SigningRegion(const ApiClientOptions& o) {
  return !o.region.empty() ? o.region
         : !Env("AWS_DEFAULT_REGION").empty() ? Env("AWS_DEFAULT_REGION")
         : !Env("AWS_REGION").empty() ? Env("AWS_REGION") : "us-east-1";
}

}  // namespace

Result<JsonApiAnswer> CallJsonApi(const ApiClientOptions& o, const std::string& method, const std::string& path,
                                  const std::string& body) {
  ASSIGN_OR_RETURN(Endpoint ep, ParseEndpoint(o.endpoint));
  ASSIGN_OR_RETURN(iam::SigningCredentials creds, LoadCredentials(o.profile));
  iam::HttpRequest req;
  req.method = method;
  req.path = "/api/v1/" + path;
  req.headers.emplace("Host", ep.host);
  req.headers.emplace("Content-Type", "application/json");
  req.body = body;
  iam::SigningOptions so;
  so.region = SigningRegion(o);
  so.service = "snapvol";
  so.time_ms = Clock::Real()->NowMillis();
  RETURN_IF_ERROR(iam::SignRequest(&req, creds, so));
  httplib::Client client(ep.scheme + "://" + ep.host);
  client.set_connection_timeout(10);
  client.set_read_timeout(300);  // a test notification may wait for slow channels
  httplib::Headers headers;
  for (const auto& [k, v] : req.headers)
    if (k != "Content-Type") headers.emplace(k, v);
  auto res = method == "POST" ? client.Post(req.path, headers, body, "application/json")
                              : client.Get(req.path, headers);
  if (!res)
    return MakeError(ErrorCode::kIoError, "cannot reach " + o.endpoint + ": " + httplib::to_string(res.error()), true);
  return JsonApiAnswer{res->status, res->body};
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
