// snapvold's HTTP routes: the EC2 Query API at /, the JSON API at /api/v1/, the DLM, Recycle
// Bin and EBS direct REST APIs, the web console's static files, and EC2-shaped answers to what
// the HTTP library refuses itself. Every request body is read here, with its limit.
#pragma once

#include <httplib.h>

#include <cstddef>
#include <string>

namespace snapvol {

class AuditLog;
class Ec2Service;
class FairGate;

// The largest request body any route takes (the EC2 protocol layer limits the form itself).
inline constexpr size_t kMaxRequestBody = 2 << 20;

struct HttpRoutes {
  Ec2Service* ec2 = nullptr;  // answers every API request
  FairGate* gate = nullptr;   // requests handled at once, first come first served
  AuditLog* audit = nullptr;  // one line per request, beside the event log
  std::string console_dir;    // the console's built files (index.html); absent: a 404 that says so
};

// Mounts every route on svr. The pointers must outlive the server.
void MountHttpRoutes(httplib::Server& svr, const HttpRoutes& routes);

}  // namespace snapvol
