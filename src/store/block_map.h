// The block map of a snapshot: a tree of content-addressed index pages. A leaf page (level 0)
// lists the ids of up to kPageFanout consecutive blocks; a page at level L lists the ids of up
// to kPageFanout pages of level L-1. An all-zero id is a hole (a zero block, or a subtree of
// nothing but holes), never stored. Equal pages have equal ids, so an incremental snapshot
// writes new pages only where blocks changed.
//
// Page plaintext: level u8, 0 u8, 0 u16, count u32, then count ids of 32 bytes.
// Thread-safety: BlockMapWriter and BlockMapReader are used by one thread at a time.
#pragma once

#include <cstring>
#include <functional>
#include <unordered_set>
#include <vector>

#include "store/repository.h"

namespace snapvol {

inline constexpr uint32_t kPageFanout = 1024;

// Depth of the tree for a volume of block_count blocks (0: the root is a leaf page).
uint32_t BlockMapDepth(uint64_t block_count);

class BlockMapWriter {
 public:
  // Pages are written through writer. Pages whose ids are in known (e.g. the parent's pages)
  // are assumed stored and not written again; known may be null.
  BlockMapWriter(Repository* repo, Repository::Writer* writer, uint64_t block_count, const DigestSet* known);

  // Appends the id of the next block (all zero for a hole).
  Status Append(const Digest& block_id);
  // After exactly block_count appends: the root page id (zero when every block is a hole).
  Result<Digest> Finish();

  uint32_t depth() const { return depth_; }
  uint64_t pages_written() const { return pages_written_; }
  uint64_t bytes_written() const { return bytes_written_; }

 private:
  Status FlushLevel(uint32_t level);
  Result<Digest> WritePage(uint32_t level, const std::vector<Digest>& ids);

  Repository* repo_;
  Repository::Writer* writer_;
  uint64_t block_count_, appended_ = 0;
  uint32_t depth_;
  const DigestSet* known_;
  DigestSet written_;
  std::vector<std::vector<Digest>> levels_;
  uint64_t pages_written_ = 0, bytes_written_ = 0;
};

class BlockMapReader {
 public:
  BlockMapReader(Repository* repo, const ManifestMeta& meta);

  // The id of block i (zero: hole). Reads are cached per level, so walking blocks in order
  // loads each page once.
  Result<Digest> BlockId(uint64_t index);
  // Visits every stored page id (with its level) and every block id that is not a hole, in
  // block order. on_page returns false to skip the page's subtree (e.g. already visited). Stops at and returns the first error from a callback or a page read.
  Status Walk(const std::function<Result<bool>(uint32_t level, const Digest& page)>& on_page,
              const std::function<Status(uint64_t index, const Digest& block)>& on_block);

 private:
  Result<const std::vector<Digest>*> LoadPage(uint32_t level, const Digest& id);
  Status WalkPage(uint32_t level, const Digest& id, uint64_t first_block,
                  const std::function<Result<bool>(uint32_t, const Digest&)>& on_page,
                  const std::function<Status(uint64_t, const Digest&)>& on_block);

  Repository* repo_;
  ManifestMeta meta_;
  struct Cached {
    Digest id{};
    bool valid = false;
    std::vector<Digest> entries;
  };
  std::vector<Cached> cache_;  // one page per level
};

// Decodes a page's plaintext. Corruption when malformed.
Result<std::vector<Digest>> ParsePage(std::span<const uint8_t> plain, uint32_t expect_level);
std::vector<uint8_t> SerializePage(uint32_t level, const std::vector<Digest>& ids);

}  // namespace snapvol
