#include "daemon/http_routes.h"

#include <charconv>
#include <chrono>
#include <nlohmann/json.hpp>

#include "api/ec2_service.h"
#include "core/fair_gate.h"
#include "daemon/daemon_log.h"
#include "daemon/guarded_http_server.h"
#include "daemon/metrics_endpoint.h"

namespace snapvol {
namespace {

// Sent with every response under /console/. The console holds a secret key in the page's
// sessionStorage: no other origin may frame it (clickjacking), and the page runs only the
// bundle's own script and style (the CSP of console/src/index.html, plus what a <meta> CSP
// cannot say: frame-ancestors).
const httplib::Headers& ConsoleHeaders() {
  static const httplib::Headers headers = {
      {"Content-Security-Policy",
       "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
       "base-uri 'none'; form-action 'none'; object-src 'none'; frame-ancestors 'none'"},
      {"X-Frame-Options", "DENY"},
      {"X-Content-Type-Options", "nosniff"},
      {"Referrer-Policy", "no-referrer"},
  };
  return headers;
}

void AddConsoleHeaders(httplib::Response& res) {
  for (const auto& [k, v] : ConsoleHeaders())
    if (!res.has_header(k.c_str())) res.set_header(k, v);
}

// One handler for every API: the EC2 Query API (XML) and the REST/JSON ones. Logged to the
// event log and the audit log, counted in /metrics.
void Serve(const HttpRoutes& r, const httplib::Request& req, httplib::Response& res, std::string body) {
  auto arrived = std::chrono::steady_clock::now();
  auto pass = r.gate->Enter();
  auto start = std::chrono::steady_clock::now();
  HttpCall call{req.method, req.target, {}, std::move(body)};
  for (const auto& [k, v] : req.headers) call.headers.emplace(k, v);
  RequestRecord rec;
  if (Ec2Service::IsRestPath(req.path)) {
    JsonResponse out = r.ec2->HandleRest(call, &rec);
    res.status = out.http_status;
    for (const auto& [k, v] : out.headers) res.set_header(k, v);
    res.set_content(out.body, out.content_type);
  } else {
    api::XmlResponse out = r.ec2->Handle(call, &rec);
    res.status = out.http_status;
    res.set_content(out.body, "text/xml;charset=UTF-8");
  }
  int status = res.status;
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  double wait_ms = std::chrono::duration<double, std::milli>(start - arrived).count();
  RecordApiRequest(rec.action, rec.error_code, ms / 1000);
  nlohmann::json line = {{"event", "request"}, {"request_id", rec.request_id}, {"action", rec.action},
                         {"account_id", rec.account_id}, {"user", rec.user},
                         {"access_key_id", rec.access_key_id}, {"status", status},
                         {"error", rec.error_code}, {"decision", rec.decision},
                         {"detail", rec.detail}, {"ms", ms}, {"wait_ms", wait_ms},
                         {"remote", req.remote_addr}};
  // An administrator acting on a team's resource: whose it was.
  if (!rec.resource_account_id.empty()) line["resource_account_id"] = rec.resource_account_id;
  Log(line);
  r.audit->Append(line);
}

// A body refused or read halfway is answered without running the request, and the connection
// is closed: the rest of the body must never be read as requests.
void RefuseBody(httplib::Response& res, std::string_view code, const std::string& message) {
  auto out = api::RenderErrorResponse(api::MakeApiError(code, message), "");
  res.status = code == api::ec2::kRequestEntityTooLarge ? 413 : out.http_status;
  res.set_content(out.body, "text/xml;charset=UTF-8");
  CloseConnectionAfter();
}

// Refuses (true) a request whose Content-Length is not a number or is over the limit.
bool RefuseAnnouncedBody(const httplib::Request& req, httplib::Response& res) {
  if (!req.has_header("Content-Length")) return false;
  const std::string announced = req.get_header_value("Content-Length");
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(announced.data(), announced.data() + announced.size(), n);
  if (ec != std::errc() || end != announced.data() + announced.size()) {
    RefuseBody(res, "InvalidRequest", "The Content-Length header is not a number.");
    return true;
  }
  if (n <= kMaxRequestBody) return false;
  RefuseBody(res, api::ec2::kRequestEntityTooLarge, "The request body is larger than 2 MiB.");
  return true;
}

// Every route that takes a body reads it here, whatever the method: the library's own reading
// (plain handlers) has no limit for a chunked body and reads an oversized Content-Length in
// full before its 413. Its form parsing also stops at 8 KiB; the EC2 protocol layer parses
// (and limits) the form itself.
void ReadAndServe(const HttpRoutes& r, const httplib::Request& req, httplib::Response& res,
                  const httplib::ContentReader& reader) {
  // Neither header: the request has no body (the library would read until the client closes).
  if (!req.has_header("Content-Length") && !req.has_header("Transfer-Encoding")) return Serve(r, req, res, "");
  // The library reads a DELETE's body only when it has a Content-Length: a chunked one would
  // be left on the connection and parsed as requests.
  if (req.method == "DELETE" && !req.has_header("Content-Length"))
    return RefuseBody(res, "InvalidRequest", "A DELETE request's body must have a Content-Length.");
  if (RefuseAnnouncedBody(req, res)) return;
  std::string body;
  bool too_big = false;
  bool read = reader([&](const char* data, size_t n) {
    if (body.size() + n > kMaxRequestBody) {
      too_big = true;
      return false;
    }
    body.append(data, n);
    return true;
  });
  if (too_big) return RefuseBody(res, api::ec2::kRequestEntityTooLarge, "The request body is larger than 2 MiB.");
  if (!read) return RefuseBody(res, "InvalidRequest", "The request body could not be read (bad chunked encoding, or cut short).");
  Serve(r, req, res, std::move(body));
}

void MountConsole(httplib::Server& svr, const std::string& console_dir) {
  // Static files, no privileges of their own (the console calls the signed APIs).
  if (PathExists(console_dir + "/index.html")) {
    svr.set_mount_point("/console", console_dir, ConsoleHeaders());
    svr.Get("/console", [](const httplib::Request&, httplib::Response& res) {
      res.set_redirect("/console/");
      AddConsoleHeaders(res);
    });
    return;
  }
  svr.Get(R"(/console(/.*)?)", [console_dir](const httplib::Request&, httplib::Response& res) {
    res.status = 404;
    AddConsoleHeaders(res);
    res.set_content("The web console is not built: no index.html in " + console_dir +
                        " (scripts/build builds it; --console-dir points elsewhere)\n",
                    "text/plain");
  });
}

}  // namespace

void MountHttpRoutes(httplib::Server& svr, const HttpRoutes& routes) {
  svr.set_payload_max_length(kMaxRequestBody);
  svr.Get("/healthz", [](const httplib::Request&, httplib::Response& res) { res.set_content("ok\n", "text/plain"); });
  // A client that waits for 100 Continue before sending its body is refused before it sends
  // one: the library would say 100 Continue first, and the client then send the whole body.
  svr.set_expect_100_continue_handler([](const httplib::Request& req, httplib::Response& res) {
    return RefuseAnnouncedBody(req, res) ? res.status : 100;
  });
  auto post = [routes](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
    ReadAndServe(routes, req, res, reader);
  };
  auto get = [routes](const httplib::Request& req, httplib::Response& res) { Serve(routes, req, res, ""); };
  svr.Post("/", post);
  svr.Get("/", get);
  svr.Post(R"(/api/v1/.*)", post);
  svr.Get(R"(/api/v1/.*)", get);
  svr.Delete(R"(/api/v1/.*)", post);
  // Amazon DLM's REST API: lifecycle policies.
  svr.Post(R"(/policies/?)", post);
  svr.Get(R"(/policies(/.*)?)", get);
  svr.Patch(R"(/policies/.+)", post);
  svr.Delete(R"(/policies/.+)", post);
  // Amazon Recycle Bin's REST API: retention rules; /tags/{arn} by the signature's service.
  for (const char* path : {R"(/rules/?)", R"(/list-rules/?)", R"(/tags/.+)"}) svr.Post(path, post);
  for (const char* path : {R"(/rules/.+)", R"(/tags/.+)"}) {
    svr.Get(path, get);
    svr.Delete(path, post);
  }
  svr.Patch(R"(/rules/.+)", post);
  // The EBS direct APIs: snapshots written and read block by block (api/ebs_api.h).
  svr.Post(R"(/snapshots(/completion/.+)?)", post);
  svr.Put(R"(/snapshots/.+)", post);
  svr.Get(R"(/snapshots/.+)", get);
  MountConsole(svr, routes.console_dir);
  // Errors the library answers itself (oversized URI or body, unknown path) also get EC2's shape.
  svr.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (req.path == "/console" || req.path.rfind("/console/", 0) == 0) AddConsoleHeaders(res);
    if (!res.body.empty()) return;
    // The library's own 400 and 413 come from a request it could not read to its end.
    if (res.status == 400 || res.status == 413) CloseConnectionAfter();
    std::string code = res.status == 413 || res.status == 414 ? std::string(api::ec2::kRequestEntityTooLarge)
                       : res.status == 404                      ? "InvalidAction"
                                                                : "InvalidRequest";
    auto out = api::RenderErrorResponse(api::MakeApiError(code, "HTTP " + std::to_string(res.status)), "");
    res.set_content(out.body, "text/xml;charset=UTF-8");
  });
}

}  // namespace snapvol
