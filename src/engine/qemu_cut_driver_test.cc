// QemuCutDriver against a real qemu-storage-daemon (Debian's qemu-system-common): the cut reads
// the disk as it stood, the dirty bitmap is trusted only for its own generation, and whatever a
// snapshot set up in QEMU is gone when it ends, failed or not.
#include "engine/qemu_cut_driver.h"

#include <gtest/gtest.h>
#include <libnbd.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <atomic>
#include <fstream>
#include <thread>

#include "core/ids.h"
#include "core/subprocess.h"
#include "volume/nbd_export_source.h"
#include "volume/qmp_client.h"

namespace snapvol {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr uint32_t kBlock = 512 * 1024;
constexpr uint64_t kSize = 16 << 20;  // 32 blocks

void RunTool(const std::vector<std::string>& argv) {
  auto r = RunCommand(argv, "", 60000, 4096);
  ASSERT_TRUE(r) << r.error().ToString();
  ASSERT_TRUE(r->ok()) << argv[0] << " " << r->Describe(60000);
}

class QemuCutDriverTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = "/tmp/svq-" + NewVolumeId().substr(4, 10);
    std::filesystem::create_directories(dir_);
    RunTool({"qemu-img", "create", "-q", "-f", "qcow2", dir_ + "/d.qcow2", std::to_string(kSize)});
    RunTool({"qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 " + std::to_string(kSize), dir_ + "/d.qcow2"});
    StartQsd();
    disk_ = *QemuDisk::Make("disk", dir_ + "/q.sock", dir_ + "/n.sock");
    volume_.volume_id = "vol-0123456789abcdef0";
    volume_.path = disk_.Path();
    driver_ = std::make_unique<QemuCutDriver>(kBlock, dir_ + "/scratch", 10s);
  }
  // second_disk: also node "disk2" (d2.qcow2, which the test creates), exported as "disk2".
  void StartQsd(bool second_disk = false) {
    std::vector<std::string> argv = {
        "qemu-storage-daemon", "--blockdev", "driver=file,node-name=f,filename=" + dir_ + "/d.qcow2",
        "--blockdev", "driver=qcow2,node-name=disk,file=f", "--nbd-server",
        "addr.type=unix,addr.path=" + dir_ + "/n.sock", "--export",
        "type=nbd,id=w,node-name=disk,name=disk,writable=on", "--chardev",
        "socket,id=c,path=" + dir_ + "/q.sock,server=on,wait=off", "--monitor", "chardev=c", "--daemonize",
        "--pidfile", dir_ + "/pid"};
    if (second_disk)
      for (std::string a : {"--blockdev", "driver=file,node-name=f2,filename=D/d2.qcow2", "--blockdev",
                            "driver=qcow2,node-name=disk2,file=f2", "--export",
                            "type=nbd,id=w2,node-name=disk2,name=disk2,writable=on"})
        argv.push_back(a.starts_with("driver=file") ? "driver=file,node-name=f2,filename=" + dir_ + "/d2.qcow2" : a);
    RunTool(argv);
    std::ifstream(dir_ + "/pid") >> pid_;
    ASSERT_GT(pid_, 0);
  }
  void KillQsd(int sig) {
    ::kill(pid_, sig);
    for (int i = 0; i < 500 && ::kill(pid_, 0) == 0; ++i) std::this_thread::sleep_for(10ms);
    pid_ = 0;
  }
  void TearDown() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      for (int i = 0; i < 500 && ::kill(pid_, 0) == 0; ++i) std::this_thread::sleep_for(10ms);
    }
    std::filesystem::remove_all(dir_);
  }

  json Qmp(const std::string& cmd, const json& args = nullptr) {
    auto q = QmpClient::Connect(dir_ + "/q.sock", 10s);
    EXPECT_TRUE(q) << q.error().ToString();
    if (!q) return nullptr;
    auto r = (*q)->Execute(cmd, args);
    EXPECT_TRUE(r) << r.error().ToString();
    return r ? *r : json();
  }
  // name → {recording, persistent, busy} of the disk's named bitmaps.
  std::map<std::string, json> Bitmaps() {
    std::map<std::string, json> out;
    for (const auto& n : Qmp("query-named-block-nodes", {{"flat", true}}))
      if (n.value("node-name", "") == "disk")
        for (const auto& b : n.value("dirty-bitmaps", json::array()))
          if (b.contains("name")) out[b["name"]] = b;
    return out;
  }
  std::string Bitmap(const std::string& snap) { return QemuBitmapName(volume_.volume_id, snap); }
  // Writes byte over [offset, offset+len) through the daemon's own writable export.
  void Write(uint64_t offset, uint64_t len, uint8_t byte) {
    nbd_handle* h = nbd_create();
    ASSERT_NE(nbd_set_export_name(h, "disk"), -1);
    ASSERT_NE(nbd_connect_unix(h, (dir_ + "/n.sock").c_str()), -1) << nbd_get_error();
    std::vector<uint8_t> data(len, byte);
    ASSERT_NE(nbd_pwrite(h, data.data(), len, offset, 0), -1) << nbd_get_error();
    nbd_shutdown(h, 0);
    nbd_close(h);
  }
  // Nothing of a snapshot is left in QEMU or in the scratch dir.
  void ExpectNothingLeft() {
    for (const auto& n : Qmp("query-named-block-nodes", {{"flat", true}})) {
      std::string name = n.value("node-name", "");
      EXPECT_FALSE(name.starts_with("svf-") || name.starts_with("svo-")) << name;
      EXPECT_NE(n.value("drv", ""), "copy-before-write") << "the fleecing filter is still inserted";
    }
    EXPECT_EQ(Qmp("query-jobs"), json::array());
    for (const auto& e : Qmp("query-block-exports"))  // the daemon's own (w, w2) only
      EXPECT_TRUE(e.value("id", "") == "w" || e.value("id", "") == "w2") << e.dump();
    if (std::filesystem::exists(dir_ + "/scratch"))
      EXPECT_TRUE(std::filesystem::is_empty(dir_ + "/scratch"));
  }
  PreparedSource Cut(const std::string& snap, const std::string& parent) {
    auto p = driver_->Cut(volume_, snap, parent);
    EXPECT_TRUE(p) << p.error().ToString();
    EXPECT_TRUE(p && *p);
    return p && *p ? std::move(**p) : PreparedSource{};
  }
  std::vector<uint64_t> Changed(const PreparedSource& p) {
    std::vector<uint64_t> out;
    for (uint64_t b = 0; b < kSize / kBlock; ++b)
      if (p.maybe_changed(b)) out.push_back(b);
    return out;
  }

  std::string dir_;
  pid_t pid_ = 0;
  QemuDisk disk_;
  VolumeRecord volume_;
  std::unique_ptr<QemuCutDriver> driver_;
};

