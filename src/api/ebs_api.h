// The EBS direct APIs (REST-JSON, SigV4 service "ebs", model ebs-2019-11-02) on snapvold's
// port: StartSnapshot, PutSnapshotBlock, CompleteSnapshot, ListSnapshotBlocks,
// ListChangedBlocks and GetSnapshotBlock under /snapshots. Shapes, bounds and error types are
// AWS's; error codes are "Type:REASON" here and Ec2Service::HandleEbs splits them.
// Thread-safety: DispatchEbs may run from many threads at once.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "api/api_error.h"
#include "iam/sigv4.h"

namespace snapvol::api {

class Ec2Context;
struct Caller;

struct EbsCall {
  std::string method;
  std::vector<std::string> parts;  // the path's segments after the leading '/'
  std::multimap<std::string, std::string> query;
  const iam::HeaderMap* headers = nullptr;
  const std::string* body = nullptr;  // raw: a JSON document, or a block's bytes
};

struct EbsReply {
  int http_status = 200;
  std::string body;  // a JSON document, or a block's bytes
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers = {};
};

ApiResult<EbsReply> DispatchEbs(Ec2Context& x, Caller& c, const EbsCall& call);

}  // namespace snapvol::api
