// Repository: what upgrading a format-1 store needs from the owner of names and encodings
// (docs/store-format.md, "Upgrading a format-1 store"): the format-1 objects in either
// format, a pack writer before config says format 2, the config rewrite, and the check that
// keeps snapshot writers out of a store being upgraded. The steps live in store_upgrade.cc.
#include <nlohmann/json.hpp>

#include "store/repository.h"

namespace snapvol {
namespace {

using json = nlohmann::json;

Result<json> ReadConfig(ObjectStore* store) {
  ASSIGN_OR_RETURN(auto raw, store->Get(kConfigKey));
  json cfg = json::parse(raw.begin(), raw.end(), nullptr, /*allow_exceptions=*/false);
  if (cfg.is_discarded() || !cfg.is_object() || cfg.value("format", "") != "snapvol-store")
    return Corruption("store config is not a snapvol store config");
  return cfg;
}

}  // namespace

Result<std::vector<StoredObjectInfo>> Repository::ListFormat1Objects(ObjectKind kind) {
  if (kind != ObjectKind::kChunk && kind != ObjectKind::kIndexPage)
    return InvalidArgument("only chunks and index pages are listed by id");
  const std::string prefix = kind == ObjectKind::kChunk ? "chunks/" : "index/";
  ASSIGN_OR_RETURN(auto objs, store_->List(prefix));
  std::vector<StoredObjectInfo> out;
  out.reserve(objs.size());
  for (const auto& o : objs) {
    // "chunks/ab/<64 hex>": a key of another shape is not one of ours and is left alone.
    auto slash = o.key.rfind('/');
    if (slash == std::string::npos) continue;
    auto id = DigestFromHex(std::string_view(o.key).substr(slash + 1));
    if (!id) continue;
    if ((kind == ObjectKind::kChunk ? ChunkKey(*id) : PageKey(*id)) != o.key) continue;
    out.push_back({*id, o.size, o.mtime_ms});
  }
  return out;
}

Result<std::vector<uint8_t>> Repository::ReadFormat1Object(ObjectKind kind, const Digest& id,
                                                           uint64_t* stored_bytes) {
  const bool chunk = kind == ObjectKind::kChunk;
  ASSIGN_OR_RETURN(auto stored, store_->Get(chunk ? ChunkKey(id) : PageKey(id)));
  *stored_bytes = stored.size();
  auto plain = codec_.Decode(kind, id, stored, /*verify_id=*/true);
  if (!plain)
    return std::unexpected(plain.error().WithContext(std::string(chunk ? "chunk " : "index page ") + ToHex(id)));
  return plain;
}

Status Repository::DeleteFormat1Objects(ObjectKind kind, const std::vector<Digest>& ids) {
  std::vector<std::string> keys;
  keys.reserve(ids.size());
  for (const auto& id : ids) keys.push_back(kind == ObjectKind::kChunk ? ChunkKey(id) : PageKey(id));
  return store_->DeleteMany(keys);
}

std::unique_ptr<PackedObjects> Repository::NewPackedObjects(uint64_t pack_size) {
  // No cache file: the upgrade reads and checks its own copy of the index from the store.
  return std::make_unique<PackedObjects>(store_.get(), &codec_, pack_size, store_id_, "");
}

Result<uint32_t> Repository::StoredFormat() {
  ASSIGN_OR_RETURN(json cfg, ReadConfig(store_.get()));
  return cfg.value("version", 0u);
}

Status Repository::WriteFormat2Config(uint64_t pack_size) {
  if (pack_size < kMinPackSize || pack_size > kMaxPackSize)
    return InvalidArgument("pack size must be between 1 and 128 MiB");
  ASSIGN_OR_RETURN(json cfg, ReadConfig(store_.get()));
  if (cfg.value("version", 0u) != 1)
    return MakeError(ErrorCode::kConflict, "the store config no longer says format 1; nothing changed");
  cfg["version"] = 2;
  cfg["pack_size"] = pack_size;
  std::string text = cfg.dump();
  return store_->Put(kConfigKey, std::vector<uint8_t>(text.begin(), text.end()));
}

Status Repository::CheckNotUpgrading() {
  ASSIGN_OR_RETURN(bool upgrading, store_->Exists(LeaseKey(kUpgradeLeaseId)));
  if (upgrading)
    return MakeError(ErrorCode::kConflict,
                     "the store is being upgraded to format 2 (snapvol store upgrade holds it, or was "
                     "interrupted: run it again); retry when the upgrade has finished",
                     /*retryable=*/true);
  ASSIGN_OR_RETURN(uint32_t stored, StoredFormat());
  if (stored != format())
    return MakeError(ErrorCode::kConflict,
                     "the store was upgraded to format " + std::to_string(stored) +
                         " after this process opened it; restart snapvold or run the command again",
                     /*retryable=*/true);
  return OkStatus();
}

}  // namespace snapvol
