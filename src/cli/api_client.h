// A small signed client of snapvold's Query API for the CLI's own actions (restore requests):
// credentials from the environment or the AWS shared-credentials file, SigV4 signing, and
// the EC2 error document turned into one line.
// Thread-safety: free functions.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "iam/sigv4.h"

namespace snapvol {

struct ApiClientOptions {
  std::string endpoint;    // http://HOST:PORT or https://HOST:PORT
  std::string profile;     // empty: $AWS_PROFILE, else "default"
  std::string region;      // empty: $AWS_DEFAULT_REGION / $AWS_REGION, else us-east-1
};

// Sends Action=action with params, signed; returns the response XML on HTTP 200, else an
// Error whose message is "<Code>: <Message>".
Result<std::string> CallApi(const ApiClientOptions& options, const std::string& action,
                            const std::vector<std::pair<std::string, std::string>>& params);

// Sends METHOD /api/v1/PATH with a JSON body (empty: none), signed for service "snapvol";
// returns the answer's HTTP status and body (any status: the caller reads the JSON error).
struct JsonApiAnswer {
  int status = 0;
  std::string body;
};
Result<JsonApiAnswer> CallJsonApi(const ApiClientOptions& options, const std::string& method,
                                  const std::string& path, const std::string& body);

// Keys from $AWS_ACCESS_KEY_ID/$AWS_SECRET_ACCESS_KEY (when profile is empty), else the
// profile (or $AWS_PROFILE, else "default") of $AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials.
Result<iam::SigningCredentials> LoadCredentials(const std::string& profile);

// The text of the first <name>…</name> in xml, or empty.
std::string XmlField(const std::string& xml, const std::string& name);

}  // namespace snapvol