TEST_F(QemuCutDriverTest, TheCutReadsTheDiskAsItStoodAndLeavesNothingBehind) {
  PreparedSource p = Cut("snap-1", "");
  ASSERT_TRUE(p.source);
  EXPECT_EQ(p.consistency, "point-in-time (QEMU fleecing)");
  EXPECT_EQ(p.changed_blocks, "full snapshot (no parent)");
  EXPECT_FALSE(p.maybe_changed);
  EXPECT_EQ(p.source->size(), kSize);
  EXPECT_TRUE(p.source->point_in_time());
  auto st = std::filesystem::status(dir_ + "/scratch");
  EXPECT_EQ(st.permissions() & std::filesystem::perms::all, std::filesystem::perms::owner_all);
  EXPECT_EQ(std::filesystem::status(dir_ + "/scratch/snap-1.qcow2").permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);

  Write(kBlock, 2 * kBlock, 0x22);  // after the cut: the snapshot must not see it
  std::vector<uint8_t> buf(3 * kBlock);
  ASSERT_TRUE(p.source->ReadAt(0, buf));
  EXPECT_TRUE(std::all_of(buf.begin(), buf.end(), [](uint8_t b) { return b == 0x11; }));
  p.on_done(true);
  ExpectNothingLeft();
  auto bm = Bitmaps();
  ASSERT_EQ(bm.size(), 1u);
  EXPECT_TRUE(bm.contains(Bitmap("snap-1")));
  EXPECT_TRUE(bm[Bitmap("snap-1")]["persistent"].get<bool>());
  EXPECT_TRUE(bm[Bitmap("snap-1")]["recording"].get<bool>());
}

// A QEMU that stops answering in the middle of the reads (SIGSTOP) fails the read within the
// deadline, with a message that says so, instead of holding the snapshot forever; a QEMU that
// answers is read to the end.
TEST_F(QemuCutDriverTest, AReadThatQemuNeverAnswersFailsAtItsDeadline) {
  auto src = NbdExportSource::Open(dir_ + "/n.sock", "disk", "", "disk over NBD", 500ms);
  ASSERT_TRUE(src) << src.error().ToString();
  std::vector<uint8_t> buf(kBlock);
  ASSERT_TRUE((*src)->ReadAt(0, buf));
  EXPECT_EQ(buf[0], 0x11);
  ::kill(pid_, SIGSTOP);
  const auto start = std::chrono::steady_clock::now();
  auto st = (*src)->ReadAt(kBlock, buf);
  const auto took = std::chrono::steady_clock::now() - start;
  ::kill(pid_, SIGCONT);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message().find("did not answer within 500 ms"), std::string::npos) << st.error().ToString();
  EXPECT_LT(took, 30s) << "the read was not ended near its deadline";
  EXPECT_FALSE((*src)->ReadAt(0, buf)) << "a connection ended by the watchdog stays ended";
  (*src)->Close();
}

