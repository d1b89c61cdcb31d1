// Ec2Service: one request pipeline for the three APIs on snapvold's port. Each request is
// authenticated once (SigV4 for its service; the caller's account, policies and admin flag
// resolved from the same identity lookup), then routed: Query API actions through the action
// table (which refuses any parameter an action does not accept, by name), JSON and DLM calls
// by path. The handlers live in one file per resource (ec2_snapshots.cc, ec2_volumes.cc, ...).
#include "api/ec2_service.h"

#include <array>
#include <cstdio>
#include <cstdlib>

#include "api/ebs_api.h"
#include "api/ec2_context.h"
#include "api/query_params.h"
#include "core/hash.h"
#include "core/key_derivation.h"

namespace snapvol {

using api::ApiError;
using api::ApiResult;
using api::ApiStatus;
using api::Caller;
using api::QueryParams;
using api::RestCall;

namespace {

std::string NewRequestId() {
  std::array<uint8_t, 16> r{};
  (void)RandomBytes(r);
  std::string h = ToHex(r);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20, 12);
}

// Runs the action through the table: unknown action → InvalidAction; a parameter the action
// does not accept → UnknownParameter naming it; then the handler.
ApiResult<std::string> Dispatch(api::Ec2Context& x, const Caller& c, const std::string& action, const QueryParams& p,
                                const std::string& rid) {
  const auto& table = api::Ec2ActionTable();
  auto it = table.find(action);
  if (it == table.end())
    return api::ApiFail(api::ec2::kInvalidAction, "The action " + action + " is not valid for this web service.");
  std::vector<std::string_view> known(it->second->params.begin(), it->second->params.end());
  known.push_back("Action");
  known.push_back("Version");
  API_RETURN_IF_ERROR(p.RejectUnknown(known));
  return it->second->handler(x, c, p, rid);
}

// REST-JSON errors (the Recycle Bin, the EBS direct APIs): the type in x-amzn-ErrorType, the
// body {"Message", "Reason"} as the models' error shapes have them. A code "Type:REASON"
// carries its Reason; ConflictException (409) and ConcurrentLimitExceededException (400) have
// none and keep their type; EC2's codes become the services' types, anything else a
// ValidationException (INVALID_PARAMETER_VALUE) that keeps EC2's code in its message.
// denied_reason: the Reason of an AccessDeniedException ("" for none).
JsonResponse RestJsonError(ApiError e, const std::string& rid, const std::string& denied_reason, RequestRecord* rec) {
  std::string reason;
  if (auto colon = e.code.find(':'); colon != std::string::npos) {
    reason = e.code.substr(colon + 1);
    e.code.resize(colon);
  } else if (e.code == api::ec2::kUnauthorizedOperation) {
    e.code = "AccessDeniedException";
    e.http_status = 403;
    reason = denied_reason;
  } else if (e.code == api::ec2::kAuthFailure) {
    e.code = "UnrecognizedClientException";
    e.http_status = 403;
  } else if (e.code == "ConflictException") {
    e.http_status = 409;
  } else if (e.code == "ConcurrentLimitExceededException") {
    e.http_status = 400;  // EBS's model: a client error without a Reason
  } else if (e.http_status >= 500) {
    e.message = e.code + ": " + e.message;
    e.code = "InternalServerException";
    e.http_status = 500;
  } else {
    e.message = e.code + ": " + e.message;
    e.code = "ValidationException";
    e.http_status = 400;
    reason = "INVALID_PARAMETER_VALUE";
  }
  rec->error_code = e.code;
  nlohmann::json j = {{"Message", e.message}};
  if (!reason.empty()) j["Reason"] = reason;
  return JsonResponse{e.http_status, j.dump(), {{"x-amzn-ErrorType", e.code}, {"x-amzn-RequestId", rid}}};
}

}  // namespace

