// Catalog: tags of snapshots, volumes and instances (the tags table) and their limits.
#include "catalog/catalog.h"

#include <algorithm>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "catalog/catalog_sql.h"

namespace snapvol {
using catalog_internal::Connection;
using catalog_internal::Statement;

namespace {

// Unicode code points in UTF-8 text: every byte that does not continue a sequence.
size_t Utf8Chars(std::string_view s) {
  return static_cast<size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}


// The only way the catalog words the tag limit: the marker first, then what is over the
// limit, then the limit. IsTagLimitExceeded relies on both ends.
constexpr char kTagLimitEnd[] = " tags per resource";
Error TagLimitError(const std::string& what, size_t count) {
  return Error(ErrorCode::kInvalidArgument, std::string(kTagLimitExceeded) + " " + what + ": " +
                                                std::to_string(count) + " tags; the limit is " +
                                                std::to_string(kMaxTagsPerResource) + kTagLimitEnd);
}

}  // namespace

bool IsTagLimitExceeded(const Error& e) {
  if (e.code() != ErrorCode::kInvalidArgument) return false;
  // WithContext only prepends "context: ", so the catalog's own message is the tail. The
  // marker must start it, after zero or more such prefixes; and since every other message
  // of the catalog that quotes a tag key (which may hold ": TagLimitExceeded:") ends with
  // fixed words of its own, the tail must also end as TagLimitError ends.
  std::string_view m = e.message();
  if (!m.ends_with(kTagLimitEnd)) return false;
  for (;;) {
    if (m.starts_with(kTagLimitExceeded)) return true;
    size_t colon = m.find(": ");
    if (colon == std::string_view::npos) return false;
    m.remove_prefix(colon + 2);
  }
}

bool IsUncountedTag(std::string_view key) { return HasReservedTagPrefix(key); }

Status ValidateTagList(const std::vector<Tag>& tags, const std::string& what) {
  // How a snapshot was cut, or where a volume lives, is not the user's to spend their 50 on
  // (EC2 does not count aws: tags).
  const size_t counted = static_cast<size_t>(
      std::count_if(tags.begin(), tags.end(), [](const Tag& t) { return !IsUncountedTag(t.key); }));
  if (counted > kMaxTagsPerResource) return std::unexpected(TagLimitError(what, counted));
  std::set<std::string_view> keys;
  for (const Tag& t : tags) {
    size_t key_chars = Utf8Chars(t.key);
    if (key_chars == 0 || key_chars > kMaxTagKeyChars) {
      return InvalidArgument(what + ": tag key '" + t.key + "' must be 1 to " +
                             std::to_string(kMaxTagKeyChars) + " characters");
    }
    if (Utf8Chars(t.value) > kMaxTagValueChars) {
      return InvalidArgument(what + ": value of tag '" + t.key +
                             "' is longer than " + std::to_string(kMaxTagValueChars) +
                             " characters");
    }
    // The catalog writes snapvol's own system tags; no other aws: key comes from anywhere.
    if (HasReservedTagPrefix(t.key) && !IsSystemTagKey(t.key)) {
      return InvalidArgument(what + ": tag key '" + t.key +
                             "' uses the reserved prefix 'aws:'");
    }
    if (!keys.insert(t.key).second) {
      return InvalidArgument(what + ": tag key '" + t.key +
                             "' is given more than once");
    }
  }
  return OkStatus();
}

Status Catalog::WriteTags(const std::string& resource_id, const std::vector<Tag>& tags) {
  Connection& db = *db_;
  const std::string what = "write tags of " + resource_id;
  if (!tags.empty()) {
    ASSIGN_OR_RETURN(Statement st,
                     Statement::Prepare(db,
                                        "INSERT INTO tags (resource_id, key, value)"
                                        " VALUES (?, ?, ?) ON CONFLICT (resource_id, key)"
                                        " DO UPDATE SET value = excluded.value",
                                        what));
    for (const Tag& t : tags) {
      st.Reset();
      st.Bind(resource_id).Bind(t.key).Bind(t.value);
      RETURN_IF_ERROR(st.Run());
    }
  }
  ASSIGN_OR_RETURN(Statement count,
                   Statement::Prepare(db,
                                      "SELECT count(*) FROM tags WHERE resource_id = ?"
                                      " AND lower(substr(key, 1, length(?))) <> ?",
                                      what));
  count.Bind(resource_id).Bind(kReservedTagPrefix).Bind(kReservedTagPrefix);
  ASSIGN_OR_RETURN(bool row, count.Step());
  int64_t n = row ? count.Int(0) : 0;
  if (n > static_cast<int64_t>(kMaxTagsPerResource))
    return std::unexpected(TagLimitError(resource_id, static_cast<size_t>(n)));
  return OkStatus();
}

namespace {

// How to find a taggable resource, chosen by its id's prefix, and how to set its name from
// its Name tag (null for snapshots, which have no name): the one place that knows which
// resources are named.
struct TaggableTable {
  const char* prefix;
  const char* exists_sql;
  const char* kind;
  const char* sync_name_sql;
};
constexpr TaggableTable kTaggableTables[] = {
    {"snap-", "SELECT 1 FROM snapshots WHERE snapshot_id = ?", "snapshot", nullptr},
    {"vol-", "SELECT 1 FROM volumes WHERE volume_id = ?", "volume",
     "UPDATE volumes SET name = coalesce((SELECT value FROM tags"
     " WHERE resource_id = volumes.volume_id AND key = 'Name'), '') WHERE volume_id = ?"},
    {"i-", "SELECT 1 FROM instances WHERE instance_id = ?", "instance",
     "UPDATE instances SET name = coalesce((SELECT value FROM tags"
     " WHERE resource_id = instances.instance_id AND key = 'Name'), '') WHERE instance_id = ?"},
};

// The table of resource_id. kNotFound unless the resource exists; kInvalidArgument for an id
// of another kind.
Result<const TaggableTable*> FindTaggable(Connection& db, const std::string& resource_id) {
  for (const TaggableTable& t : kTaggableTables) {
    if (!resource_id.starts_with(t.prefix)) continue;
    ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db, t.exists_sql, "find " + resource_id));
    st.Bind(resource_id);
    ASSIGN_OR_RETURN(bool found, st.Step());
    if (!found) return NotFound(std::string(t.kind) + " " + resource_id + " not found");
    return &t;
  }
  return InvalidArgument("'" + resource_id + "' is not the id of a snapshot, volume or instance");
}