TEST_F(QemuCutDriverTest, TheBitmapIsTrustedOnlyForItsOwnRecordingGeneration) {
  Cut("snap-1", "").on_done(true);
  Write(3 * kBlock + 4096, 4096, 0x33);
  PreparedSource p2 = Cut("snap-2", "snap-1");
  ASSERT_TRUE(p2.maybe_changed);
  EXPECT_EQ(Changed(p2), std::vector<uint64_t>{3});
  EXPECT_EQ(p2.changed_blocks, "dirty bitmap " + Bitmap("snap-1") + " of disk since snap-1: 1 of 32 blocks changed");
  p2.on_done(true);
  ExpectNothingLeft();
  EXPECT_EQ(Bitmaps().size(), 1u);
  EXPECT_TRUE(Bitmaps().contains(Bitmap("snap-2")));

  // The parent is another snapshot than the one the bitmap started at: a full read.
  PreparedSource other = Cut("snap-3", "snap-9");
  EXPECT_FALSE(other.maybe_changed);
  EXPECT_EQ(other.changed_blocks, "full read: no dirty bitmap " + Bitmap("snap-9") + " on disk (there is " +
                                      Bitmap("snap-2") + ", another generation)");
  other.on_done(false);
  ExpectNothingLeft();
  EXPECT_EQ(Bitmaps().size(), 1u);
  EXPECT_TRUE(Bitmaps()[Bitmap("snap-2")]["recording"].get<bool>());

  // A bitmap that stopped recording (a cut whose snapvol died before it ended) missed writes.
  Qmp("block-dirty-bitmap-disable", {{"node", "disk"}, {"name", Bitmap("snap-2")}});
  PreparedSource stopped = Cut("snap-4", "snap-2");
  EXPECT_FALSE(stopped.maybe_changed);
  EXPECT_EQ(stopped.changed_blocks, "full read: dirty bitmap " + Bitmap("snap-2") +
                                        " stopped recording (a cut that never ended)");
  stopped.on_done(true);
  ExpectNothingLeft();
  EXPECT_EQ(Bitmaps().size(), 1u);
  EXPECT_TRUE(Bitmaps().contains(Bitmap("snap-4")));

  // Lost altogether.
  Qmp("block-dirty-bitmap-remove", {{"node", "disk"}, {"name", Bitmap("snap-4")}});
  PreparedSource lost = Cut("snap-5", "snap-4");
  EXPECT_FALSE(lost.maybe_changed);
  EXPECT_EQ(lost.changed_blocks, "full read: no dirty bitmap " + Bitmap("snap-4") + " on disk (lost)");
  lost.on_done(true);
}

TEST_F(QemuCutDriverTest, AFailedSnapshotGivesItsWritesBackToTheParentsBitmap) {
  Cut("snap-1", "").on_done(true);
  Write(2 * kBlock, 4096, 0x44);
  PreparedSource failed = Cut("snap-2", "snap-1");
  EXPECT_EQ(Changed(failed), std::vector<uint64_t>{2});
  Write(5 * kBlock, 4096, 0x55);  // after the failed snapshot's cut
  failed.on_done(false);
  ExpectNothingLeft();
  auto bm = Bitmaps();
  ASSERT_EQ(bm.size(), 1u);
  EXPECT_TRUE(bm[Bitmap("snap-1")]["recording"].get<bool>());
  Write(7 * kBlock, 4096, 0x77);
  PreparedSource next = Cut("snap-3", "snap-1");
  EXPECT_EQ(Changed(next), (std::vector<uint64_t>{2, 5, 7}));
  next.on_done(true);
}

