// What every EC2 handler shares: the service's parts (catalog, store, jobs, accounts, clock),
// the resolved caller, and the steps each handler goes through (find the resource the caller
// may act on, authorise, honour DryRun, convert records to EC2 shapes). Internal to api/:
// only the handler files and ec2_service.cc include it.
// Thread-safety: an Ec2Context is shared by all request threads; its members are set once at
// construction, and the few mutable ones say what guards them.
#pragma once

#include <memory>
#include <map>
#include <nlohmann/json.hpp>
#include <span>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "api/accounts.h"
#include "api/api_error.h"
#include "api/ec2_service.h"
#include "api/ec2_shapes.h"
#include "api/filters.h"
#include "api/query_params.h"
#include "catalog/catalog.h"
#include "engine/recycle_bin.h"
#include "engine/direct_snapshots.h"
#include "api/ebs_limits.h"
#include "api/ebs_tokens.h"
#include "engine/snapshot_jobs.h"
#include "iam/policy.h"
#include "managed/volume_restores.h"
#include "store/repository.h"

namespace snapvol::api {

inline constexpr uint64_t kGiB = 1ull << 30;
inline constexpr char kUnauthorizedMessage[] = "You are not authorized to perform this operation.";

// Who is asking, resolved once per request from the verified access key.
struct Caller {
  std::string account_id, alias, user, access_key_id;
  bool admin = false;                 // sees and restores every account's resources
  std::vector<iam::Policy> policies;  // attached to the account; IAM decides with these
  RequestRecord* record = nullptr;    // where decisions are noted; never null in handlers
};

// Characters (code points) of UTF-8 text, as EC2 counts lengths.
size_t Chars(std::string_view s);
int64_t SizeGib(uint64_t bytes);
std::unexpected<ApiError> Fail(std::string_view code, std::string message);
ApiError NotFoundSnapshot(const std::string& id);
ApiError NotFoundVolume(const std::string& id);
ApiError NotFoundInstance(const std::string& id);
ApiError MalformedId(std::string_view code, const std::string& id, std::string_view prefix);
std::vector<Ec2Tag> ToEc2Tags(const std::vector<Tag>& tags);
// A snapshot's tags as EC2 clients see them: without snapvol's cut tags (kConsistencyTag,
// kChangedBlocksTag), which Ec2Snapshot carries as members of its own.
std::vector<Ec2Tag> SnapshotTags(const SnapshotRecord& s);
std::vector<Tag> FromEc2Tags(const std::vector<Ec2Tag>& tags);
// An instance's tags as EC2 shows them (its name is its Name tag, which the catalog keeps).
std::vector<Ec2Tag> InstanceTags(const InstanceRecord& i);
std::vector<Ec2Tag> VolumeTags(const VolumeRecord& v);  // the same for a volume
// Description of a snapshot: at most 255 characters.
ApiStatus CheckDescription(const std::string& d);
// Tags a caller sets: EC2's limits, and no key starting with aws: (the system's tags).
ApiStatus CheckTags(const std::vector<Tag>& tags, const char* what);
// EC2's words for a tag key a caller may not set or delete: one starting with aws:.
std::string ReservedTagKeyMessage(const std::string& key);
// DryRun=true: answer DryRunOperation after authorisation instead of acting.
ApiResult<bool> DryRun(const QueryParams& p);
std::unexpected<ApiError> DryRunOk();

// Aliases of accounts, looked up once per request rather than once per resource.
class AliasCache {
 public:
  explicit AliasCache(Catalog* catalog) : catalog_(catalog) {}
  const std::string& Get(const std::string& account_id);

 private:
  Catalog* catalog_;
  std::map<std::string, std::string> aliases_;
};

// ClientToken idempotency (CreateVolume): the result of each (account, token), remembered
// for the daemon's lifetime (at most kMax tokens, oldest forgotten first).
class ClientTokens {
 public:
  static constexpr size_t kMax = 10000;
  // Locks *held (kept until the caller's request is done, so a concurrent retry waits) and
  // returns the earlier result for key, if any. The same key with other parameters →
  // IdempotentParameterMismatch.
  ApiResult<std::optional<std::string>> Begin(const std::string& key, const std::string& fingerprint,
                                              std::unique_lock<std::mutex>* held);
  // REQUIRES: the lock from Begin is held.
  void Finish(const std::string& key, const std::string& fingerprint, const std::string& result);

