#include "managed/volume_files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "core/file_util.h"
#include "core/hash.h"
#include "core/ids.h"

namespace snapvol {
namespace {

class VolumeFilesTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir() + "/volume-files-" + NewVolumeId();
    ASSERT_TRUE(MakeDirs(dir_));
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(VolumeFilesTest, ImageIsSparseOwnerOnlyAndNeverOverwritten) {
  const std::string img = VolumeImagePath(dir_, "vol-0123456789abcdef0");
  EXPECT_EQ(img, dir_ + "/vol-0123456789abcdef0.img");
  ASSERT_TRUE(CreateVolumeImage(img, 1ull << 30));
  struct stat st {};
  ASSERT_EQ(::stat(img.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 1ll << 30);
  EXPECT_LT(st.st_blocks * 512, 1 << 20) << "the image should be sparse";
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = CreateVolumeImage(img, 4096);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), ErrorCode::kAlreadyExists);
  ASSERT_EQ(::stat(img.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 1ll << 30) << "an existing image was changed";
}

TEST_F(VolumeFilesTest, ASizeTheFileSystemCannotHoldIsNoSpaceAndLeavesNoFile) {
  const std::string img = VolumeImagePath(dir_, "vol-0123456789abcdef1");
  auto made = CreateVolumeImage(img, 1ull << 62);  // 4 EiB: beyond every Linux file system's file size
  ASSERT_FALSE(made);
  EXPECT_EQ(made.error().code(), ErrorCode::kNoSpace) << made.error().message();
  EXPECT_FALSE(PathExists(img)) << "a failed create must not leave a file behind";
}

TEST_F(VolumeFilesTest, RemoveTakesEveryFileOfTheVolumeAndNothingElse) {
  const std::string img = VolumeImagePath(dir_, "vol-0123456789abcdef2");
  const std::string other = VolumeImagePath(dir_, "vol-0123456789abcdef3");
  ASSERT_TRUE(CreateVolumeImage(img, 4096));
  ASSERT_TRUE(CreateVolumeImage(other, 4096));
  for (const std::string& f : {CbtPath(img), LoadMapPath(img), CbtPath(other)})
    ASSERT_TRUE(WriteFileAtomic(f, AsBytes(std::string("x")), 0600));
  ASSERT_TRUE(MakeDirs(CowPath(img, "snap-0123456789abcdef0")));
  ASSERT_TRUE(WriteFileAtomic(CowPath(img, "snap-0123456789abcdef0") + "/blocks", AsBytes(std::string("x")), 0600));
  RemoveVolumeFiles(img);
  for (const std::string& f : {img, CbtPath(img), LoadMapPath(img), CowPath(img, "snap-0123456789abcdef0")})
    EXPECT_FALSE(PathExists(f)) << f;
  EXPECT_TRUE(PathExists(other));
  EXPECT_TRUE(PathExists(CbtPath(other)));
  RemoveVolumeFiles(img);  // absent files are fine
}

}  // namespace
}  // namespace snapvol
