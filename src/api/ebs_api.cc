// The EBS direct APIs: routes, parameters, shapes and errors. The work is the engine's
// (engine/direct_snapshots.h writes, store/block_map_diff.h lists); reads go through
// SnapshotBlockReader (ranged pack reads in store format 2).
#include "api/ebs_api.h"

#include <algorithm>
#include <charconv>
#include <regex>
#include <set>

#include "api/ebs_tokens.h"
#include "api/ec2_context.h"
#include "core/ids.h"
#include "store/block_map_diff.h"
#include "engine/direct_snapshots.h"
#include "engine/snapshot_engine.h"

namespace snapvol::api {
namespace {

using json = nlohmann::json;

constexpr uint64_t kGiB = 1ull << 30;
constexpr int64_t kMaxVolumeGiB = 65536;  // EBS's largest snapshot: 64 TiB
constexpr int64_t kMinMaxResults = 100, kMaxMaxResults = 10000;

std::unexpected<ApiError> Invalid(std::string_view reason, std::string message) {
  return std::unexpected(ApiError{"ValidationException:" + std::string(reason), std::move(message), 400});
}
std::unexpected<ApiError> NotFound(const std::string& id) {
  return std::unexpected(ApiError{"ResourceNotFoundException:SNAPSHOT_NOT_FOUND",
                                  "The snapshot " + id + " does not exist.", 404});
}
std::unexpected<ApiError> Conflict(std::string message) {
  return std::unexpected(ApiError{"ConflictException", std::move(message), 409});
}
std::unexpected<ApiError> Internal(const Error& e) { return std::unexpected(FromError(e)); }

// One request of op from the caller's account (and on snapshot_id, when given) against the rate
// limits: RequestThrottledException when a bucket is empty. Checked after the snapshot is
// found and the caller authorised, so that no one drains another account's buckets.
ApiStatus Admit(Ec2Context& x, EbsOp op, const Caller& c, const std::string& snapshot_id = "") {
  if (!x.ebs_rate) return {};
  return x.ebs_rate->Admit(op, c.account_id, snapshot_id);
}

// How many direct snapshots of the caller's account are pending. REQUIRES: the pending gate
// is held, so that no other StartSnapshot adds one meanwhile.
ApiResult<int64_t> PendingDirectSnapshots(Ec2Context& x, const Caller& c) {
  SnapshotFilter f;
  f.account_id = c.account_id;
  f.volume_id = kDirectVolumeId;
  f.state = SnapshotState::kPending;
  auto pending = x.catalog->ListSnapshots(f);
  if (!pending) return Internal(pending.error());
  return static_cast<int64_t>(pending->size());
}

double EpochSeconds(int64_t ms) { return static_cast<double>(ms) / 1000.0; }

bool IsEbsSnapshotId(const std::string& id) {
  static const std::regex re("^snap-[0-9a-f]+$");
  return id.size() <= 64 && std::regex_match(id, re);
}

std::string SnapshotArn(const Ec2Context& x, const std::string& account, const std::string& id) {
  return "arn:aws:ec2:" + x.options.region + ":" + account + ":snapshot/" + id;
}

std::optional<std::string> Header(const EbsCall& call, const std::string& name) {
  auto it = call.headers->find(name);
  if (it == call.headers->end()) return std::nullopt;
  return it->second;
}

std::optional<int64_t> ParseInt(std::string_view s) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

ApiStatus CheckQuery(const EbsCall& call, std::initializer_list<std::string_view> allowed) {
  for (const auto& [k, _] : call.query) {
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end())
      return Invalid("INVALID_PARAMETER_VALUE", "Unknown query parameter " + k + ".");
    if (call.query.count(k) > 1) return Invalid("INVALID_PARAMETER_VALUE", "Query parameter " + k + " is given twice.");
  }
  return {};
}

std::optional<std::string> Query(const EbsCall& call, const std::string& name) {
  auto it = call.query.find(name);
  if (it == call.query.end()) return std::nullopt;
  return it->second;
}

// The caller's snapshot (or any, for an administrator): ResourceNotFound otherwise.
ApiResult<SnapshotRecord> OwnSnapshot(Ec2Context& x, const Caller& c, const std::string& id) {
  if (!IsEbsSnapshotId(id) || !IsSnapshotId(id))
    return Invalid("INVALID_SNAPSHOT_ID", "The snapshot id " + id + " is malformed.");
  auto s = x.VisibleSnapshot(c, id);
  if (!s) return s.error().http_status >= 500 ? std::unexpected(s.error()) : NotFound(id);
  return s;
}

// A completed snapshot the caller may read (own, shared, or any for an administrator), after
// IAM allowed action on it.
ApiResult<SnapshotRecord> ReadableCompleted(Ec2Context& x, const Caller& c, const std::string& id,
                                            const std::string& action) {
  if (!IsEbsSnapshotId(id) || !IsSnapshotId(id))
    return Invalid("INVALID_SNAPSHOT_ID", "The snapshot id " + id + " is malformed.");
  auto s = x.ReadableSnapshot(c, id);
  if (!s) return s.error().http_status >= 500 ? std::unexpected(s.error()) : NotFound(id);
  API_RETURN_IF_ERROR(x.Authorize(c, action, {SnapshotArn(x, s->account_id, id)}, s->tags));
  if (s->state != SnapshotState::kCompleted)
    return Invalid("INVALID_SNAPSHOT_ID", "The snapshot " + id + " is not completed.");
  return s;
}

ApiResult<ManifestMeta> Manifest(Ec2Context& x, const std::string& id) {
  auto m = x.repo->GetManifest(id);
  if (!m) return m.error().code() == ErrorCode::kNotFound ? NotFound(id) : Internal(m.error());
  if (m->block_size != kDirectBlockSize)
    return Invalid("INVALID_SNAPSHOT_ID", "The snapshot " + id + " does not have 512 KiB blocks.");
  return std::move(*m);
}

json TagsJson(const std::vector<Tag>& tags) {
  json out = json::array();
  for (const auto& t : tags)
    if (!HasReservedTagPrefix(t.key)) out.push_back({{"Key", t.key}, {"Value", t.value}});
  return out;
}

// ---- StartSnapshot ----------------------------------------------------------------------

ApiResult<EbsReply> StartSnapshot(Ec2Context& x, const Caller& c, const EbsCall& call) {
  API_RETURN_IF_ERROR(CheckQuery(call, {}));
  json body = call.body->empty() ? json::object() : json::parse(*call.body, nullptr, false);
  if (body.is_discarded() || !body.is_object())
    return Invalid("INVALID_PARAMETER_VALUE", "The request body must be a JSON object.");
  static const std::set<std::string> kMembers = {"VolumeSize", "ParentSnapshotId", "Tags", "Description",
                                                 "ClientToken", "Encrypted", "KmsKeyArn", "Timeout"};
  for (const auto& [k, _] : body.items())
    if (!kMembers.count(k)) return Invalid("INVALID_PARAMETER_VALUE", "Unknown member " + k + ".");
  API_RETURN_IF_ERROR(x.Authorize(c, "ebs:StartSnapshot", {SnapshotArn(x, c.account_id, "*")}));

  if (!body.contains("VolumeSize")) return Invalid("INVALID_PARAMETER_VALUE", "VolumeSize is required.");
  if (!body["VolumeSize"].is_number_integer())
    return Invalid("INVALID_VOLUME_SIZE", "VolumeSize must be an integer (GiB).");
  const int64_t gib = body["VolumeSize"].get<int64_t>();
  if (gib < 1 || gib > kMaxVolumeGiB)
    return Invalid("INVALID_VOLUME_SIZE", "VolumeSize must be 1 to 65536 GiB.");
  DirectStart req;
  req.owner_id = c.account_id;
  req.volume_size = static_cast<uint64_t>(gib) * kGiB;
  int64_t timeout_min = 60;
  if (body.contains("Timeout")) {
    if (!body["Timeout"].is_number_integer()) return Invalid("INVALID_PARAMETER_VALUE", "Timeout must be an integer.");
    timeout_min = body["Timeout"].get<int64_t>();
    if (timeout_min < 10 || timeout_min > 4320)
      return Invalid("INVALID_PARAMETER_VALUE", "Timeout must be 10 to 4320 minutes.");
  }
  req.timeout_ms = timeout_min * x.ebs_timeout_minute_ms;
  if (body.contains("Description")) {
    if (!body["Description"].is_string()) return Invalid("INVALID_PARAMETER_VALUE", "Description must be a string.");
    req.description = body["Description"].get<std::string>();
    if (auto ok = CheckDescription(req.description); !ok) return Invalid("INVALID_PARAMETER_VALUE", ok.error().message);
  }
  if (body.contains("Tags")) {
    if (!body["Tags"].is_array()) return Invalid("INVALID_TAG", "Tags must be a list.");
    for (const auto& t : body["Tags"]) {
      if (!t.is_object() || !t.contains("Key") || !t["Key"].is_string() ||
          (t.contains("Value") && !t["Value"].is_string()) || t.size() > (t.contains("Value") ? 2u : 1u))
        return Invalid("INVALID_TAG", "Each tag is {\"Key\": string, \"Value\": string}.");
      req.tags.push_back({t["Key"].get<std::string>(), t.value("Value", "")});
    }
    if (auto ok = CheckTags(req.tags, "snapshot"); !ok) return Invalid("INVALID_TAG", ok.error().message);
  }
  if (body.contains("KmsKeyArn"))
    return Invalid("INVALID_CUSTOMER_KEY",
                   "snapvol has no KMS: an encrypted store encrypts every snapshot with its own key; omit KmsKeyArn.");
  if (body.contains("Encrypted")) {
    if (!body["Encrypted"].is_boolean()) return Invalid("INVALID_PARAMETER_VALUE", "Encrypted must be a boolean.");
    if (body["Encrypted"].get<bool>() && !x.repo->encrypted())
      return Invalid("INVALID_PARAMETER_VALUE",
                     "Encrypted is true but this store is not encrypted (snapvol init --encrypt makes one that is).");
  }
  if (body.contains("ParentSnapshotId")) {
    if (!body["ParentSnapshotId"].is_string())
      return Invalid("INVALID_PARAMETER_VALUE", "ParentSnapshotId must be a string.");
    req.parent_id = body["ParentSnapshotId"].get<std::string>();
    API_ASSIGN_OR_RETURN(SnapshotRecord parent, OwnSnapshot(x, c, req.parent_id));
    if (parent.state != SnapshotState::kCompleted)
      return Invalid("INVALID_PARAMETER_VALUE", "The parent snapshot " + req.parent_id + " is not completed.");
    if (parent.volume_size_bytes > req.volume_size)
      return Invalid("INVALID_VOLUME_SIZE", "VolumeSize is smaller than the parent snapshot's volume.");
  }

  std::unique_lock<std::mutex> held;
  std::string token_key, fingerprint;
  if (body.contains("ClientToken")) {
    if (!body["ClientToken"].is_string() || body["ClientToken"].get<std::string>().size() > 255)
      return Invalid("INVALID_PARAMETER_VALUE", "ClientToken must be a string of at most 255 characters.");
    token_key = c.account_id + "|ebs|" + body["ClientToken"].get<std::string>();
    json fp = body;
    fp.erase("ClientToken");
    fingerprint = fp.dump();
    auto earlier = x.idempotency.Begin(token_key, fingerprint, &held);
    if (!earlier) return Conflict("The ClientToken was used before with other parameters.");
    if (*earlier) return EbsReply{201, **earlier};
  }
  std::unique_lock<std::mutex> gate;
  if (x.ebs_pending && x.ebs_pending->enabled()) {
    gate = x.ebs_pending->Lock();
    API_ASSIGN_OR_RETURN(int64_t pending, PendingDirectSnapshots(x, c));
    API_RETURN_IF_ERROR(x.ebs_pending->Check(pending));
  }
  auto started = x.direct->Start(req);
  if (!started) {
    if (started.error().code() == ErrorCode::kInvalidArgument)
      return Invalid("INVALID_PARAMETER_VALUE", started.error().message());
    if (started.error().code() == ErrorCode::kNotFound) return NotFound(req.parent_id);
    if (started.error().code() == ErrorCode::kQuotaExceeded)
      return std::unexpected(ApiError{"ServiceQuotaExceededException:DEPENDENCY_SERVICE_QUOTA_EXCEEDED",
                                      started.error().message(), 402});
    return Internal(started.error());
  }
  const SnapshotRecord& s = *started;
  json out = {{"SnapshotId", s.snapshot_id}, {"OwnerId", s.account_id}, {"Status", "pending"},
              {"StartTime", EpochSeconds(s.start_time_ms)}, {"VolumeSize", gib},
              {"BlockSize", kDirectBlockSize}, {"Description", s.description}, {"Tags", TagsJson(s.tags)}};
  if (!s.parent_snapshot_id.empty()) out["ParentSnapshotId"] = s.parent_snapshot_id;
  std::string text = out.dump();
  if (!token_key.empty()) x.idempotency.Finish(token_key, fingerprint, text);
  return EbsReply{201, std::move(text)};
}

// ---- PutSnapshotBlock, CompleteSnapshot -------------------------------------------------

ApiResult<uint64_t> BlockIndex(const std::string& s) {
  auto v = ParseInt(s);
  if (!v || *v < 0) return Invalid("INVALID_BLOCK", "The block index " + s + " is not a non-negative integer.");
  return static_cast<uint64_t>(*v);
}

ApiResult<Digest> ChecksumHeader(const std::string& value) {
  auto raw = Base64Decode(value);
  if (!raw || raw->size() != 32)
    return Invalid("INVALID_PARAMETER_VALUE", "The checksum must be a base64-encoded SHA-256 digest.");
  Digest d{};
  std::copy(raw->begin(), raw->end(), d.begin());
  return d;
}

ApiResult<EbsReply> PutSnapshotBlock(Ec2Context& x, const Caller& c, const EbsCall& call, const std::string& id,
                                     const std::string& index_text) {
  API_RETURN_IF_ERROR(CheckQuery(call, {}));
  API_ASSIGN_OR_RETURN(SnapshotRecord s, OwnSnapshot(x, c, id));
  API_RETURN_IF_ERROR(x.Authorize(c, "ebs:PutSnapshotBlock", {SnapshotArn(x, s.account_id, id)}, s.tags));
  API_RETURN_IF_ERROR(Admit(x, EbsOp::kPutBlock, c, id));
  API_ASSIGN_OR_RETURN(uint64_t index, BlockIndex(index_text));
  auto length = Header(call, "x-amz-Data-Length");
  auto checksum = Header(call, "x-amz-Checksum");
  auto algorithm = Header(call, "x-amz-Checksum-Algorithm");
  if (!length || !checksum || !algorithm)
    return Invalid("INVALID_PARAMETER_VALUE", "x-amz-Data-Length, x-amz-Checksum and x-amz-Checksum-Algorithm are required.");
  if (*algorithm != "SHA256") return Invalid("INVALID_PARAMETER_VALUE", "The only checksum algorithm is SHA256.");
  auto n = ParseInt(*length);
  if (!n || *n != static_cast<int64_t>(call.body->size()))
    return Invalid("INVALID_PARAMETER_VALUE", "x-amz-Data-Length does not match the body's length.");
  if (*n != kDirectBlockSize)
    return Invalid("INVALID_PARAMETER_VALUE", "The block data must be exactly 524288 bytes.");
  std::optional<int64_t> progress;
  if (auto p = Header(call, "x-amz-Progress")) {
    progress = ParseInt(*p);
    if (!progress || *progress < 0 || *progress > 100)
      return Invalid("INVALID_PARAMETER_VALUE", "x-amz-Progress must be 0 to 100.");
  }
  API_ASSIGN_OR_RETURN(Digest sha, ChecksumHeader(*checksum));
  if (s.state != SnapshotState::kPending)
    return Invalid("INVALID_SNAPSHOT_ID", "The snapshot " + id + " is not pending.");
  const uint64_t blocks = x.direct->PendingBlockCount(id);
  if (blocks == 0)
    return Invalid("INVALID_SNAPSHOT_ID", "The snapshot " + id + " was not started by StartSnapshot.");
  if (index >= blocks)
    return Invalid("INVALID_BLOCK", "The block index " + std::to_string(index) + " is outside the volume (" +
                                        std::to_string(blocks) + " blocks).");
  auto data = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(call.body->data()), call.body->size());
  if (auto st = x.direct->PutBlock(id, index, data, sha); !st) {
    if (st.error().code() == ErrorCode::kInvalidArgument) return Invalid("INVALID_PARAMETER_VALUE", st.error().message());
    if (st.error().code() == ErrorCode::kNotFound) return Invalid("INVALID_SNAPSHOT_ID", st.error().message());
    return Internal(st.error());
  }
  if (progress) (void)x.catalog->UpdateProgress(id, std::to_string(*progress) + "%");
  return EbsReply{201, "", "application/json", {{"x-amz-Checksum", *checksum}, {"x-amz-Checksum-Algorithm", "SHA256"}}};
}