 private:
  std::mutex mu_;
  std::map<std::string, std::pair<std::string, std::string>> done_;  // key → (fingerprint, result)
  std::vector<std::string> order_;                                   // keys, oldest first
};

class Ec2Context {
 public:
  Catalog* catalog = nullptr;
  Repository* repo = nullptr;
  ThreadPool* pool = nullptr;
  SnapshotJobs* jobs = nullptr;
  Accounts* accounts = nullptr;
  Ec2ServiceOptions options;
  Clock* clock = nullptr;
  std::optional<PageTokenCodec> tokens;
  // LockSnapshot and UnlockSnapshot read a lock, judge the change and write it: one at a
  // time, so that two racing changes cannot both be judged against the old lock.
  std::mutex lock_change_mu;
  ClientTokens idempotency;
  // Deleted snapshots go to the Recycle Bin when a rule (or this default) keeps them.
  RecycleBinSettings recycle_bin;
  // The EBS direct APIs (ebs_api.cc): snapshots written block by block, and the key of their
  // block and page tokens. A BlockToken lives ebs_token_ttl_ms.
  std::unique_ptr<DirectSnapshots> direct;
  std::optional<EbsTokenCodec> ebs_tokens;
  int64_t ebs_token_ttl_ms = 60 * 60 * 1000;
  // How long one minute of StartSnapshot's Timeout lasts: a minute, except in tests of the
  // expiry (SNAPVOL_EBS_TIMEOUT_MINUTE_MS, test-only).
  int64_t ebs_timeout_minute_ms = 60 * 1000;
  // Their limits (api/ebs_limits.h); set whenever direct is.
  std::unique_ptr<EbsRateLimiter> ebs_rate;
  std::unique_ptr<EbsPendingGate> ebs_pending;

  std::string Arn(const Caller& c, const std::string& type, const std::string& id) const;
  std::string AvailabilityZone() const { return options.region + "a"; }

  // action is "service:Name"; a bare name is an EC2 action. The decision is noted in the
  // caller's record; a denial is UnauthorizedOperation.
  ApiStatus Authorize(const Caller& c, const std::string& action, std::vector<std::string> resources,
                      const std::vector<Tag>& resource_tags = {}) const;

  // The resource by id if the caller may act on it: its own, or any for an administrator.
  // Malformed id → *.Malformed; absent or another account's → *.NotFound.
  ApiResult<VolumeRecord> VisibleVolume(const Caller& c, const std::string& id) const;
  ApiResult<SnapshotRecord> VisibleSnapshot(const Caller& c, const std::string& id) const;
  ApiResult<InstanceRecord> VisibleInstance(const Caller& c, const std::string& id) const;
  // A snapshot the caller may read: as VisibleSnapshot, or one shared with its account or with
  // everyone (createVolumePermission). What it may then do with it is IAM's decision.
  ApiResult<SnapshotRecord> ReadableSnapshot(const Caller& c, const std::string& id) const;
  // The snapshot by id, whoever owns it: *.Malformed or *.NotFound otherwise.
  ApiResult<SnapshotRecord> FindSnapshot(const std::string& id) const;

  Ec2Snapshot ToEc2(const SnapshotRecord& s, AliasCache& aliases) const;
  Ec2Snapshot ToEc2(const SnapshotRecord& s) const;
  Ec2Volume ToEc2(const VolumeRecord& v) const;

  // TagSpecification.N for resources of `type` (any other type is refused), checked. With
  // placement (CreateVolume), a tag kHostTag is not a tag but the host asked for: its value goes
  // to *placement (given twice or empty → InvalidParameterValue); every other aws: key is refused.
  ApiResult<std::vector<Tag>> TagsFromSpecifications(const QueryParams& p, const char* type,
                                                     std::optional<std::string>* placement = nullptr) const;

  // The host a new volume goes on (docs/multi-host.md part 3): '' for this host; else the id of
  // the host named by `asked` (its name or id), which must be up. Unknown (or a name two hosts
  // share) → InvalidParameterValue naming it; not up → IncorrectState naming it and its state.
  ApiResult<std::string> PlaceVolume(const std::string& asked);
  // Where an approved restore request puts its new volume: on the host that holds the
  // snapshot's volume while that host is up (the team's server is there), else here ('').
  // *note says which host and why, for the request's decision, when that is news: the volume
  // goes to another host, or stays here because that host is not up; else it is cleared.
  std::string PlaceRestore(const SnapshotRecord& s, std::string* note);

  // Restores of snapshots into volumes that run after the request is answered.
  std::unique_ptr<VolumeRestores> restores;