// Sets a named resource's name from its Name tag ('' without one), after its tags changed.
Status SyncName(Connection& db, const TaggableTable& table, const std::string& resource_id) {
  if (table.sync_name_sql == nullptr) return OkStatus();
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db, table.sync_name_sql, "update the name of " + resource_id));
  st.Bind(resource_id);
  return st.Run();
}

}  // namespace

std::optional<std::string> NameFromTags(const std::vector<Tag>& tags) {
  for (const Tag& t : tags)
    if (t.key == "Name") return t.value;
  return std::nullopt;
}

namespace catalog_internal {

void UnifyNameAndTags(std::string& name, std::vector<Tag>& tags) {
  if (std::optional<std::string> tagged = NameFromTags(tags)) {
    name = *std::move(tagged);
  } else if (!name.empty()) {
    tags.push_back(Tag{"Name", name});
  }
}

}  // namespace catalog_internal

Status Catalog::SetTags(const std::string& resource_id, const std::vector<Tag>& tags) {
  RETURN_IF_ERROR(ValidateTagList(tags, "tags of " + resource_id));
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(const TaggableTable* table, FindTaggable(*db_, resource_id));
    RETURN_IF_ERROR(WriteTags(resource_id, tags));
    return SyncName(*db_, *table, resource_id);
  });
}

Status Catalog::RemoveTags(const std::string& resource_id, const std::vector<std::string>& keys) {
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(const TaggableTable* table, FindTaggable(*db_, resource_id));
    ASSIGN_OR_RETURN(
        Statement st,
        Statement::Prepare(*db_, "DELETE FROM tags WHERE resource_id = ? AND key = ?",
                           "remove tags of " + resource_id));
    for (const std::string& key : keys) {
      st.Reset();
      st.Bind(resource_id).Bind(key);
      RETURN_IF_ERROR(st.Run());
    }
    return SyncName(*db_, *table, resource_id);
  });
}

Status Catalog::RemoveAllTags(const std::string& resource_id) {
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(const TaggableTable* table, FindTaggable(*db_, resource_id));
    // substr, not LIKE: LIKE ignores case and treats '_' as a wildcard.
    ASSIGN_OR_RETURN(Statement st,
                     Statement::Prepare(*db_,
                                        "DELETE FROM tags WHERE resource_id = ?"
                                        " AND substr(key, 1, length(?)) <> ?",
                                        "remove all tags of " + resource_id));
    st.Bind(resource_id).Bind(kReservedTagPrefix).Bind(kReservedTagPrefix);
    RETURN_IF_ERROR(st.Run());
    return SyncName(*db_, *table, resource_id);
  });
}

}  // namespace snapvol