std::string StatusOf(const SnapshotRecord& s) {
  return s.state == SnapshotState::kCompleted ? "completed" : s.state == SnapshotState::kError ? "error" : "pending";
}

ApiResult<EbsReply> CompleteSnapshot(Ec2Context& x, const Caller& c, const EbsCall& call, const std::string& id) {
  API_RETURN_IF_ERROR(CheckQuery(call, {}));
  API_ASSIGN_OR_RETURN(SnapshotRecord s, OwnSnapshot(x, c, id));
  API_RETURN_IF_ERROR(x.Authorize(c, "ebs:CompleteSnapshot", {SnapshotArn(x, s.account_id, id)}, s.tags));
  auto count_text = Header(call, "x-amz-ChangedBlocksCount");
  if (!count_text) return Invalid("INVALID_PARAMETER_VALUE", "x-amz-ChangedBlocksCount is required.");
  auto count = ParseInt(*count_text);
  if (!count || *count < 0) return Invalid("INVALID_PARAMETER_VALUE", "x-amz-ChangedBlocksCount must be a non-negative integer.");
  auto checksum = Header(call, "x-amz-Checksum");
  auto algorithm = Header(call, "x-amz-Checksum-Algorithm");
  auto method = Header(call, "x-amz-Checksum-Aggregation-Method");
  std::optional<Digest> linear;
  if (checksum || algorithm || method) {
    if (!checksum || !algorithm || !method)
      return Invalid("INVALID_PARAMETER_VALUE",
                     "x-amz-Checksum, x-amz-Checksum-Algorithm and x-amz-Checksum-Aggregation-Method go together.");
    if (*algorithm != "SHA256") return Invalid("INVALID_PARAMETER_VALUE", "The only checksum algorithm is SHA256.");
    if (*method != "LINEAR") return Invalid("INVALID_PARAMETER_VALUE", "The only aggregation method is LINEAR.");
    API_ASSIGN_OR_RETURN(linear, ChecksumHeader(*checksum));
  }
  if (s.state != SnapshotState::kPending) return EbsReply{202, json{{"Status", StatusOf(s)}}.dump()};
  auto done = x.direct->Complete(id, static_cast<uint64_t>(*count), linear);
  if (!done) {
    if (done.error().code() == ErrorCode::kInvalidArgument) return Invalid("INVALID_PARAMETER_VALUE", done.error().message());
    if (done.error().code() == ErrorCode::kNotFound) return Invalid("INVALID_SNAPSHOT_ID", done.error().message());
    return Internal(done.error());
  }
  return EbsReply{202, json{{"Status", StatusOf(*done)}}.dump()};
}

