// Cuts of registered volumes on real file systems: reflink clones on XFS (point in time, the
// base clone's bookkeeping, only changed blocks read), the fallback on ext4, and block devices
// opened exclusively or, when mounted, shared.
#include "engine/registered_sources.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "core/file_util.h"
#include "catalog/catalog.h"
#include "core/ids.h"
#include "engine/engine_test_util.h"
#include "store/memory_store.h"
#include "volume/cut_sources.h"
#include "volume/loop_fs_test_util.h"

namespace snapvol {
namespace {

constexpr uint32_t kBs = 64 * 1024;
constexpr uint64_t kBlocks = 32;

std::vector<uint8_t> ReadAll(const std::string& path) {
  std::vector<uint8_t> out(kBlocks * kBs);
  auto fd = OpenFile(path, O_RDONLY);
  EXPECT_TRUE(fd);
  if (fd) {
    EXPECT_TRUE(PreadFull(fd->get(), out, 0));
  }
  return out;
}

void Write(const std::string& path, uint64_t block, uint8_t fill) {
  auto fd = OpenFile(path, O_WRONLY | O_CREAT, 0644);
  ASSERT_TRUE(fd);
  std::vector<uint8_t> buf(kBs, fill);
  buf[7] = static_cast<uint8_t>(block);
  ASSERT_TRUE(PwriteFull(fd->get(), buf, block * kBs));
  ASSERT_EQ(::fsync(fd->get()), 0);
}

class RegisteredSourcesTest : public testing::Test {
 protected:
  void SetUp() override {
    RepositoryOptions ro;
    ro.block_size = kBs;
    repo_ = std::move(*Repository::Create(std::make_unique<MemoryStore>(), ro));
  }
  VolumeRecord Volume(const std::string& path) {
    VolumeRecord v;
    v.volume_id = NewVolumeId();
    v.account_id = kDefaultAccountId;
    v.path = path;
    for (uint64_t b = 0; b < kBlocks; ++b) Write(path, b, static_cast<uint8_t>(0x40 + b));
    v.size_bytes = kBlocks * kBs;
    return v;
  }
  // Snapshots p's source with the engine as a job would; the stats, or the error.
  Result<SnapshotStats> Take(const PreparedSource& p, const std::string& id, const std::string& parent) {
    SnapshotRequest req;
    req.snapshot_id = id;
    req.volume_id = "vol-x";
    req.owner_id = kDefaultAccountId;
    req.parent_id = parent;
    req.maybe_changed = p.maybe_changed;
    SnapshotEngine engine(repo_.get(), &pool_);
    ASSIGN_OR_RETURN(SnapshotOutcome out, engine.Create(p.source.get(), req));
    return out.stats;
  }
  std::vector<uint8_t> Restore(const std::string& id) {
    testing_util::MemoryTarget t(kBlocks * kBs);
    SnapshotEngine engine(repo_.get(), &pool_);
    EXPECT_TRUE(engine.Restore(id, &t));
    return t.data;
  }
  std::unique_ptr<Repository> repo_;
  ThreadPool pool_{2};
};

TEST_F(RegisteredSourcesTest, ReflinkBaseBookkeeping) {
  testing_util::LoopFs fs("xfs");
  ASSERT_TRUE(fs.ok()) << "mkfs.xfs and a loop mount (root) are needed";
  VolumeRecord v = Volume(fs.dir() + "/disk.img");
  RegisteredSourceProvider provider(kBs);

  // First snapshot: a clone, point in time, read in full.
  const std::string s1 = NewSnapshotId();
  auto p1 = provider.Prepare(v, s1, "");
  ASSERT_TRUE(p1 && *p1) << (p1 ? "" : p1.error().message());
  EXPECT_EQ((*p1)->consistency, kConsistencyReflink);
  EXPECT_TRUE((*p1)->source->point_in_time());
  EXPECT_FALSE((*p1)->maybe_changed);
  auto before = ReadAll(v.path);
  Write(v.path, 9, 0xEE);  // after the cut: not in s1
  auto st1 = Take(**p1, s1, "");
  ASSERT_TRUE(st1) << st1.error().message();
  EXPECT_EQ(st1->bytes_read, kBlocks * kBs);
  (*p1)->source.reset();  // closed, as a job closes it
  (*p1)->on_done(true);
  EXPECT_EQ(Restore(s1), before);
  EXPECT_EQ(ListClones(v.path, v.volume_id), std::vector<std::string>{s1});
  struct stat dst {};
  ASSERT_EQ(::stat(CloneDir(v.path).c_str(), &dst), 0);
  EXPECT_EQ(dst.st_mode & 0777, 0700u);

  // Second: only blocks 9 and 20 changed, only they are read; the snapshot then fails.
  Write(v.path, 20, 0xDD);
  const std::string s2 = NewSnapshotId();
  auto p2 = provider.Prepare(v, s2, s1);
  ASSERT_TRUE(p2 && *p2);
  ASSERT_TRUE((*p2)->maybe_changed);
  std::vector<uint64_t> changed;
  for (uint64_t b = 0; b < kBlocks; ++b)
    if ((*p2)->maybe_changed(b)) changed.push_back(b);
  EXPECT_EQ(changed, (std::vector<uint64_t>{9, 20}));
  EXPECT_NE((*p2)->changed_blocks.find("extent maps against the base clone of " + s1), std::string::npos);
  auto st2 = Take(**p2, s2, s1);
  ASSERT_TRUE(st2);
  EXPECT_EQ(st2->bytes_read, 2 * kBs);
  EXPECT_EQ(Restore(s2), ReadAll(v.path));
  (*p2)->source.reset();  // closed, as a job closes it
  (*p2)->on_done(false);  // say the catalog could not record it: the old base stays
  EXPECT_EQ(ListClones(v.path, v.volume_id), std::vector<std::string>{s1});

  // Third, still against s1's base, completes: it becomes the only base.
  const std::string s3 = NewSnapshotId();
  auto p3 = provider.Prepare(v, s3, s1);
  ASSERT_TRUE(p3 && *p3 && (*p3)->maybe_changed);
  auto st3 = Take(**p3, s3, s1);
  ASSERT_TRUE(st3);
  EXPECT_EQ(st3->bytes_read, 2 * kBs);
  (*p3)->source.reset();  // closed, as a job closes it
  (*p3)->on_done(true);
  EXPECT_EQ(ListClones(v.path, v.volume_id), std::vector<std::string>{s3});
  auto space = BaseCloneOf(v.path, v.volume_id);
  ASSERT_TRUE(space && *space);
  EXPECT_EQ((*space)->snapshot_id, s3);
  EXPECT_EQ((*space)->exclusive_bytes, 0u);  // nothing rewritten since s3's cut
  Write(v.path, 4, 0x11);
  // XFS frees the extents of removed clones (s1's, s2's) in the background, and a loaded
  // machine may take a while even after sync: ask again for up to 20 s.
  for (int i = 0; i < 200; ++i) {
    ::sync();
    space = BaseCloneOf(v.path, v.volume_id);
    ASSERT_TRUE(space && *space);
    if ((*space)->exclusive_bytes == kBs) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ((*space)->exclusive_bytes, kBs);  // block 4's old data is held by the base alone

  // A parent whose base is gone (s1's): a full read, said.
  const std::string s4 = NewSnapshotId();
  auto p4 = provider.Prepare(v, s4, s1);
  ASSERT_TRUE(p4 && *p4);
  EXPECT_FALSE((*p4)->maybe_changed);
  EXPECT_EQ((*p4)->changed_blocks, "full read: the base clone is of " + s3 + ", not of the parent " + s1);
  auto st4 = Take(**p4, s4, s1);
  ASSERT_TRUE(st4);
  EXPECT_EQ(st4->bytes_read, kBlocks * kBs);
  (*p4)->source.reset();  // closed, as a job closes it
  (*p4)->on_done(false);
  EXPECT_EQ(ListClones(v.path, v.volume_id), std::vector<std::string>{s3});

  ASSERT_TRUE(RemoveVolumeClones(v.path, v.volume_id));
  EXPECT_TRUE(ListClones(v.path, v.volume_id).empty());
}

// The daemon's path: SnapshotJobs asks the provider for the cut, tags the snapshot with what
// it says, reads only the changed blocks and ends the cut (the base moves on).
TEST_F(RegisteredSourcesTest, SnapshotJobsCutThroughTheProvider) {
  testing_util::LoopFs fs("xfs");
  ASSERT_TRUE(fs.ok());
  auto catalog = Catalog::Open(fs.dir() + "/catalog.db");
  ASSERT_TRUE(catalog) << catalog.error().message();
  VolumeRecord v = Volume(fs.dir() + "/disk.img");
  v.name = "v";
  v.block_size = kBs;
  v.created_ms = 1;
  ASSERT_TRUE((*catalog)->InsertVolume(v));
  RegisteredSourceProvider provider(kBs);
  SnapshotJobs jobs(repo_.get(), catalog->get(), &pool_, "test-runner", 1);
  jobs.SetSourceProvider(&provider);
  auto take = [&]() -> SnapshotRecord {
    auto started = jobs.Start({{v, "", {{"Name", "v"}}, 0, false}});
    EXPECT_TRUE(started) << started.error().message();
    const std::string id = (*started)[0].snapshot_id;
    for (int i = 0; i < 1000; ++i) {
      if ((*catalog)->GetSnapshot(id)->state != SnapshotState::kPending) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return *(*catalog)->GetSnapshot(id);
  };
  auto tag = [](const SnapshotRecord& s, const std::string& key) {
    for (const auto& t : s.tags)
      if (t.key == key) return t.value;
    return std::string("(none)");
  };
  SnapshotRecord first = take();
  ASSERT_EQ(first.state, SnapshotState::kCompleted) << first.state_message;
  EXPECT_EQ(tag(first, kConsistencyTag), kConsistencyReflink);
  EXPECT_EQ(tag(first, kChangedBlocksTag), "full snapshot (no parent)");
  EXPECT_EQ(tag(first, "Name"), "v");
  Write(v.path, 7, 0x99);
  SnapshotRecord second = take();
  ASSERT_EQ(second.state, SnapshotState::kCompleted) << second.state_message;
  EXPECT_EQ(second.parent_snapshot_id, first.snapshot_id);
  EXPECT_EQ(tag(second, kChangedBlocksTag),
            "extent maps against the base clone of " + first.snapshot_id + ": 1 of 32 blocks changed");
  // The job ends the cut just after the row says completed: the older base goes then.
  for (int i = 0; i < 500 && ListClones(v.path, v.volume_id).size() > 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(ListClones(v.path, v.volume_id), std::vector<std::string>{second.snapshot_id});
  // The manifest carries the tags too (a rebuilt catalog keeps them).
  auto meta = repo_->GetManifest(second.snapshot_id);
  ASSERT_TRUE(meta);
  bool in_manifest = false;
  for (const auto& [k, val] : meta->tags) in_manifest |= k == kConsistencyTag && val == kConsistencyReflink;
  EXPECT_TRUE(in_manifest);
  EXPECT_EQ(Restore(second.snapshot_id), ReadAll(v.path));
  jobs.Shutdown();
}

TEST_F(RegisteredSourcesTest, Ext4FallsBackToReadingWhileRunningAndSaysSo) {
  testing_util::LoopFs fs("ext4");
  ASSERT_TRUE(fs.ok()) << "mkfs.ext4 and a loop mount (root) are needed";
  VolumeRecord v = Volume(fs.dir() + "/disk.img");
  RegisteredSourceProvider provider(kBs);
  auto p = provider.Prepare(v, NewSnapshotId(), "");
  ASSERT_TRUE(p && *p);
  EXPECT_FALSE((*p)->source);  // the job reads the file itself
  EXPECT_TRUE((*p)->consistency.starts_with(std::string(kConsistencyReadWhileRunning) + "; the file system of"))
      << (*p)->consistency;
  EXPECT_NE((*p)->consistency.find("cannot clone"), std::string::npos);
  EXPECT_TRUE(ListClones(v.path, v.volume_id).empty());
  EXPECT_NE(::access(CloneDir(v.path).c_str(), F_OK), 0) << "an empty clone dir was left beside the image";
  std::vector<Tag> tags;
  AddSourceTags(**p, false, &tags);
  ASSERT_EQ(tags.size(), 2u);
  EXPECT_EQ(tags[0].key, kConsistencyTag);
  EXPECT_EQ(tags[0].value, (*p)->consistency);
}

std::string Shell(const std::string& cmd) {
  std::string out;
  if (FILE* f = ::popen(cmd.c_str(), "r")) {
    char buf[256];
    while (std::fgets(buf, sizeof buf, f)) out += buf;
    ::pclose(f);
  }
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

TEST_F(RegisteredSourcesTest, BlockDeviceExclusiveUnlessMounted) {
  testing_util::LoopFs fs("xfs");
  ASSERT_TRUE(fs.ok());
  RegisteredSourceProvider provider(kBs);
  // Mounted: read shared, not point in time.
  VolumeRecord mounted;
  mounted.volume_id = NewVolumeId();
  mounted.path = Shell("findmnt -n -o SOURCE " + fs.dir());
  ASSERT_TRUE(mounted.path.starts_with("/dev/loop")) << mounted.path;
  auto p = provider.Prepare(mounted, NewSnapshotId(), "");
  ASSERT_TRUE(p && *p) << (p ? "" : p.error().message());
  EXPECT_FALSE((*p)->source->point_in_time());
  EXPECT_EQ((*p)->consistency, std::string(kConsistencyReadWhileRunning) +
                                   "; the device is in use (mounted, or held exclusively by another program)");
  // Not mounted: held exclusively, so nobody can mount it meanwhile.
  const std::string file = fs.dir() + "/dev.img";
  Write(file, 0, 1);
  VolumeRecord dev;
  dev.volume_id = NewVolumeId();
  dev.path = Shell("losetup -f --show " + file);
  ASSERT_TRUE(dev.path.starts_with("/dev/loop")) << dev.path;
  auto q = provider.Prepare(dev, NewSnapshotId(), "");
  bool ok = q && *q;
  if (ok) {
    EXPECT_TRUE((*q)->source->point_in_time());
    EXPECT_EQ((*q)->consistency, kConsistencyExclusiveDevice);
    EXPECT_EQ((*q)->source->size(), kBs);
    q->reset();
  }
  (void)std::system(("losetup -d " + dev.path).c_str());
  ASSERT_TRUE(ok) << (q ? "" : q.error().message());
}

}  // namespace
}  // namespace snapvol
