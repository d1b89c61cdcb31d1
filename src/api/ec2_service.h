// Ec2Service: the EC2 Query API of snapvold (and its JSON API for the console). Takes one HTTP request, verifies its SigV4
// signature, parses the Query parameters, authorises the action with the caller's IAM
// policy, runs the handler, and returns the XML document and status EC2 would send.
// Every resource is scoped to the caller's account: another account's snapshot is
// `InvalidSnapshot.NotFound`, never visible.
// Thread-safety: Handle may be called from many threads at once.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "api/filters.h"
#include "api/xml_writer.h"
#include "catalog/catalog.h"
#include "api/accounts.h"
#include "api/ebs_limits.h"
#include "engine/snapshot_jobs.h"
#include "iam/sigv4.h"
#include "store/repository.h"

namespace snapvol {
class UsageAccounting;
class RollbackTasks;
namespace api {
struct Caller;
struct RestCall;
class Ec2Context;
}  // namespace api

namespace lifecycle {
class MaintenanceScheduler;
}  // namespace lifecycle

struct Ec2ServiceOptions {
  std::string region = "us-east-1";
  std::string restore_dir;     // where CreateVolume from a snapshot writes new volumes
  std::string audit_log_path;  // what GET /api/v1/audit reads (JSON lines); empty: none
  std::function<void(const std::string& volume_id)> on_volume_deleted;  // optional
  // Called after the catalog says a volume is detached (and again before it is deleted): ends
  // its open NBD connections and returns once none can write to it any more (optional).
  std::function<Status(const std::string& volume_id)> on_volume_detached;
  // Lazy restores (optional; without them CreateVolume from a snapshot writes the whole file
  // first): create_lazy makes the volume's files, start_lazy (after the catalog row exists)
  // opens it and starts the background copy, load_percent tells its progress (nullopt: done).
  std::function<Status(const VolumeRecord&)> create_lazy;
  std::function<Status(const VolumeRecord&)> start_lazy;
  std::function<std::optional<int>(const std::string& volume_id)> load_percent;
  // How long without a heartbeat the host holding a volume is unreachable
  // (--host-timeout-seconds): DescribeVolumeStatus answers insufficient-data for the volumes of
  // a host that is not up (docs/multi-host.md part 5).
  int64_t host_timeout_ms = kDefaultHostTimeoutMs;
  // ModifySnapshotAttribute may share a snapshot with the group "all" (every account of this
  // service). Off by default: teams share with account ids.
  bool allow_public_sharing = false;
  // How long the web console keeps an idle session before it signs out (whoami tells it;
  // snapvold --console-idle-timeout). Enforced by the console: the API itself is stateless.
  int64_t console_idle_seconds = 30 * 60;
  // Per-snapshot and per-account usage (optional; without it the JSON API says it is not kept).
  UsageAccounting* usage = nullptr;
  // POST /api/v1/notifications/test (administrators): sends a test notification through the
  // configured channels and returns the delivery report as a JSON object's text; empty when
  // no channel is configured. Unset: the endpoint says notifications are not configured.
  std::function<std::string(const std::string& requested_by)> notify_test;
  // The maintenance jobs behind /api/v1/jobs (optional; without it those paths answer that
  // maintenance jobs do not run in this process).
  lifecycle::MaintenanceScheduler* maintenance = nullptr;
  // The account-wide default Recycle Bin rule for every account, in days (0: none).
  int64_t recycle_bin_default_retention_days = 0;
  // In-place rollbacks (CreateReplaceRootVolumeTask, RestoreVolumeFromSnapshot); optional:
  // without it those actions answer that rollbacks do not run in this process.
  RollbackTasks* rollbacks = nullptr;
  // The EBS direct APIs' request rates and pending-snapshot cap (snapvold --ebs-…).
  api::EbsLimits ebs_limits;
};

struct JsonResponse {
  int http_status = 200;
  std::string body;  // a JSON document; errors are {"error": {"code", "message"}}
  std::vector<std::pair<std::string, std::string>> headers = {};  // extra response headers
  std::string content_type = "application/json";  // GetSnapshotBlock: application/octet-stream
};

struct HttpCall {
  std::string method, target;  // target: raw path and query
  iam::HeaderMap headers;
  std::string body;
};

// What happened to one request, for the request log and the audit log.
struct RequestRecord {
  std::string request_id, action, account_id, user, access_key_id;
  std::string error_code;  // empty on success
  std::string decision;    // the IAM decision, e.g. "Allow by administrator[0] on *"
  std::string detail;      // for operators only (e.g. why a signature failed)
  // The account whose resource an administrator acted on, when it is not the caller's own.
  std::string resource_account_id;
};

class Ec2Service {
 public:
  // secrets_key: the data dir's secrets key; the key that signs page tokens (NextToken) is
  // derived from it for that purpose alone (core/key_derivation.h).
  Ec2Service(Catalog* catalog, Repository* repo, ThreadPool* pool, SnapshotJobs* jobs,
             Accounts* accounts, const Key256& secrets_key, Ec2ServiceOptions options,
             Clock* clock = Clock::Real());
  // Cancels and joins background restores (their volumes end `error`).
  ~Ec2Service();
  Ec2Service(const Ec2Service&) = delete;
  Ec2Service& operator=(const Ec2Service&) = delete;
  // record, when not null, receives what happened (for logging).
  api::XmlResponse Handle(const HttpCall& call, RequestRecord* record = nullptr);
  // The JSON API under /api/v1/ (SigV4 service "snapvol"), documented in docs/api.md.
  JsonResponse HandleJson(const HttpCall& call, RequestRecord* record = nullptr);
  // Amazon DLM's REST API under /policies (SigV4 service "dlm"): lifecycle policies, plus
  // GET /policies/{id}/runs. Documented in docs/api.md.
  JsonResponse HandleDlm(const HttpCall& call, RequestRecord* record = nullptr);
  // The REST-JSON APIs by path: /api/ (HandleJson), /policies (HandleDlm), /rules and
  // /list-rules (HandleRbin), /tags/ (HandleTags), /snapshots (HandleEbs). IsRestPath: whether
  // path is one of them.
  static bool IsRestPath(std::string_view path);
  JsonResponse HandleRest(const HttpCall& call, RequestRecord* record = nullptr);
  // Amazon Recycle Bin's REST API (SigV4 service "rbin"): /rules…, /list-rules, /tags/{arn}.
  JsonResponse HandleRbin(const HttpCall& call, RequestRecord* record = nullptr);
  // /tags/{arn} belongs to DLM and to the Recycle Bin alike: the SigV4 credential scope's
  // service says which (rbin, else DLM, whose verifier then refuses other services).
  JsonResponse HandleTags(const HttpCall& call, RequestRecord* record = nullptr);
  // The EBS direct APIs (SigV4 service "ebs"): /snapshots… (api/ebs_api.h).
  JsonResponse HandleEbs(const HttpCall& call, RequestRecord* record = nullptr);
  // A volume another host placed on this one (Catalog::ClaimVolumeCreation claimed it for
  // runner): makes its data here as CreateVolume would and records the outcome (`available`,
  // or `error` with the reason). docs/multi-host.md part 3.
  Status MakeClaimedVolume(const VolumeRecord& v, const std::string& runner);

 private:
  // Verifies the signature and resolves the caller from the key's identity, looked up once.
  api::ApiStatus Authenticate(const HttpCall& call, const iam::SigV4Verifier& verifier, RequestRecord* rec,
                              api::Caller* caller);
  api::ApiStatus PrepareRest(const HttpCall& call, const iam::SigV4Verifier& verifier, std::string_view prefix,
                             RequestRecord* rec, api::RestCall* out, api::Caller* caller);
  std::unique_ptr<api::Ec2Context> context_;
  std::unique_ptr<iam::SigV4Verifier> verifier_;       // service "ec2"
  std::unique_ptr<iam::SigV4Verifier> json_verifier_;  // service "snapvol"
  std::unique_ptr<iam::SigV4Verifier> dlm_verifier_;   // service "dlm"
  std::unique_ptr<iam::SigV4Verifier> rbin_verifier_;  // service "rbin"
  std::unique_ptr<iam::SigV4Verifier> ebs_verifier_;   // service "ebs"
};

}  // namespace snapvol