Ec2Service::Ec2Service(Catalog* catalog, Repository* repo, ThreadPool* pool, SnapshotJobs* jobs,
                       Accounts* accounts, const Key256& secrets_key, Ec2ServiceOptions options,
                       Clock* clock)
    : context_(std::make_unique<api::Ec2Context>()) {
  api::Ec2Context& x = *context_;
  x.catalog = catalog;
  x.repo = repo;
  x.pool = pool;
  x.jobs = jobs;
  x.accounts = accounts;
  x.options = std::move(options);
  x.clock = clock;
  x.restores = std::make_unique<VolumeRestores>(catalog, repo, pool);
  iam::VerifierOptions vo;
  vo.region = x.options.region;
  vo.service = "ec2";
  auto lookup = [accounts](std::string_view key_id) -> Result<iam::SecretInfo> {
    ASSIGN_OR_RETURN(auto id, accounts->Identify(std::string(key_id)));
    return iam::SecretInfo{id->key.secret_access_key, id->key.account_id, id->key.user_name};
  };
  verifier_ = std::make_unique<iam::SigV4Verifier>(vo, lookup, clock);
  vo.service = "snapvol";
  json_verifier_ = std::make_unique<iam::SigV4Verifier>(vo, lookup, clock);
  vo.service = "dlm";
  dlm_verifier_ = std::make_unique<iam::SigV4Verifier>(vo, lookup, clock);
  vo.service = "rbin";
  rbin_verifier_ = std::make_unique<iam::SigV4Verifier>(vo, lookup, clock);
  // PutSnapshotBlock's body is not signed (its model's authtype is v4-unsigned-body): the
  // block's own x-amz-Checksum, which is signed, guards it.
  vo.service = "ebs";
  vo.allow_unsigned_payload = true;
  ebs_verifier_ = std::make_unique<iam::SigV4Verifier>(vo, lookup, clock);
  x.recycle_bin.default_retention_days = x.options.recycle_bin_default_retention_days;
  // Tokens signed before keys by purpose no longer decode (InvalidPaginationToken): they live
  // for one listing, and a client starts it again.
  auto token_key = DeriveKey(secrets_key, KeyPurpose::kPageTokens);
  if (token_key)
    if (auto codec = api::PageTokenCodec::Create(*token_key)) x.tokens.emplace(std::move(*codec));
  if (token_key) {
    if (auto ebs_key = DeriveKey(secrets_key, KeyPurpose::kEbsTokens)) x.ebs_tokens.emplace(*ebs_key);
  }
  // SNAPVOL_EBS_BLOCK_TOKEN_SECONDS: a shorter BlockToken life, for tests of its expiry.
  if (const char* ttl = std::getenv("SNAPVOL_EBS_BLOCK_TOKEN_SECONDS"); ttl && std::atoll(ttl) > 0)
    x.ebs_token_ttl_ms = std::atoll(ttl) * 1000;
  // SNAPVOL_EBS_TIMEOUT_MINUTE_MS (test-only): a StartSnapshot Timeout minute this many ms
  // long, so a test sees a snapshot expire without waiting the 10-minute minimum.
  if (const char* minute = std::getenv("SNAPVOL_EBS_TIMEOUT_MINUTE_MS"); minute && std::atoll(minute) > 0)
    x.ebs_timeout_minute_ms = std::atoll(minute);
  if (jobs) {
    DirectOptions dopt;
    dopt.runner_id = jobs->runner_id();
    dopt.clock = clock;
    x.direct = std::make_unique<DirectSnapshots>(repo, catalog, dopt);
    // Resumes what a stopped snapvold left pending (DataDir::Open handed it over); on an error
    // the background thread tries again every lease heartbeat.
    if (auto adopted = x.direct->Adopt(); !adopted)
      std::fprintf(stderr, "snapvold: EBS direct snapshots not resumed yet: %s\n", adopted.error().ToString().c_str());
    x.ebs_rate = std::make_unique<api::EbsRateLimiter>(x.options.ebs_limits, clock);
    x.ebs_pending = std::make_unique<api::EbsPendingGate>(x.options.ebs_limits.max_pending_snapshots);
  }
  x.restores->SettleInterrupted();
}

Ec2Service::~Ec2Service() { context_->restores->Stop(); }

Status Ec2Service::MakeClaimedVolume(const VolumeRecord& v, const std::string& runner) {
  return context_->MakeClaimedVolume(v, runner);
}

