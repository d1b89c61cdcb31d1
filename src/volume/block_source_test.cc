#include "volume/block_source.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

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

}  // namespace
}  // namespace snapvol