// ---- Listings and reads -----------------------------------------------------------------

struct Paging {
  uint64_t start = 0;
  size_t max = kMaxMaxResults;
};

ApiResult<Paging> ReadPaging(Ec2Context& x, const EbsCall& call, const std::string& listing) {
  Paging p;
  if (auto m = Query(call, "maxResults")) {
    auto v = ParseInt(*m);
    if (!v || *v < kMinMaxResults || *v > kMaxMaxResults)
      return Invalid("INVALID_PARAMETER_VALUE", "MaxResults must be 100 to 10000.");
    p.max = static_cast<size_t>(*v);
  }
  if (auto s = Query(call, "startingBlockIndex")) {
    auto v = ParseInt(*s);
    if (!v || *v < 0) return Invalid("INVALID_PARAMETER_VALUE", "StartingBlockIndex must be a non-negative integer.");
    p.start = static_cast<uint64_t>(*v);
  }
  if (auto t = Query(call, "pageToken")) {
    auto next = x.ebs_tokens->CheckPage(*t, listing);
    if (!next) return Invalid("INVALID_PAGE_TOKEN", "The NextToken is not valid for this listing.");
    p.start = std::max(p.start, *next);
  }
  return p;
}

// Whether the two snapshots are of one lineage: one is an ancestor of the other, or both were
// taken of the same volume.
ApiResult<bool> Related(Ec2Context& x, const SnapshotRecord& a, const SnapshotRecord& b) {
  if (a.snapshot_id == b.snapshot_id) return true;
  if (a.volume_id == b.volume_id && a.volume_id != kDirectVolumeId) return true;
  auto reaches = [&](const SnapshotRecord& from, const std::string& target) -> ApiResult<bool> {
    std::string at = from.parent_snapshot_id;
    for (int hops = 0; !at.empty() && hops < 100000; ++hops) {
      if (at == target) return true;
      auto s = x.catalog->GetSnapshot(at);
      if (!s) return s.error().code() == ErrorCode::kNotFound ? ApiResult<bool>(false) : Internal(s.error());
      at = s->parent_snapshot_id;
    }
    return false;
  };
  API_ASSIGN_OR_RETURN(bool up, reaches(b, a.snapshot_id));
  if (up) return true;
  return reaches(a, b.snapshot_id);
}

