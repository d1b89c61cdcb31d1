// Reflink clones and the extent-map comparison: synthetic maps for each rule, then real clones
// on XFS (shared, rewritten, punched), and ext4, which cannot clone.
#include "volume/extent_map.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <linux/fiemap.h>
#include <unistd.h>

#include <vector>

#include "core/file_util.h"
#include "volume/loop_fs_test_util.h"

namespace snapvol {
namespace {

constexpr uint32_t kBs = 64 * 1024;
constexpr uint32_t kShared = FIEMAP_EXTENT_SHARED;

std::vector<int> Changed(const std::vector<FileExtent>& base, uint64_t base_size, const std::vector<FileExtent>& cur,
                         uint64_t size) {
  std::vector<int> out;
  auto bits = ChangedBlocks(base, base_size, cur, size, kBs);
  for (size_t i = 0; i < bits.size(); ++i)
    if (bits[i]) out.push_back(static_cast<int>(i));
  return out;
}

TEST(ChangedBlocks, SharedSamePhysicalIsUnchanged) {
  std::vector<FileExtent> base = {{0, 1 << 20, 4 * kBs, kShared}};
  EXPECT_EQ(Changed(base, 4 * kBs, base, 4 * kBs), std::vector<int>{});
}

TEST(ChangedBlocks, RewrittenBlockMovedIsChanged) {
  std::vector<FileExtent> base = {{0, 1 << 20, 4 * kBs, kShared}};
  // Block 2 was rewritten: copy on write moved it elsewhere (and it is no longer shared).
  std::vector<FileExtent> cur = {{0, 1 << 20, 2 * kBs, kShared}, {2 * kBs, 9 << 20, kBs, 0},
                                 {3 * kBs, (1 << 20) + 3 * kBs, kBs, kShared}};
  EXPECT_EQ(Changed(base, 4 * kBs, cur, 4 * kBs), std::vector<int>{2});
}

TEST(ChangedBlocks, UnsharedExtentIsChangedEvenAtTheSameAddress) {
  std::vector<FileExtent> base = {{0, 1 << 20, 2 * kBs, 0}};
  std::vector<FileExtent> cur = {{0, 1 << 20, 2 * kBs, 0}};
  EXPECT_EQ(Changed(base, 2 * kBs, cur, 2 * kBs), (std::vector<int>{0, 1}));
}

TEST(ChangedBlocks, PartOfABlockMovedIsChanged) {
  std::vector<FileExtent> base = {{0, 1 << 20, 2 * kBs, kShared}};
  std::vector<FileExtent> cur = {{0, 1 << 20, kBs + 4096, kShared}, {kBs + 4096, 7 << 20, 4096, 0},
                                 {kBs + 8192, (1 << 20) + kBs + 8192, kBs - 8192, kShared}};
  EXPECT_EQ(Changed(base, 2 * kBs, cur, 2 * kBs), std::vector<int>{1});
}

TEST(ChangedBlocks, HolesInBothAreUnchangedHoleOnOneSideIsChanged) {
  // Blocks 0-1 data, 2-3 hole in base; in cur block 1 was punched and block 3 written.
  std::vector<FileExtent> base = {{0, 1 << 20, 2 * kBs, kShared}};
  std::vector<FileExtent> cur = {{0, 1 << 20, kBs, kShared}, {3 * kBs, 5 << 20, kBs, 0}};
  EXPECT_EQ(Changed(base, 4 * kBs, cur, 4 * kBs), (std::vector<int>{1, 3}));
}

TEST(ChangedBlocks, OpaqueOrUnwrittenMismatchIsChanged) {
  std::vector<FileExtent> base = {{0, 1 << 20, 2 * kBs, kShared}};
  std::vector<FileExtent> cur = {{0, 1 << 20, kBs, kShared | FIEMAP_EXTENT_DELALLOC},
                                 {kBs, (1 << 20) + kBs, kBs, kShared | FIEMAP_EXTENT_UNWRITTEN}};
  EXPECT_EQ(Changed(base, 2 * kBs, cur, 2 * kBs), (std::vector<int>{0, 1}));
}

TEST(ChangedBlocks, GrownOrShrunkTailIsChanged) {
  std::vector<FileExtent> base = {{0, 1 << 20, 2 * kBs, kShared}};
  // Grown by half a block: the old last block is now longer, the new one did not exist.
  EXPECT_EQ(Changed(base, 2 * kBs - 100, base, 2 * kBs), std::vector<int>{1});
  EXPECT_EQ(Changed(base, 2 * kBs, base, 3 * kBs), std::vector<int>{2});
  EXPECT_EQ(Changed(base, 2 * kBs, base, kBs + 10), std::vector<int>{1});
}

void WriteBlocks(const std::string& path, uint64_t first, uint64_t count, uint8_t seed) {
  auto fd = OpenFile(path, O_WRONLY | O_CREAT, 0644);
  ASSERT_TRUE(fd) << fd.error().message();
  std::vector<uint8_t> buf(kBs);
  for (uint64_t b = first; b < first + count; ++b) {
    for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<uint8_t>(seed + b + i / 4096);
    ASSERT_TRUE(PwriteFull(fd->get(), buf, b * kBs));
  }
  ASSERT_EQ(::fsync(fd->get()), 0);
}

TEST(ReflinkOnXfs, ClonesShareUntilRewrittenOrPunched) {
  testing_util::LoopFs fs("xfs");
  ASSERT_TRUE(fs.ok()) << "mkfs.xfs and a loop mount (root) are needed";
  const std::string img = fs.dir() + "/disk.img", base = fs.dir() + "/base", cur = fs.dir() + "/cur";
  WriteBlocks(img, 0, 16, 1);
  ASSERT_TRUE(CloneFile(img, base));
  WriteBlocks(img, 2, 1, 77);  // rewritten
  auto fd = OpenFile(img, O_RDWR);
  ASSERT_TRUE(fd);
  ASSERT_EQ(::fallocate(fd->get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 5 * kBs, kBs), 0);  // punched
  ASSERT_TRUE(CloneFile(img, cur));
  auto bm = ReadExtentMap(base), cm = ReadExtentMap(cur);
  ASSERT_TRUE(bm && cm);
  for (const auto& e : *cm) EXPECT_NE(e.flags & FIEMAP_EXTENT_SHARED, 0u) << "every extent of a fresh clone is shared";
  EXPECT_EQ(Changed(*bm, 16 * kBs, *cm, 16 * kBs), (std::vector<int>{2, 5}));
  // The base alone holds block 2's old extent (the image and cur share the new one) and
  // block 5's (punched from the image).
  EXPECT_EQ(ExclusiveBytes(*bm), 2u * kBs);
  // An existing target is refused, not overwritten.
  EXPECT_EQ(CloneFile(img, cur).error().code(), ErrorCode::kAlreadyExists);
}

TEST(ReflinkOnExt4, CloneIsUnsupportedAndLeavesNothing) {
  testing_util::LoopFs fs("ext4");
  ASSERT_TRUE(fs.ok()) << "mkfs.ext4 and a loop mount (root) are needed";
  const std::string img = fs.dir() + "/disk.img", dst = fs.dir() + "/clone";
  WriteBlocks(img, 0, 2, 1);
  auto st = CloneFile(img, dst);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), ErrorCode::kUnsupported) << st.error().message();
  EXPECT_NE(::access(dst.c_str(), F_OK), 0);
}

}  // namespace
}  // namespace snapvol
