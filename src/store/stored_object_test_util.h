// Test-only, layout-neutral access to the stored bytes of one chunk or index page, in either
// store format: format 1 keeps each under its own key (chunks/…, index/…), format 2 at an
// entry of a pack (docs/store-format.md). Suites that run on both formats (ctest registers
// them twice, the second time with SNAPVOL_STORE_FORMAT=2) damage, copy, drop and count
// "the stored bytes of object X" through these instead of naming format 1's keys.
// Thread-safety: none; call from the test's thread while no job writes.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "store/repository.h"

namespace snapvol::testing_util {

// Where an object's stored bytes are: the store object holding them and the range in it
// (format 1: its own object, whole; format 2: its pack, at the index entry).
struct StoredAt {
  std::string key;
  uint64_t offset = 0, length = 0;
};

inline Result<StoredAt> LocateStored(Repository* repo, ObjectKind kind, const Digest& id) {
  if (!repo->packed()) {
    std::string key = kind == ObjectKind::kChunk ? Repository::ChunkKey(id) : Repository::PageKey(id);
    ASSIGN_OR_RETURN(uint64_t size, repo->store()->Size(key));
    return StoredAt{key, 0, size};
  }
  RETURN_IF_ERROR(repo->packed()->Refresh());
  auto loc = repo->packed()->Find(kind, id);
  if (!loc) return NotFound(ToHex(id) + " is in no pack the index names");
  return StoredAt{PackedObjects::PackKey(loc->pack), loc->offset, loc->length};
}

// Whether the store holds a copy of the object (format 2: the index names it and its pack exists).
inline bool StoredExists(Repository* repo, ObjectKind kind, const Digest& id) {
  auto at = LocateStored(repo, kind, id);
  if (!at) return false;
  auto there = repo->store()->Exists(at->key);
  EXPECT_TRUE(there) << there.error().ToString();
  return there && *there;
}

// XORs one byte of the object's stored bytes with mask (the byte `at` bytes into them; by
// default the middle one). `store` is the store to rewrite (a test's base store under the
// repository's wrappers), else the repository's own.
inline Status CorruptStored(Repository* repo, ObjectKind kind, const Digest& id, uint8_t mask = 0x01,
                            int64_t at = -1, ObjectStore* store = nullptr) {
  if (!store) store = repo->store();
  ASSIGN_OR_RETURN(auto where, LocateStored(repo, kind, id));
  ASSIGN_OR_RETURN(auto bytes, store->Get(where.key));
  const uint64_t in = at < 0 ? where.length / 2 : static_cast<uint64_t>(at);
  if (in >= where.length || where.offset + in >= bytes.size()) return InvalidArgument("byte outside the object");
  bytes[where.offset + in] ^= mask;
  return store->Put(where.key, bytes);
}

// Overwrites the stored bytes of `to` with those of `from` (an object written under the wrong
// id). Format 2 copies within packs, so both must have the same stored length.
inline Status CopyStored(Repository* repo, ObjectKind kind, const Digest& from, const Digest& to) {
  ASSIGN_OR_RETURN(auto src, LocateStored(repo, kind, from));
  ASSIGN_OR_RETURN(auto dst, LocateStored(repo, kind, to));
  ObjectStore* store = repo->store();
  ASSIGN_OR_RETURN(auto src_bytes, store->Get(src.key));
  if (!repo->packed()) return store->Put(dst.key, src_bytes);
  if (src.length != dst.length) return InvalidArgument("objects of different stored lengths");
  ASSIGN_OR_RETURN(auto dst_bytes, store->Get(dst.key));
  std::copy_n(src_bytes.begin() + src.offset, src.length, dst_bytes.begin() + dst.offset);
  return store->Put(dst.key, dst_bytes);
}

// Drops the store's copy of the object (format 1 deletes its object; format 2 rewrites its
// pack without it, as GC's removal of a damaged object does).
inline Status DropStored(Repository* repo, ObjectKind kind, const Digest& id) {
  return repo->DeleteObjects(kind, {id});
}

// How many chunks or index pages the store holds (format 2: entries of the store-wide index).
inline size_t CountStored(Repository* repo, ObjectKind kind) {
  auto objs = repo->ListObjects(kind);
  EXPECT_TRUE(objs) << objs.error().ToString();
  return objs ? objs->size() : 0;
}

}  // namespace snapvol::testing_util