api::XmlResponse Ec2Service::Handle(const HttpCall& call, RequestRecord* record) {
  const std::string rid = NewRequestId();
  RequestRecord scratch;
  RequestRecord& rec = record ? *record : scratch;
  rec.request_id = rid;
  auto fail = [&](const ApiError& e) {
    rec.error_code = e.code;
    return api::RenderErrorResponse(e, rid);
  };
  std::string_view target = call.target;
  auto q = target.find('?');
  std::string_view query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);

  Caller caller;
  if (auto ok = Authenticate(call, *verifier_, &rec, &caller); !ok) return fail(ok.error());
  // The HTTP layer caps bodies at 2 MiB; within that, an oversized value gets the
  // parameter's own error (InvalidParameterValue) rather than a blanket size error.
  api::QueryLimits limits;
  limits.max_input_bytes = 2 << 20;
  auto raw_params = QueryParams::ParseQueryString(query, limits);
  if (!raw_params) return fail(raw_params.error());
  // The signature of a presigned request travels in X-Amz-* parameters: not the action's.
  QueryParams query_params;
  for (const auto& [k, v] : raw_params->entries()) {
    if (k.rfind("X-Amz-", 0) == 0) continue;
    auto added = query_params.Add(k, v);
    if (!added) return fail(added.error());
  }
  auto params = std::optional<QueryParams>(std::move(query_params));
  if (call.method == "POST") {
    auto body = QueryParams::ParseFormBody(call.body, limits);
    if (!body) return fail(body.error());
    for (const auto& [k, v] : body->entries()) {
      auto added = params->Add(k, v);
      if (!added) return fail(added.error());
    }
  }
  auto action = params->GetString("Action");
  if (!action) return fail(api::MakeApiError(api::ec2::kMissingAction, "The request must contain the parameter Action."));

  rec.action = *action;
  auto out = Dispatch(*context_, caller, *action, *params, rid);
  if (!out) return fail(out.error());
  return {200, std::move(*out)};
}

api::ApiStatus Ec2Service::Authenticate(const HttpCall& call, const iam::SigV4Verifier& verifier,
                                        RequestRecord* rec, Caller* caller) {
  std::string_view target = call.target;
  auto q = target.find('?');
  std::string_view path = target.substr(0, q);
  std::string_view query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  iam::HttpRequestView view{call.method, path, query, call.headers, call.body};
  // The lookup keeps the identity it found: the signature is checked with its secret and the
  // caller is resolved from the same record.
  std::shared_ptr<const Identity> identity;
  Accounts* accounts = context_->accounts;
  auto lookup = [&](std::string_view key_id) -> Result<iam::SecretInfo> {
    ASSIGN_OR_RETURN(identity, accounts->Identify(std::string(key_id)));
    return iam::SecretInfo{identity->key.secret_access_key, identity->key.account_id, identity->key.user_name};
  };
  auto who = verifier.Verify(view, lookup);
  if (!who) {
    rec->detail = who.error().detail;
    return std::unexpected(api::MakeApiError(iam::AuthCodeName(who.error().code), who.error().message));
  }
  rec->account_id = who->account_id;
  rec->user = who->user;
  rec->access_key_id = who->access_key_id;
  caller->record = rec;
  caller->account_id = who->account_id;
  caller->user = who->user;
  caller->access_key_id = who->access_key_id;
  caller->alias = identity->account.alias;
  caller->admin = identity->account.is_admin;
  caller->policies = identity->policies;
  return {};
}

