#include "store/repository.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>

#include "core/file_util.h"
#include "core/ids.h"
#include "core/system_tags.h"

namespace snapvol {
namespace {

using json = nlohmann::json;

Result<json> ParseJson(std::span<const uint8_t> bytes, const std::string& what) {
  json j = json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Corruption(what + " is not valid JSON");
  return j;
}

std::vector<uint8_t> ToBytes(const json& j) {
  std::string s = j.dump();
  return {s.begin(), s.end()};
}

json MetaToJson(const ManifestMeta& m) {
  json tags = json::array();
  for (const auto& [k, v] : m.tags) tags.push_back({{"key", k}, {"value", v}});
  return {{"snapshot_id", m.snapshot_id}, {"volume_id", m.volume_id}, {"parent_id", m.parent_id},
          {"description", m.description}, {"owner_id", m.owner_id},
          {"volume_size", m.volume_size}, {"block_size", m.block_size},
          {"start_time_ms", m.start_time_ms}, {"completed_time_ms", m.completed_time_ms},
          {"tags", tags}, {"depth", m.depth}, {"root_page", ToHex(m.root_page)},
          {"block_count", m.block_count}, {"stored_bytes", m.stored_bytes},
          {"changed_blocks", m.changed_blocks}, {"new_chunks", m.new_chunks}};
}

json RootToJson(const ManifestMeta& m) {
  json j = MetaToJson(m);
  if (m.bin_exit_ms)
    j["recycle_bin"] = {{"entered_ms", m.bin_entered_ms}, {"exit_ms", m.bin_exit_ms}, {"rule_id", m.bin_rule_id}};
  return j;
}

Result<ManifestMeta> MetaFromJson(const json& j) {
  ManifestMeta m;
  try {
    m.snapshot_id = j.at("snapshot_id").get<std::string>();
    m.volume_id = j.at("volume_id").get<std::string>();
    m.parent_id = j.value("parent_id", "");
    m.description = j.value("description", "");
    m.owner_id = j.value("owner_id", "");
    m.volume_size = j.at("volume_size").get<uint64_t>();
    m.block_size = j.at("block_size").get<uint32_t>();
    m.start_time_ms = j.at("start_time_ms").get<int64_t>();
    m.completed_time_ms = j.value("completed_time_ms", int64_t{0});
    // Roots written before the system tags moved under aws: name them snapvol:…; they are read
    // with today's names, so a catalog rebuilt from the store has the keys a live one has.
    for (const auto& t : j.value("tags", json::array()))
      m.tags.emplace_back(CurrentSystemTagKey(t.at("key").get<std::string>()), t.at("value").get<std::string>());
    m.depth = j.at("depth").get<uint32_t>();
    ASSIGN_OR_RETURN(m.root_page, DigestFromHex(j.at("root_page").get<std::string>()));
    m.block_count = j.at("block_count").get<uint64_t>();
    m.stored_bytes = j.value("stored_bytes", uint64_t{0});
    m.changed_blocks = j.value("changed_blocks", uint64_t{0});
    m.new_chunks = j.value("new_chunks", uint64_t{0});
    if (j.contains("recycle_bin")) {
      const json& bin = j.at("recycle_bin");
      m.bin_entered_ms = bin.at("entered_ms").get<int64_t>();
      m.bin_exit_ms = bin.at("exit_ms").get<int64_t>();
      m.bin_rule_id = bin.value("rule_id", "");
    }
  } catch (const json::exception& e) {
    return Corruption(std::string("manifest root is missing a field: ") + e.what());
  }
  if (m.block_size == 0 || m.depth > 8) return Corruption("manifest root has an implausible tree");
  uint64_t expect = (m.volume_size + m.block_size - 1) / m.block_size;
  if (expect != m.block_count) return Corruption("manifest root block count does not match its size");
  return m;
}

std::string SnapshotFromKey(const std::string& key, const std::string& prefix) {
  return key.substr(prefix.size());
}

}  // namespace

std::string Repository::ManifestKey(const std::string& id) { return "manifests/" + id; }
std::string Repository::DeletedKey(const std::string& id) { return "deleted/" + id; }
std::string Repository::BinKey(const std::string& id) { return "bin/" + id; }
std::string Repository::LeaseKey(const std::string& id) { return "leases/" + id; }
std::string Repository::GcRunKey(const std::string& id) { return "gc-runs/" + id; }

Status Repository::ValidateOptions(const RepositoryOptions& options) {
  uint32_t bs = options.block_size;
  if (bs < 4096 || bs > (16u << 20) || (bs & (bs - 1)) != 0)
    return InvalidArgument("block size must be a power of two between 4096 and 16777216 bytes");
  if (options.zstd_level < 1 || options.zstd_level > 19)
    return InvalidArgument("compression level must be between 1 and 19");
  if (options.format > kStoreFormatVersion)
    return InvalidArgument("store format must be 1 or 2");
  if (options.pack_size < kMinPackSize || options.pack_size > kMaxPackSize)
    return InvalidArgument("pack size must be between 1 and 128 MiB");
  return OkStatus();
}

namespace {
// Format 2's index cache dir, made owner-only when absent; nothing when none is given.
Status MakeCacheDir(const std::string& dir) {
  if (dir.empty()) return OkStatus();
  auto made = MakeDirs(dir, 0700);
  if (!made) return std::unexpected(made.error().WithContext("the index cache dir"));
  return OkStatus();
}

// A store id as Create makes it: 32 lowercase hex digits (it names the index cache file).
bool IsStoreId(const std::string& id) {
  return id.size() == 32 &&
         std::all_of(id.begin(), id.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// The format a new store gets when the caller names none.
Result<uint32_t> FormatForNewStore(uint32_t asked) {
  if (asked != 0) return asked;
  const char* env = std::getenv("SNAPVOL_STORE_FORMAT");
  if (!env || !*env) return kDefaultStoreFormat;
  std::string v = env;
  if (v == "1") return 1u;
  if (v == "2") return 2u;
  return InvalidArgument("SNAPVOL_STORE_FORMAT is '" + v + "'; it must be 1 or 2");
}
}  // namespace

Result<std::unique_ptr<Repository>> Repository::Create(std::unique_ptr<ObjectStore> store,
                                                       const RepositoryOptions& options) {
  RETURN_IF_ERROR(ValidateOptions(options));
  ASSIGN_OR_RETURN(bool exists, store->Exists(kConfigKey));
  if (exists)
    return MakeError(ErrorCode::kAlreadyExists, "a snapshot store already exists at " + store->Describe());
  uint32_t bs = options.block_size;
  ASSIGN_OR_RETURN(uint32_t format, FormatForNewStore(options.format));
  std::array<uint8_t, 16> sid{};
  RETURN_IF_ERROR(RandomBytes(sid));
  json cfg = {{"format", "snapvol-store"}, {"version", format},
              {"store_id", ToHex(sid)}, {"block_size", bs},
              {"encryption", options.master_key ? "aes-256-gcm" : "none"},
              {"id_hash", options.master_key ? "hmac-sha256" : "sha256"},
              {"compression", "zstd"}, {"zstd_level", options.zstd_level}};
  std::optional<KeySet> keys;
  if (options.master_key) {
    ASSIGN_OR_RETURN(keys, KeySet::Derive(*options.master_key));
    cfg["key_check"] = ToHex(keys->KeyCheckValue());
  }
  const uint64_t pack_size = format == 2 ? options.pack_size : 0;
  if (pack_size) cfg["pack_size"] = pack_size;
  if (pack_size) RETURN_IF_ERROR(MakeCacheDir(options.cache_dir));
  RETURN_IF_ERROR(store->Put(kConfigKey, ToBytes(cfg)));
  return std::unique_ptr<Repository>(new Repository(std::move(store), ChunkCodec(keys, options.zstd_level), bs,
                                                    ToHex(sid), pack_size, options.cache_dir));
}

Result<std::unique_ptr<Repository>> Repository::Open(std::unique_ptr<ObjectStore> store,
                                                     const RepositoryOptions& options) {
  auto raw = store->Get(kConfigKey);
  if (!raw) {
    if (raw.error().code() == ErrorCode::kNotFound)
      return NotFound("no snapshot store at " + store->Describe() + " (run `snapvol init` first)");
    return std::unexpected(raw.error());
  }
  ASSIGN_OR_RETURN(json cfg, ParseJson(*raw, "store config"));
  if (cfg.value("format", "") != "snapvol-store") return Corruption("store config is not a snapvol store");
  uint32_t version = cfg.value("version", 0u);
  if (version > kStoreFormatVersion)
    return MakeError(ErrorCode::kUnsupported,
                     "the store at " + store->Describe() + " has format version " +
                         std::to_string(version) + ", newer than this snapvol supports (" +
                         std::to_string(kStoreFormatVersion) + "); upgrade snapvol");
  if (version == 0) return Corruption("store config has no format version");
  uint32_t bs = cfg.value("block_size", 0u);
  if (bs < 4096 || (bs & (bs - 1)) != 0) return Corruption("store config has a bad block size");
  std::optional<KeySet> keys;
  std::string enc = cfg.value("encryption", "none");
  if (enc == "aes-256-gcm") {
    if (!options.master_key)
      return MakeError(ErrorCode::kUnauthorized,
                       "the store is encrypted and its key is missing (store.key in the data dir)");
    ASSIGN_OR_RETURN(keys, KeySet::Derive(*options.master_key));
    auto expect = DigestFromHex(cfg.value("key_check", ""));
    if (!expect) return Corruption("store config has a bad key check value");
    if (!ConstantTimeEqual(*expect, keys->KeyCheckValue()))
      return MakeError(ErrorCode::kUnauthorized,
                       "wrong encryption key: it does not match the one this store was created with");
  } else if (enc != "none") {
    return MakeError(ErrorCode::kUnsupported, "unknown store encryption '" + enc + "'");
  }
  int level = cfg.value("zstd_level", 1);
  if (level < 1 || level > 19) return Corruption("store config has a bad compression level");
  uint64_t pack_size = 0;
  if (version == 2) {
    pack_size = cfg.value("pack_size", uint64_t{0});
    if (pack_size < kMinPackSize || pack_size > kMaxPackSize) return Corruption("store config has a bad pack size");
    RETURN_IF_ERROR(MakeCacheDir(options.cache_dir));
  }
  std::string store_id = cfg.value("store_id", "");
  if (pack_size && !options.cache_dir.empty() && !IsStoreId(store_id))
    return Corruption("store config has a bad store id");
  return std::unique_ptr<Repository>(new Repository(std::move(store), ChunkCodec(keys, level), bs,
                                                    std::move(store_id), pack_size, options.cache_dir));
}

Result<std::vector<uint8_t>> Repository::EncodeRoot(const std::string& key,
                                                    const std::vector<uint8_t>& json) const {
  return codec_.Encode(ObjectKind::kManifestRoot, Sha256(AsBytes(key.substr(key.find('/') + 1))), json);
}

Result<ManifestMeta> Repository::DecodeRoot(const std::string& key,
                                            const std::vector<uint8_t>& stored) const {
  std::string snap = key.substr(key.find('/') + 1);
  auto plain = codec_.Decode(ObjectKind::kManifestRoot, Sha256(AsBytes(snap)), stored, false);
  if (!plain) return std::unexpected(plain.error().WithContext("manifest " + snap));
  ASSIGN_OR_RETURN(json j, ParseJson(*plain, "manifest " + snap));
  auto meta = MetaFromJson(j);
  if (!meta) return std::unexpected(meta.error().WithContext("manifest " + snap));
  if (meta->snapshot_id != snap) return Corruption("manifest " + snap + " names another snapshot");
  return meta;
}

Status Repository::PutManifest(const ManifestMeta& meta) {
  if (!IsSnapshotId(meta.snapshot_id)) return InvalidArgument("bad snapshot id " + meta.snapshot_id);
  std::string key = ManifestKey(meta.snapshot_id);
  ASSIGN_OR_RETURN(auto stored, EncodeRoot(key, ToBytes(MetaToJson(meta))));
  return store_->Put(key, stored);
}

Result<ManifestMeta> Repository::GetManifest(const std::string& snapshot_id, bool include_deleted) {
  if (!IsSnapshotId(snapshot_id)) return InvalidArgument("bad snapshot id '" + snapshot_id + "'");
  std::string key = ManifestKey(snapshot_id);
  auto stored = store_->Get(key);
  if (!stored && stored.error().code() == ErrorCode::kNotFound && include_deleted) {
    key = DeletedKey(snapshot_id);
    stored = store_->Get(key);
  }
  if (!stored) {
    if (stored.error().code() == ErrorCode::kNotFound)
      return NotFound("snapshot " + snapshot_id + " has no manifest in the store");
    return std::unexpected(stored.error());
  }
  return DecodeRoot(key, *stored);
}

Result<std::vector<std::string>> Repository::ListManifestIds(bool deleted) {
  std::string prefix = deleted ? "deleted/" : "manifests/";
  ASSIGN_OR_RETURN(auto objs, store_->List(prefix));
  std::vector<std::string> ids;
  for (const auto& o : objs) {
    std::string id = SnapshotFromKey(o.key, prefix);
    if (IsSnapshotId(id)) ids.push_back(id);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

Status Repository::DeleteManifest(const std::string& snapshot_id) {
  if (!IsSnapshotId(snapshot_id)) return InvalidArgument("bad snapshot id '" + snapshot_id + "'");
  auto stored = store_->Get(ManifestKey(snapshot_id));
  if (!stored) {
    if (stored.error().code() == ErrorCode::kNotFound)
      return NotFound("snapshot " + snapshot_id + " has no manifest in the store");
    return std::unexpected(stored.error());
  }
  // Re-encode under the deleted/ key (the key is bound into encrypted roots).
  ASSIGN_OR_RETURN(ManifestMeta meta, DecodeRoot(ManifestKey(snapshot_id), *stored));
  ASSIGN_OR_RETURN(auto moved, EncodeRoot(DeletedKey(snapshot_id), ToBytes(MetaToJson(meta))));
  RETURN_IF_ERROR(store_->Put(DeletedKey(snapshot_id), moved));
  return store_->Delete(ManifestKey(snapshot_id));
}

// Reads the root at from_key, lets edit change it, publishes it at to_key (re-encoded: the key
// is bound into encrypted roots), then removes from_key. A crash between the two leaves both;
// readers prefer manifests/, then bin/, then deleted/ (docs/store-format.md).
Status Repository::MoveRoot(const std::string& snapshot_id, const std::string& from_key, const std::string& to_key,
                            const std::function<void(ManifestMeta*)>& edit) {
  if (!IsSnapshotId(snapshot_id)) return InvalidArgument("bad snapshot id '" + snapshot_id + "'");
  auto stored = store_->Get(from_key);
  if (!stored) {
    if (stored.error().code() == ErrorCode::kNotFound)
      return NotFound("snapshot " + snapshot_id + " has no root " + from_key + " in the store");
    return std::unexpected(stored.error());
  }
  ASSIGN_OR_RETURN(ManifestMeta meta, DecodeRoot(from_key, *stored));
  edit(&meta);
  ASSIGN_OR_RETURN(auto moved, EncodeRoot(to_key, ToBytes(RootToJson(meta))));
  RETURN_IF_ERROR(store_->Put(to_key, moved));
  return store_->Delete(from_key);
}

Status Repository::MoveManifestToBin(const std::string& snapshot_id, int64_t entered_ms, int64_t exit_ms,
                                     const std::string& rule_id) {
  if (exit_ms <= 0) return InvalidArgument("a binned snapshot needs the end of its retention");
  return MoveRoot(snapshot_id, ManifestKey(snapshot_id), BinKey(snapshot_id), [&](ManifestMeta* m) {
    m->bin_entered_ms = entered_ms;
    m->bin_exit_ms = exit_ms;
    m->bin_rule_id = rule_id;
  });
}

Status Repository::RestoreManifestFromBin(const std::string& snapshot_id) {
  return MoveRoot(snapshot_id, BinKey(snapshot_id), ManifestKey(snapshot_id), [](ManifestMeta* m) {
    m->bin_entered_ms = m->bin_exit_ms = 0;
    m->bin_rule_id.clear();
  });
}

Status Repository::ExpireBinnedManifest(const std::string& snapshot_id) {
  return MoveRoot(snapshot_id, BinKey(snapshot_id), DeletedKey(snapshot_id), [](ManifestMeta* m) {
    m->bin_entered_ms = m->bin_exit_ms = 0;
    m->bin_rule_id.clear();
  });
}

Result<std::vector<ManifestMeta>> Repository::ListBinnedManifests() {
  ASSIGN_OR_RETURN(auto objs, store_->List("bin/"));
  std::vector<ManifestMeta> out;
  for (const auto& o : objs) {
    std::string id = SnapshotFromKey(o.key, "bin/");
    if (!IsSnapshotId(id)) continue;
    auto stored = store_->Get(o.key);
    if (!stored && stored.error().code() == ErrorCode::kNotFound) continue;  // restored or expired meanwhile
    if (!stored) return std::unexpected(stored.error());
    ASSIGN_OR_RETURN(ManifestMeta meta, DecodeRoot(o.key, *stored));
    out.push_back(std::move(meta));
  }
  std::sort(out.begin(), out.end(), [](const ManifestMeta& a, const ManifestMeta& b) { return a.snapshot_id < b.snapshot_id; });
  return out;
}

Status Repository::PutLease(const LeaseInfo& l) {
  json j = {{"snapshot_id", l.snapshot_id}, {"parent_id", l.parent_id}, {"holder", l.holder},
            {"started_ms", l.started_ms}, {"heartbeat_ms", l.heartbeat_ms}};
  if (!l.holder_start.empty()) j["holder_start"] = l.holder_start;
  RETURN_IF_ERROR(store_->Put(LeaseKey(l.snapshot_id), ToBytes(j)));
  if (l.snapshot_id == kUpgradeLeaseId) return OkStatus();
  // Written before read, like the upgrade's own check: of the two, one sees the other.
  Status free = CheckNotUpgrading();
  if (!free) (void)RemoveLease(l.snapshot_id);
  return free;
}

Status Repository::RemoveLease(const std::string& snapshot_id) {
  return store_->Delete(LeaseKey(snapshot_id));
}

Result<std::vector<LeaseInfo>> Repository::ListLeases() {
  ASSIGN_OR_RETURN(auto objs, store_->List("leases/"));
  std::vector<LeaseInfo> out;
  for (const auto& o : objs) {
    auto raw = store_->Get(o.key);
    if (!raw) {
      if (raw.error().code() == ErrorCode::kNotFound) continue;  // ended meanwhile
      return std::unexpected(raw.error());
    }
    LeaseInfo l;
    auto j = ParseJson(*raw, "lease " + o.key);
    if (j) {
      l.snapshot_id = j->value("snapshot_id", "");
      l.parent_id = j->value("parent_id", "");
      l.holder = j->value("holder", "");
      l.started_ms = j->value("started_ms", int64_t{0});
      l.heartbeat_ms = j->value("heartbeat_ms", int64_t{0});
      l.holder_start = j->value("holder_start", "");
    }
    // An unreadable lease still protects: treat it as started at its object's mtime.
    if (l.snapshot_id.empty()) l.snapshot_id = SnapshotFromKey(o.key, "leases/");
    if (l.started_ms == 0) l.started_ms = l.heartbeat_ms = o.mtime_ms;
    out.push_back(std::move(l));
  }
  return out;
}

namespace {
bool IsGcRunId(const std::string& id) {
  return id.size() == 32 && std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}
}  // namespace

Status Repository::PutGcRun(const GcRunInfo& run) {
  if (!IsGcRunId(run.run_id)) return InvalidArgument("bad gc run id '" + run.run_id + "'");
  json j = {{"run_id", run.run_id}, {"holder", run.holder}, {"started_ms", run.started_ms},
            {"heartbeat_ms", run.heartbeat_ms}};
  if (!run.holder_start.empty()) j["holder_start"] = run.holder_start;
  return store_->Put(GcRunKey(run.run_id), ToBytes(j));
}

Status Repository::RemoveGcRun(const std::string& run_id) {
  if (!IsGcRunId(run_id)) return InvalidArgument("bad gc run id '" + run_id + "'");
  return store_->Delete(GcRunKey(run_id));
}

Result<std::vector<GcRunInfo>> Repository::ListGcRuns() {
  ASSIGN_OR_RETURN(auto objs, store_->List("gc-runs/"));
  std::vector<GcRunInfo> out;
  for (const auto& o : objs) {
    GcRunInfo r;
    r.run_id = SnapshotFromKey(o.key, "gc-runs/");
    if (!IsGcRunId(r.run_id)) continue;
    auto raw = store_->Get(o.key);
    if (!raw) {
      if (raw.error().code() == ErrorCode::kNotFound) continue;  // ended meanwhile
      return std::unexpected(raw.error());
    }
    if (auto j = ParseJson(*raw, "gc run " + o.key)) {
      r.holder = j->value("holder", "");
      r.started_ms = j->value("started_ms", int64_t{0});
      r.heartbeat_ms = j->value("heartbeat_ms", int64_t{0});
      r.holder_start = j->value("holder_start", "");
    }
    // An unreadable record still counts as running: from its object's mtime.
    if (r.heartbeat_ms == 0) r.started_ms = r.heartbeat_ms = o.mtime_ms;
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace snapvol