ApiResult<EbsReply> ListBlocks(Ec2Context& x, const Caller& c, const EbsCall& call, const std::string& second_id,
                               bool changed) {
  if (changed) API_RETURN_IF_ERROR(CheckQuery(call, {"firstSnapshotId", "pageToken", "maxResults", "startingBlockIndex"}));
  else API_RETURN_IF_ERROR(CheckQuery(call, {"pageToken", "maxResults", "startingBlockIndex"}));
  const std::string action = changed ? "ebs:ListChangedBlocks" : "ebs:ListSnapshotBlocks";
  API_ASSIGN_OR_RETURN(SnapshotRecord second, ReadableCompleted(x, c, second_id, action));
  API_RETURN_IF_ERROR(Admit(x, changed ? EbsOp::kListChangedBlocks : EbsOp::kListBlocks, c));
  std::optional<ManifestMeta> first_meta;
  std::string first_id = changed ? Query(call, "firstSnapshotId").value_or("") : "";
  if (!first_id.empty()) {
    API_ASSIGN_OR_RETURN(SnapshotRecord first, ReadableCompleted(x, c, first_id, action));
    API_ASSIGN_OR_RETURN(bool related, Related(x, first, second));
    if (!related)
      return Invalid("UNRELATED_SNAPSHOTS", "The snapshots " + first_id + " and " + second_id + " are not of one lineage.");
    API_ASSIGN_OR_RETURN(first_meta, Manifest(x, first_id));
  }
  API_ASSIGN_OR_RETURN(ManifestMeta second_meta, Manifest(x, second_id));
  const std::string listing = (changed ? "changed " : "blocks ") + first_id + " " + second_id;
  API_ASSIGN_OR_RETURN(Paging page, ReadPaging(x, call, listing));
  std::optional<uint64_t> next;
  auto diff = DiffBlockMaps(x.repo, first_meta, second_meta, page.start, page.max, &next);
  if (!diff) return Internal(diff.error());
  const int64_t expiry = x.clock->NowMillis() + x.ebs_token_ttl_ms;
  json list = json::array();
  for (const auto& d : *diff) {
    if (!changed) {
      list.push_back({{"BlockIndex", d.index}, {"BlockToken", x.ebs_tokens->Block(second_id, d.index, expiry)}});
      continue;
    }
    json e = {{"BlockIndex", d.index}};
    if (first_meta && !IsZeroDigest(d.first)) e["FirstBlockToken"] = x.ebs_tokens->Block(first_id, d.index, expiry);
    if (!IsZeroDigest(d.second)) e["SecondBlockToken"] = x.ebs_tokens->Block(second_id, d.index, expiry);
    list.push_back(std::move(e));
  }
  json out = {{changed ? "ChangedBlocks" : "Blocks", std::move(list)},
              {"ExpiryTime", EpochSeconds(expiry)},
              {"VolumeSize", (second_meta.volume_size + kGiB - 1) / kGiB},
              {"BlockSize", kDirectBlockSize}};
  if (next) out["NextToken"] = x.ebs_tokens->Page(listing, *next);
  return EbsReply{200, out.dump()};
}