TEST_F(QemuCutDriverTest, ASetUpThatFailsHalfwayIsUndone) {
  Cut("snap-1", "").on_done(true);
  Write(6 * kBlock, 4096, 0x66);
  // The NBD socket the volume names is gone: the cut fails after QEMU exported the overlay.
  std::filesystem::rename(dir_ + "/n.sock", dir_ + "/n.away");
  auto p = driver_->Cut(volume_, "snap-2", "snap-1");
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().message().find("QEMU disk disk"), std::string::npos) << p.error().message();
  std::filesystem::rename(dir_ + "/n.away", dir_ + "/n.sock");
  ExpectNothingLeft();
  auto bm = Bitmaps();
  ASSERT_EQ(bm.size(), 1u);
  EXPECT_TRUE(bm[Bitmap("snap-1")]["recording"].get<bool>());
  PreparedSource next = Cut("snap-3", "snap-1");
  EXPECT_EQ(Changed(next), std::vector<uint64_t>{6});
  next.on_done(true);

  VolumeRecord missing = volume_;
  missing.path = QemuDisk::Make("nope", dir_ + "/q.sock", "")->Path();
  auto none = driver_->Cut(missing, "snap-4", "");
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code(), ErrorCode::kNotFound);
  ExpectNothingLeft();
}

TEST_F(QemuCutDriverTest, WhatASnapvolThatDiedMidSnapshotLeftIsSweptUp) {
  Cut("snap-1", "").on_done(true);
  {
    PreparedSource dead = Cut("snap-2", "snap-1");
    // dropped without on_done: as if the process had been killed while reading
  }
  json exports = Qmp("query-block-exports");
  ASSERT_EQ(exports.size(), 2u) << exports.dump();
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/scratch/snap-2.qcow2"));
  Write(4 * kBlock, 4096, 0x44);
  // The dead cut froze the parent's bitmap: it missed writes since, so it is not trusted.
  PreparedSource next = Cut("snap-3", "snap-1");
  EXPECT_FALSE(next.maybe_changed);
  EXPECT_EQ(next.changed_blocks, "full read: dirty bitmap " + Bitmap("snap-1") +
                                     " stopped recording (a cut that never ended)");
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/scratch/snap-2.qcow2"));
  next.on_done(true);
  ExpectNothingLeft();
  auto bm = Bitmaps();
  ASSERT_EQ(bm.size(), 1u);
  EXPECT_TRUE(bm.contains(Bitmap("snap-3")));
}

TEST_F(QemuCutDriverTest, ABitmapOfAQemuThatDiedIsNotTrustedAndARestartedOneIs) {
  Cut("snap-1", "").on_done(true);
  KillQsd(SIGTERM);  // a clean stop writes the bitmap into the qcow2
  StartQsd();
  Write(8 * kBlock, 4096, 0x88);
  PreparedSource p2 = Cut("snap-2", "snap-1");
  EXPECT_EQ(Changed(p2), std::vector<uint64_t>{8});
  p2.on_done(true);

  // A bitmap QEMU loaded from the image and never stored back (killed) is marked inconsistent
  // when it opens the image again. (One added since the start and never stored is simply lost.)
  KillQsd(SIGTERM);
  StartQsd();
  KillQsd(SIGKILL);
  StartQsd();
  PreparedSource p3 = Cut("snap-3", "snap-2");
  EXPECT_FALSE(p3.maybe_changed);
  EXPECT_EQ(p3.changed_blocks,
            "full read: dirty bitmap " + Bitmap("snap-2") + " is inconsistent (QEMU did not stop cleanly)");
  p3.on_done(true);
  ExpectNothingLeft();
  auto bm = Bitmaps();
  ASSERT_EQ(bm.size(), 1u);
  EXPECT_TRUE(bm.contains(Bitmap("snap-3")));
}

// A deleted volume's bitmaps go (QEMU would record into them for ever); another volume's and
// the user's own stay; a QEMU that cannot be reached is said, naming the volume.
TEST_F(QemuCutDriverTest, RemovingAVolumesBitmapsLeavesEveryOtherBitmap) {
  Cut("snap-1", "").on_done(true);
  const std::string other = QemuBitmapName("vol-0123456789abcdef1", "snap-9");
  Qmp("block-dirty-bitmap-add", {{"node", "disk"}, {"name", other}, {"persistent", true}});
  Qmp("block-dirty-bitmap-add", {{"node", "disk"}, {"name", "backup-tool"}, {"persistent", true}});
  ASSERT_EQ(Bitmaps().size(), 3u);

  ASSERT_TRUE(RemoveQemuBitmaps(disk_, volume_.volume_id, 10s));
  auto bm = Bitmaps();
  EXPECT_EQ(bm.size(), 2u);
  EXPECT_FALSE(bm.contains(Bitmap("snap-1")));
  EXPECT_TRUE(bm.contains(other));
  EXPECT_TRUE(bm.contains("backup-tool"));
  EXPECT_TRUE(RemoveQemuBitmaps(disk_, volume_.volume_id, 10s)) << "none left is not an error";

  KillQsd(SIGTERM);
  auto gone = RemoveQemuBitmaps(disk_, volume_.volume_id, 2s);
  ASSERT_FALSE(gone);
  EXPECT_NE(gone.error().message().find("the dirty bitmaps of " + volume_.volume_id + " on QEMU node disk"),
            std::string::npos)
      << gone.error().message();
}