api::ApiStatus Ec2Service::PrepareRest(const HttpCall& call, const iam::SigV4Verifier& verifier,
                                       std::string_view prefix, RequestRecord* rec, RestCall* out,
                                       Caller* caller) {
  API_RETURN_IF_ERROR(Authenticate(call, verifier, rec, caller));
  std::string_view target = call.target;
  auto q = target.find('?');
  std::string_view path = target.substr(0, q);
  std::string_view query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  if (path.substr(0, prefix.size()) != prefix)
    return std::unexpected(api::MakeApiError(api::ec2::kInvalidAction, "No such API path: " + std::string(path)));
  out->method = call.method;
  std::string_view rest = path.substr(prefix.size());
  for (;;) {
    size_t slash = rest.find('/');
    out->parts.emplace_back(rest.substr(0, slash));
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  api::QueryLimits limits;
  limits.allow_repeats = true;  // lists arrive as repeated names (policyIds=a&policyIds=b)
  auto params = QueryParams::ParseQueryString(query, limits);
  if (!params) return std::unexpected(params.error());
  for (const auto& [k, v] : params->entries())
    if (k.rfind("X-Amz-", 0) != 0) out->query.emplace(k, v);
  out->body = nlohmann::json::object();
  if (!call.body.empty()) {
    out->body = nlohmann::json::parse(call.body, nullptr, false);
    if (out->body.is_discarded() || !out->body.is_object())
      return std::unexpected(api::MakeApiError(api::ec2::kInvalidParameterValue, "The request body must be a JSON object."));
  }
  return {};
}

JsonResponse Ec2Service::HandleDlm(const HttpCall& call, RequestRecord* record) {
  const std::string rid = NewRequestId();
  RequestRecord scratch;
  RequestRecord& rec = record ? *record : scratch;
  rec.request_id = rid;
  // DLM's errors: the type in x-amzn-ErrorType (botocore reads it from there), the message
  // and the type in the body too.
  auto fail = [&](ApiError e) {
    if (e.code == api::ec2::kUnauthorizedOperation) {
      e.code = "AccessDeniedException";
    } else if (e.code == api::ec2::kAuthFailure) {
      e.code = "InvalidSignatureException";
      e.http_status = 403;
    } else if (e.http_status == 400 && e.code != "InvalidRequestException") {
      e.message = e.code + ": " + e.message;
      e.code = "InvalidRequestException";
    }
    rec.error_code = e.code;
    nlohmann::json j = {{"Message", e.message}, {"message", e.message}, {"Code", e.code}};
    return JsonResponse{e.http_status, j.dump(), {{"x-amzn-ErrorType", e.code}, {"x-amzn-RequestId", rid}}};
  };
  RestCall route;
  Caller caller;
  if (auto ok = PrepareRest(call, *dlm_verifier_, "/", &rec, &route, &caller); !ok) return fail(ok.error());
  auto out = api::DispatchDlm(*context_, caller, route);
  if (!out) return fail(out.error());
  return {200, out->dump(), {{"x-amzn-RequestId", rid}}};
}

bool Ec2Service::IsRestPath(std::string_view path) {
  for (std::string_view prefix : {"/api/", "/policies", "/rules", "/list-rules", "/tags/", "/snapshots"})
    if (path.starts_with(prefix)) return true;
  return false;
}

JsonResponse Ec2Service::HandleRest(const HttpCall& call, RequestRecord* record) {
  std::string_view path = std::string_view(call.target).substr(0, call.target.find('?'));
  if (path.starts_with("/api/")) return HandleJson(call, record);
  if (path.starts_with("/policies")) return HandleDlm(call, record);
  if (path.starts_with("/tags/")) return HandleTags(call, record);
  if (path.starts_with("/snapshots")) return HandleEbs(call, record);
  return HandleRbin(call, record);
}

JsonResponse Ec2Service::HandleEbs(const HttpCall& call, RequestRecord* record) {
  const std::string rid = NewRequestId();
  RequestRecord scratch;
  RequestRecord& rec = record ? *record : scratch;
  rec.request_id = rid;
  auto fail = [&](ApiError e) { return RestJsonError(std::move(e), rid, "UNAUTHORIZED_ACCOUNT", &rec); };
  Caller caller;
  if (auto ok = Authenticate(call, *ebs_verifier_, &rec, &caller); !ok) return fail(ok.error());
  std::string_view target = call.target;
  auto q = target.find('?');
  std::string_view path = target.substr(1, q == std::string_view::npos ? q : q - 1);
  std::string_view query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  api::EbsCall ebs;
  ebs.method = call.method;
  for (;;) {
    size_t slash = path.find('/');
    ebs.parts.emplace_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  api::QueryLimits limits;
  auto params = QueryParams::ParseQueryString(query, limits);
  if (!params) return fail(params.error());
  for (const auto& [k, v] : params->entries())
    if (k.rfind("X-Amz-", 0) != 0) ebs.query.emplace(k, v);
  ebs.headers = &call.headers;
  ebs.body = &call.body;
  {
    const auto& seg = ebs.parts;
    const bool put = call.method == "PUT", get = call.method == "GET";
    rec.action = seg.size() == 1 ? "StartSnapshot"
                 : seg.size() == 3 && seg[1] == "completion" ? "CompleteSnapshot"
                 : seg.size() == 4 && put ? "PutSnapshotBlock"
                 : seg.size() == 4 && get ? "GetSnapshotBlock"
                 : seg.size() == 3 && seg[2] == "blocks" ? "ListSnapshotBlocks"
                 : seg.size() == 3 && seg[2] == "changedblocks" ? "ListChangedBlocks"
                                                                : "ebs";
  }
  auto out = api::DispatchEbs(*context_, caller, ebs);
  if (!out) return fail(out.error());
  JsonResponse res{out->http_status, std::move(out->body), std::move(out->headers), out->content_type};
  res.headers.emplace_back("x-amzn-RequestId", rid);
  return res;
}

JsonResponse Ec2Service::HandleRbin(const HttpCall& call, RequestRecord* record) {
  const std::string rid = NewRequestId();
  RequestRecord scratch;
  RequestRecord& rec = record ? *record : scratch;
  rec.request_id = rid;
  auto fail = [&](ApiError e) { return RestJsonError(std::move(e), rid, "", &rec); };
  RestCall route;
  Caller caller;
  if (auto ok = PrepareRest(call, *rbin_verifier_, "/", &rec, &route, &caller); !ok) return fail(ok.error());
  auto out = api::DispatchRbin(*context_, caller, route);
  if (!out) return fail(out.error());
  return {out->http_status, out->http_status == 204 ? std::string() : out->body.dump(), {{"x-amzn-RequestId", rid}}};
}

JsonResponse Ec2Service::HandleTags(const HttpCall& call, RequestRecord* record) {
  // Credential=AKID/DATE/REGION/SERVICE/aws4_request, in the Authorization header or, for a
  // presigned request, in X-Amz-Credential.
  std::string credential;
  if (auto it = call.headers.find("Authorization"); it != call.headers.end()) credential = it->second;
  if (auto q = call.target.find("X-Amz-Credential="); credential.empty() && q != std::string::npos)
    credential = call.target.substr(q);
  std::string service;
  if (auto at = credential.find("Credential="); at != std::string::npos) {
    std::string scope = credential.substr(at + 11);
    scope = scope.substr(0, scope.find_first_of(", &"));
    for (size_t i = 0; i < scope.size(); ++i)  // %2F in a presigned credential
      if (scope.compare(i, 3, "%2F") == 0 || scope.compare(i, 3, "%2f") == 0) scope.replace(i, 3, "/");
    std::vector<std::string> parts;
    for (size_t start = 0;;) {
      size_t slash = scope.find('/', start);
      parts.push_back(scope.substr(start, slash - start));
      if (slash == std::string::npos) break;
      start = slash + 1;
    }
    if (parts.size() == 5) service = parts[3];
  }
  return service == "rbin" ? HandleRbin(call, record) : HandleDlm(call, record);
}

JsonResponse Ec2Service::HandleJson(const HttpCall& call, RequestRecord* record) {
  const std::string rid = NewRequestId();
  RequestRecord scratch;
  RequestRecord& rec = record ? *record : scratch;
  rec.request_id = rid;
  auto fail = [&](const ApiError& e) {
    rec.error_code = e.code;
    nlohmann::json j = {{"error", {{"code", e.code}, {"message", e.message}}}, {"requestId", rid}};
    return JsonResponse{e.http_status, j.dump()};
  };
  RestCall route;
  Caller caller;
  if (auto ok = PrepareRest(call, *json_verifier_, "/api/v1/", &rec, &route, &caller); !ok)
    return fail(ok.error());
  auto out = api::DispatchJson(*context_, caller, route);
  if (!out) return fail(out.error());
  return {200, out->dump()};
}

}  // namespace snapvol