ApiResult<EbsReply> GetSnapshotBlock(Ec2Context& x, const Caller& c, const EbsCall& call, const std::string& id,
                                     const std::string& index_text) {
  API_RETURN_IF_ERROR(CheckQuery(call, {"blockToken"}));
  API_ASSIGN_OR_RETURN(SnapshotRecord s, ReadableCompleted(x, c, id, "ebs:GetSnapshotBlock"));
  API_RETURN_IF_ERROR(Admit(x, EbsOp::kGetBlock, c, id));
  API_ASSIGN_OR_RETURN(uint64_t index, BlockIndex(index_text));
  auto token = Query(call, "blockToken");
  if (!token) return Invalid("INVALID_PARAMETER_VALUE", "BlockToken is required.");
  if (!x.ebs_tokens->CheckBlock(*token, id, index, x.clock->NowMillis()))
    return Invalid("INVALID_BLOCK_TOKEN", "The block token is not valid for this block, or has expired.");
  auto reader = x.direct->Reader(id);
  if (!reader) return reader.error().code() == ErrorCode::kNotFound ? NotFound(id) : Internal(reader.error());
  if (index >= (*reader)->block_count())
    return Invalid("INVALID_BLOCK", "The block index " + std::to_string(index) + " is outside the snapshot.");
  std::string data((*reader)->block_size(), '\0');
  auto out = std::span<uint8_t>(reinterpret_cast<uint8_t*>(data.data()), data.size());
  auto read = (*reader)->Read(index, out);
  if (!read) return Internal(read.error());
  Digest sha = Sha256(out);
  return EbsReply{200, std::move(data), "application/octet-stream",
                  {{"x-amz-Data-Length", std::to_string(out.size())},
                   {"x-amz-Checksum", Base64Encode(sha)},
                   {"x-amz-Checksum-Algorithm", "SHA256"}}};
}

}  // namespace