// The disks of one QEMU are cut at one instant (one transaction): a guest that writes a counter
// to disk A and then to disk B can never be seen with B ahead of A or A more than one ahead of B.
// Cut one after the other, the writer runs on between the two cuts and B is far ahead.
TEST_F(QemuCutDriverTest, TheDisksOfOneQemuAreCutAtOneInstant) {
  KillQsd(SIGTERM);
  RunTool({"qemu-img", "create", "-q", "-f", "qcow2", dir_ + "/d2.qcow2", std::to_string(kSize)});
  StartQsd(/*second_disk=*/true);
  VolumeRecord second = volume_;
  second.volume_id = "vol-0123456789abcdef1";
  second.path = QemuDisk::Make("disk2", dir_ + "/q.sock", dir_ + "/n.sock")->Path();

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> written{0};
  std::thread writer([&] {
    nbd_handle* h[2];
    for (int i = 0; i < 2; ++i) {
      h[i] = nbd_create();
      nbd_set_export_name(h[i], i == 0 ? "disk" : "disk2");
      if (nbd_connect_unix(h[i], (dir_ + "/n.sock").c_str()) == -1) ADD_FAILURE() << nbd_get_error();
    }
    for (uint64_t n = 1; !stop; ++n) {
      for (auto* hi : h) nbd_pwrite(hi, &n, sizeof n, 0, 0);
      written = n;
    }
    for (auto* hi : h) {
      nbd_shutdown(hi, 0);
      nbd_close(hi);
    }
  });
  while (written < 100) std::this_thread::sleep_for(1ms);
  auto cuts = driver_->CutAll({{volume_, "snap-a", ""}, {second, "snap-b", ""}});
  const uint64_t after = written;
  while (written < after + 100) std::this_thread::sleep_for(1ms);  // it writes on after the cut
  stop = true;
  writer.join();
  ASSERT_TRUE(cuts) << cuts.error().ToString();
  ASSERT_EQ(cuts->size(), 2u);
  uint64_t a = 0, b = 0;
  ASSERT_TRUE((*cuts)[0] && (*cuts)[1]);
  ASSERT_TRUE((*cuts)[0]->source->ReadAt(0, {reinterpret_cast<uint8_t*>(&a), sizeof a}));
  ASSERT_TRUE((*cuts)[1]->source->ReadAt(0, {reinterpret_cast<uint8_t*>(&b), sizeof b}));
  EXPECT_GT(a, 99u);
  EXPECT_TRUE(b == a || b + 1 == a) << "disk A at " << a << ", disk B at " << b << ": not one instant";
  for (auto& c : *cuts) c->on_done(true);
  ExpectNothingLeft();
}

TEST(QemuDisk, PathRoundTripsAndRefusesWhatQemuWould) {
  auto d = QemuDisk::Make("drive-virtio0", "/run/vm1/qmp.sock", "/run/vm1/nbd.sock");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->Path(), "qemu:drive-virtio0@/run/vm1/qmp.sock|nbd=/run/vm1/nbd.sock");
  auto back = QemuDisk::Parse(d->Path());
  ASSERT_TRUE(back);
  EXPECT_EQ(back->node, "drive-virtio0");
  EXPECT_EQ(back->qmp_socket, "/run/vm1/qmp.sock");
  EXPECT_EQ(back->nbd_socket, "/run/vm1/nbd.sock");
  EXPECT_EQ(QemuDisk::Parse(QemuDisk::Make("disk", "/q", "")->Path())->nbd_socket, "");
  EXPECT_FALSE(QemuDisk::Parse("/var/lib/images/a.img"));
  EXPECT_FALSE(QemuDisk::Make("9disk", "/q", ""));
  EXPECT_FALSE(QemuDisk::Make("a@b", "/q", ""));
  EXPECT_FALSE(QemuDisk::Make(std::string(32, 'a'), "/q", ""));
  EXPECT_FALSE(QemuDisk::Make("disk", "relative.sock", ""));
  EXPECT_FALSE(QemuDisk::Make("disk", "", ""));
}

}  // namespace
}  // namespace snapvol
