#include "volume/block_source.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "core/aligned_buffer.h"
#include "core/hash.h"
#include "core/ids.h"

namespace snapvol {
namespace {

std::string TempPath(const std::string& name) {
  std::string dir = testing::TempDir() + "/vol-" + NewVolumeId();
  EXPECT_TRUE(MakeDirs(dir));
  return dir + "/" + name;
}

TEST(FileSource, ReadsAndFindsHoles) {
  std::string p = TempPath("sparse.img");
  {
    auto fd = *OpenFile(p, O_WRONLY | O_CREAT, 0644);
    ASSERT_EQ(::ftruncate(fd.get(), 64 << 20), 0);
    std::vector<uint8_t> data(4096, 0xab);
    ASSERT_TRUE(PwriteFull(fd.get(), data, 32 << 20));
  }
  auto src = FileSource::Open(p);
  ASSERT_TRUE(src);
  EXPECT_EQ((*src)->size(), 64u << 20);
  auto first = (*src)->NextData(0);
  ASSERT_TRUE(first);
  EXPECT_LE(*first, 32u << 20);
  EXPECT_GT(*first, 0u);  // ext4/tmpfs report the leading hole
  auto hole = (*src)->NextHole(32 << 20);
  ASSERT_TRUE(hole);
  EXPECT_GE(*hole, (32u << 20) + 4096);
  std::vector<uint8_t> buf(8192);
  ASSERT_TRUE((*src)->ReadAt((32 << 20) - 4096, buf));
  EXPECT_EQ(buf[0], 0);
  EXPECT_EQ(buf[4096], 0xab);
  // Reading past the end yields zeros.
  ASSERT_TRUE((*src)->ReadAt((64 << 20) - 100, buf));
  EXPECT_EQ(buf[200], 0);
}

TEST(FileSource, ClearErrors) {
  auto missing = FileSource::Open("/nonexistent/volume.img");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
  auto dir = FileSource::Open("/tmp");
  ASSERT_FALSE(dir);
  EXPECT_EQ(dir.error().code(), ErrorCode::kInvalidArgument);
}

TEST(FileTarget, RefusesExistingUnlessForcedAndCommitsAtomically) {
  std::string p = TempPath("out.img");
  ASSERT_TRUE(WriteFileAtomic(p, AsBytes("keep me")));
  auto refused = FileTarget::Create(p, 100, false);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), ErrorCode::kAlreadyExists);
  {
    auto t = FileTarget::Create(p, 100, true);
    ASSERT_TRUE(t);
    ASSERT_TRUE((*t)->WriteAt(0, AsBytes("new")));
    // Abandoned without Commit: the original file is untouched.
  }
  EXPECT_EQ(ReadWholeFile(p)->size(), 7u);
  EXPECT_FALSE(PathExists(p + ".snapvol-partial"));
  auto t = FileTarget::Create(p, 100, true);
  ASSERT_TRUE((*t)->WriteAt(10, AsBytes("xyz")));
  ASSERT_TRUE((*t)->Commit());
  auto got = *ReadWholeFile(p);
  ASSERT_EQ(got.size(), 100u);
  EXPECT_EQ(got[0], 0);
  EXPECT_EQ(got[10], 'x');
}

TEST(FileTarget, AlignedWritesGoAroundThePageCacheAndTheRestThroughIt) {
  std::string p = TempPath("direct.img");
  constexpr size_t kBlock = 64 << 10;
  const uint64_t size = 3 * kBlock + 1000;  // the last block is short: not a direct write
  std::vector<uint8_t> want(size);
  for (size_t i = 0; i < want.size(); ++i) want[i] = static_cast<uint8_t>(i * 7 + i / 4096);
  auto t = FileTarget::Create(p, size, false);
  ASSERT_TRUE(t);
  AlignedBuffer buf;
  buf.Reserve(2 * kBlock + 1);
  std::memcpy(buf.data(), want.data(), 2 * kBlock);
  ASSERT_TRUE((*t)->WriteAt(0, {buf.data(), 2 * kBlock}));         // aligned: direct
  std::memcpy(buf.data() + 1, want.data() + 2 * kBlock, kBlock);
  ASSERT_TRUE((*t)->WriteAt(2 * kBlock, {buf.data() + 1, kBlock}));  // buffer misaligned
  ASSERT_TRUE((*t)->WriteAt(3 * kBlock, {want.data() + 3 * kBlock, 1000}));  // short tail
  // The file system says whether it offers direct I/O; where it does, exactly the aligned
  // write took it.
  struct statx sx {};
  ASSERT_EQ(::statx(AT_FDCWD, (p + ".snapvol-partial").c_str(), 0, STATX_DIOALIGN, &sx), 0);
  const bool offered = (sx.stx_mask & STATX_DIOALIGN) && sx.stx_dio_mem_align != 0 &&
                       sx.stx_dio_mem_align <= AlignedBuffer::kAlignment;
  EXPECT_EQ((*t)->direct_writes(), offered ? 1u : 0u);
  ASSERT_TRUE((*t)->Commit());
  EXPECT_EQ(*ReadWholeFile(p), want);
}

}  // namespace
}  // namespace snapvol