ApiResult<EbsReply> DispatchEbs(Ec2Context& x, Caller& c, const EbsCall& call) {
  if (!x.direct || !x.ebs_tokens)
    return std::unexpected(ApiError{"InternalServerException", "The EBS direct APIs do not run in this process.", 500});
  const auto& seg = call.parts;
  const std::string& m = call.method;
  if (seg.size() == 1 && seg[0] == "snapshots" && m == "POST") return StartSnapshot(x, c, call);
  if (seg.size() == 3 && seg[0] == "snapshots" && seg[1] == "completion" && m == "POST")
    return CompleteSnapshot(x, c, call, seg[2]);
  if (seg.size() == 4 && seg[0] == "snapshots" && seg[2] == "blocks" && m == "PUT")
    return PutSnapshotBlock(x, c, call, seg[1], seg[3]);
  if (seg.size() == 4 && seg[0] == "snapshots" && seg[2] == "blocks" && m == "GET")
    return GetSnapshotBlock(x, c, call, seg[1], seg[3]);
  if (seg.size() == 3 && seg[0] == "snapshots" && seg[2] == "blocks" && m == "GET")
    return ListBlocks(x, c, call, seg[1], false);
  if (seg.size() == 3 && seg[0] == "snapshots" && seg[2] == "changedblocks" && m == "GET")
    return ListBlocks(x, c, call, seg[1], true);
  std::string joined;
  for (const auto& p : seg) joined += "/" + p;
  return Invalid("INVALID_PARAMETER_VALUE", "No such EBS direct API operation: " + m + " " + joined);
}

}  // namespace snapvol::api
