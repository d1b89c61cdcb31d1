#include "store/s3_config.h"

#include <arpa/inet.h>

#include <cstdlib>

#include "core/file_util.h"
#include "store/object_store.h"

namespace snapvol {
namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r')) --e;
  return std::string(s.substr(b, e - b));
}

// S3's bucket naming rules (the DNS-compatible ones, so virtual-hosted URLs always work).
bool IsValidBucketName(const std::string& b) {
  if (b.size() < 3 || b.size() > 63) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(b.front()) || !alnum(b.back())) return false;
  for (char c : b)
    if (!alnum(c) && c != '-' && c != '.') return false;
  return b.find("..") == std::string::npos;
}

}  // namespace

std::string S3Config::Describe() const {
  return "s3://" + bucket + (prefix.empty() ? "" : "/" + prefix) + " at " + endpoint;
}

Status ParseS3Url(const std::string& url, S3Config* config) {
  constexpr std::string_view kScheme = "s3://";
  if (url.compare(0, kScheme.size(), kScheme) != 0)
    return InvalidArgument("store '" + url + "' is not an s3://BUCKET/PREFIX URL");
  std::string rest = url.substr(kScheme.size());
  auto slash = rest.find('/');
  std::string bucket = rest.substr(0, slash);
  std::string prefix = slash == std::string::npos ? "" : rest.substr(slash + 1);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  if (!IsValidBucketName(bucket))
    return InvalidArgument("'" + bucket +
                           "' is not a valid bucket name (3-63 characters: a-z, 0-9, '.', '-', "
                           "starting and ending with a letter or digit)");
  // The prefix becomes part of every object key, so it obeys the same rules as keys.
  if (!prefix.empty() && !IsValidObjectKey(prefix))
    return InvalidArgument("store prefix '" + prefix +
                           "' may only hold segments of a-z, 0-9, '.', '_', '-' separated by '/'");
  config->bucket = bucket;
  config->prefix = prefix;
  return OkStatus();
}

bool IsLoopbackHost(const std::string& host) {
  if (host == "localhost" || host == "::1" || host == "[::1]") return true;
  in_addr a{};
  if (::inet_pton(AF_INET, host.c_str(), &a) == 1) return (ntohl(a.s_addr) >> 24) == 127;
  return false;
}

Result<std::string> NormaliseS3Endpoint(const std::string& url, bool allow_insecure_http) {
  std::string u = url;
  while (!u.empty() && u.back() == '/') u.pop_back();
  bool https = u.rfind("https://", 0) == 0, http = u.rfind("http://", 0) == 0;
  if (!https && !http)
    return InvalidArgument("S3 endpoint '" + url + "' must start with https:// (or http:// for loopback)");
  std::string authority = u.substr(https ? 8 : 7);
  if (authority.empty() || authority.find('/') != std::string::npos ||
      authority.find('?') != std::string::npos || authority.find('@') != std::string::npos)
    return InvalidArgument("S3 endpoint '" + url + "' must be scheme://host[:port] without a path");
  std::string host = authority;
  if (host.front() == '[') {
    host = host.substr(0, host.find(']') + 1);
  } else if (auto colon = host.rfind(':'); colon != std::string::npos) {
    std::string port = host.substr(colon + 1);
    if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5)
      return InvalidArgument("S3 endpoint '" + url + "' has a bad port");
    host = host.substr(0, colon);
  }
  if (http && !allow_insecure_http && !IsLoopbackHost(host))
    return InvalidArgument("S3 endpoint '" + url +
                           "' uses plain HTTP to a non-loopback host: signed requests would travel "
                           "in the clear; use https:// (or allow insecure HTTP explicitly)");
  return u;
}

std::string AwsS3Endpoint(const std::string& region) {
  return "https://s3." + region + ".amazonaws.com";
}

Result<S3Credentials> ReadSharedCredentials(const std::string& path, const std::string& profile) {
  auto raw = ReadWholeFile(path);
  if (!raw) return std::unexpected(raw.error().WithContext("AWS credentials file " + path));
  std::string_view text(reinterpret_cast<const char*>(raw->data()), raw->size());
  S3Credentials creds;
  std::string section;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string line = Trim(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      section = Trim(std::string_view(line).substr(1, line.size() - 2));
      continue;
    }
    if (section != profile) continue;
    auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = Trim(std::string_view(line).substr(0, eq));
    std::string value = Trim(std::string_view(line).substr(eq + 1));
    if (key == "aws_access_key_id") creds.access_key_id = value;
    else if (key == "aws_secret_access_key") creds.secret_access_key = value;
    else if (key == "aws_session_token") creds.session_token = value;
  }
  if (creds.empty()) return NotFound("no keys for profile '" + profile + "' in " + path);
  creds.source = "profile '" + profile + "' in " + path;
  return creds;
}

Result<S3Credentials> ResolveS3Credentials(const S3Credentials& configured,
                                           const std::string& configured_profile) {
  if (!Env("AWS_ACCESS_KEY_ID").empty() && !Env("AWS_SECRET_ACCESS_KEY").empty())
    return S3Credentials{Env("AWS_ACCESS_KEY_ID"), Env("AWS_SECRET_ACCESS_KEY"),
                         Env("AWS_SESSION_TOKEN"), "environment"};
  if (!configured.empty()) return configured;
  std::string profile = !Env("AWS_PROFILE").empty() ? Env("AWS_PROFILE")
                        : !configured_profile.empty() ? configured_profile
                                                      : "default";
  std::string path = Env("AWS_SHARED_CREDENTIALS_FILE");
  if (path.empty()) path = Env("HOME") + "/.aws/credentials";
  auto shared = ReadSharedCredentials(path, profile);
  if (shared) return shared;
  return MakeError(ErrorCode::kUnauthorized,
                   "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, record "
                   "keys in the data dir's store config, or add profile '" + profile + "' to " +
                       path + " (" + shared.error().message() + ")");
}

}  // namespace snapvol