  // Starts restoring completed snapshot s into a new volume of its account; returns the
  // volume (`creating`, or `available` and loading lazily). host: PlaceVolume's answer; another
  // host's id writes the volume `creating` on that host and queues it there
  // (Catalog::InsertRoutedVolume), and that host's claimer makes it (MakeClaimedVolume).
  ApiResult<VolumeRecord> RestoreToNewVolume(const SnapshotRecord& s, const std::string& volume_id,
                                             const std::string& volume_type = "gp2", const std::vector<Tag>& tags = {},
                                             const std::string& host = "");
  // Writes v (`creating`, no path) as a creation queued for host, after the quota's early answer.
  ApiResult<VolumeRecord> QueueVolumeOn(VolumeRecord v, const std::string& host);
  // On the host a volume was placed on: makes the data of v, claimed by runner (an empty
  // volume's sparse file, or a restore of its snapshot, lazily as RestoreToNewVolume does), and
  // records it (Catalog::FinishVolumeCreation): `available`, or `error` with the reason. A
  // creation ended meanwhile (the sweep) keeps nothing it made.
  Status MakeClaimedVolume(VolumeRecord v, const std::string& runner);
};

// One EC2 Query action: its name, the parameters it accepts (an entry ending in '.' covers
// every name with that prefix; Action and Version are always accepted) and its handler. The
// dispatcher refuses any other parameter by name before the handler runs.
using Ec2Handler = ApiResult<std::string> (*)(Ec2Context& x, const Caller& c, const QueryParams& p,
                                              const std::string& request_id);
struct Ec2Action {
  std::string_view name;
  std::span<const std::string_view> params;
  Ec2Handler handler;
};

// Each handler file lists its actions.
std::span<const Ec2Action> SnapshotActions();
std::span<const Ec2Action> SnapshotLockActions();
std::span<const Ec2Action> SnapshotAttributeActions();
std::span<const Ec2Action> TagActions();
std::span<const Ec2Action> VolumeActions();
std::span<const Ec2Action> VolumeDescribeActions();
std::span<const Ec2Action> InstanceActions();
std::span<const Ec2Action> RestoreRequestActions();
std::span<const Ec2Action> RecycleBinActions();  // ListSnapshotsInRecycleBin, RestoreSnapshotFromRecycleBin
std::span<const Ec2Action> ReplaceRootVolumeActions();

// A REST request of the JSON and DLM APIs: the method, the path's segments after the prefix
// (empty ones kept: "/policies/id/" has a last empty segment), the query (a name may repeat)
// and the JSON object body.
struct RestCall {
  std::string method;
  std::vector<std::string> parts;
  std::multimap<std::string, std::string> query;
  nlohmann::json body;
};
// What one REST route takes: query names given at most once, query names that may repeat (a
// list), and JSON body members. Anything else is refused by name (UnknownParameter); a single
// name given twice is InvalidParameter. Routes whose body a later step checks pass
// check_body = false.
struct RestParams {
  std::initializer_list<std::string_view> query = {};
  std::initializer_list<std::string_view> lists = {};
  std::initializer_list<std::string_view> body = {};
  bool check_body = true;
};
ApiStatus CheckRestParams(const RestCall& r, const RestParams& allowed);
ApiResult<nlohmann::json> DispatchJson(Ec2Context& x, Caller& c, const RestCall& r);
ApiResult<nlohmann::json> DispatchDlm(Ec2Context& x, Caller& c, const RestCall& r);
// The Recycle Bin's REST API (rbin_api.cc): a reply carries its HTTP status (CreateRule and
// TagResource answer 201, DeleteRule and UntagResource 204 with no body). Error codes are
// "Type:REASON" (e.g. "ConflictException:INVALID_RULE_STATE"); Ec2Service::HandleRbin splits them.
struct RestReply {
  int http_status = 200;
  nlohmann::json body;
};
ApiResult<RestReply> DispatchRbin(Ec2Context& x, Caller& c, const RestCall& r);
// /api/v1/jobs…: maintenance runs (jobs_api.cc).
ApiResult<nlohmann::json> DispatchJobs(Ec2Context& x, Caller& c, const RestCall& r);
// /api/v1/hosts…: evacuating a host that is not up (hosts_api.cc).
ApiResult<nlohmann::json> DispatchHosts(Ec2Context& x, Caller& c, const RestCall& r);

// Every action of the Query API, by name.
const std::map<std::string_view, const Ec2Action*>& Ec2ActionTable();

}  // namespace snapvol::api
