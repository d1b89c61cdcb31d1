// This host's identity and the judgement of runners (cli/host_identity.h): DIR/host-id is made
// once (0600) and reused, a damaged one is a clear error; runner names parse in both forms; a
// runner of another host is alive exactly while that host's heartbeat is fresh (fake clock, two
// host rows). The bug this fixes: DataDir::Open's recovery used to end every pending snapshot
// whose boot id was not this machine's, so a second host sharing the catalog ended the first
// host's running snapshots. Simulated at the catalog level: another host's pending snapshot
// survives Open while that host's heartbeat is fresh, and is ended as before once it expired.
#include "cli/host_identity.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "cli/data_dir.h"
#include "core/file_util.h"
#include "core/hash.h"
#include "core/ids.h"

namespace snapvol {
namespace {

class TempDirTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "snapvol_host.XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

using HostIdTest = TempDirTest;

TEST_F(HostIdTest, MadeOnceWithMode0600AndReused) {
  auto first = LoadOrCreateHostId(dir_);
  ASSERT_TRUE(first) << first.error().ToString();
  EXPECT_TRUE(IsHostId(*first)) << *first;
  struct stat st {};
  ASSERT_EQ(::stat((dir_ + kHostIdFile).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(*LoadOrCreateHostId(dir_), *first);
  // Another data dir gets another id.
  ASSERT_TRUE(MakeDirs(dir_ + "/other", 0700));
  EXPECT_NE(*LoadOrCreateHostId(dir_ + "/other"), *first);
}

TEST_F(HostIdTest, ADamagedFileIsAClearError) {
  ASSERT_TRUE(WriteFileAtomic(dir_ + kHostIdFile, AsBytes("host-12\n"), 0600));
  auto id = LoadOrCreateHostId(dir_);
  ASSERT_FALSE(id);
  EXPECT_EQ(id.error().code(), ErrorCode::kCorruption);
  EXPECT_NE(id.error().message().find(dir_ + kHostIdFile), std::string::npos) << id.error().message();
  EXPECT_NE(id.error().message().find("does not hold a host id"), std::string::npos) << id.error().message();
}

TEST_F(HostIdTest, InitWritesItAndOpenKeepsIt) {
  ASSERT_TRUE(DataDir::Init(dir_ + "/d", {}));
  auto written = ReadWholeFile(dir_ + "/d" + kHostIdFile);
  ASSERT_TRUE(written);
  auto d = DataDir::Open(dir_ + "/d");
  ASSERT_TRUE(d) << d.error().ToString();
  EXPECT_EQ((*d)->host_id() + "\n", std::string(written->begin(), written->end()));
  EXPECT_EQ((*d)->RunnerId(), "pid:" + std::to_string(::getpid()) + "@" + ThisBootId() + "@" + (*d)->host_id());
  EXPECT_TRUE((*d)->RunnerAlive((*d)->RunnerId()));
}

TEST(RunnerNames, BothFormsParseAndOthersDoNot) {
  auto old = ParseRunner("pid:12@boot-1");
  ASSERT_TRUE(old);
  EXPECT_EQ(old->pid, 12);
  EXPECT_EQ(old->boot_id, "boot-1");
  EXPECT_EQ(old->host_id, "");
  auto now = ParseRunner("pid:7@b@host-0123456789abcdef0");
  ASSERT_TRUE(now);
  EXPECT_EQ(now->pid, 7);
  EXPECT_EQ(now->boot_id, "b");
  EXPECT_EQ(now->host_id, "host-0123456789abcdef0");
  EXPECT_EQ(FormatRunner(*now), "pid:7@b@host-0123456789abcdef0");
  for (const char* bad : {"", "api", "pid:", "pid:x@b", "pid:1@", "pid:1@b@nohost", "pid:0@b", "pid:1@b@host-1"})
    EXPECT_FALSE(ParseRunner(bad)) << bad;
}

class RunnerJudgeTest : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    auto c = Catalog::Open(dir_ + "/catalog.db");
    ASSERT_TRUE(c) << c.error().ToString();
    cat_ = std::move(*c);
  }
  void Register(const std::string& id, int64_t beat) {
    ASSERT_TRUE(cat_->UpsertHost({id, id, "http://x", "unix:/x", "0", 1, beat}));
  }
  RunnerJudge Judge() {
    // Process 100 runs on this host; every other pid is gone.
    return RunnerJudge(cat_.get(), &clock_, {kMe, "boot-me", [](long pid) { return pid != 100; }}, 30'000);
  }
  static constexpr char kMe[] = "host-aaaaaaaaaaaaaaaaa";
  static constexpr char kOther[] = "host-bbbbbbbbbbbbbbbbb";
  FakeClock clock_{1'000'000};
  std::unique_ptr<Catalog> cat_;
};

TEST_F(RunnerJudgeTest, ThisHostsRunnersByPidAndBootOthersByHeartbeat) {
  Register(kMe, 1'000'000);
  Register(kOther, 1'000'000);
  RunnerJudge judge = Judge();
  EXPECT_EQ(judge.RunnerId(100), std::string("pid:100@boot-me@") + kMe);
  // This host: the pid and the boot id decide, whatever the heartbeat.
  EXPECT_TRUE(judge.Alive(std::string("pid:100@boot-me@") + kMe));
  EXPECT_FALSE(judge.Alive(std::string("pid:101@boot-me@") + kMe));
  EXPECT_FALSE(judge.Alive(std::string("pid:100@boot-before@") + kMe));
  // The old form is this host's, as before.
  EXPECT_TRUE(judge.Alive("pid:100@boot-me"));
  EXPECT_FALSE(judge.Alive("pid:100@boot-other"));
  EXPECT_FALSE(judge.Alive(""));
  // Another host: neither its pid nor its boot id mean anything here; its heartbeat decides.
  const std::string theirs = std::string("pid:4242@boot-them@") + kOther;
  EXPECT_TRUE(judge.Alive(theirs));
  clock_.Advance(30'000);
  EXPECT_TRUE(judge.Alive(theirs));
  clock_.Advance(1);
  EXPECT_FALSE(judge.Alive(theirs));
  ASSERT_TRUE(cat_->Heartbeat(kOther, clock_.NowMillis()));
  EXPECT_TRUE(judge.Alive(theirs));
  ASSERT_TRUE(cat_->Heartbeat(kOther, 0));  // stopped cleanly
  EXPECT_FALSE(judge.Alive(theirs));
  // An unregistered host runs nothing.
  EXPECT_FALSE(judge.Alive("pid:4242@boot-them@host-ccccccccccccccccc"));
}

// A snapshot queued for a host (routed to the volume's host, docs/multi-host.md part 3): this
// host's own queue is alive here (its claimer takes it), another host's while that host is up.
TEST_F(RunnerJudgeTest, QueuedSnapshotsAreAliveOnTheirHostAndWhileItIsUp) {
  Register(kOther, 1'000'000);
  RunnerJudge judge = Judge();
  EXPECT_TRUE(judge.Alive(QueuedRunner(kMe)));  // no row needed: this host will claim it
  EXPECT_TRUE(judge.Alive(QueuedRunner(kOther)));
  clock_.Advance(30'001);
  EXPECT_FALSE(judge.Alive(QueuedRunner(kOther)));  // unreachable: nobody will claim it
  EXPECT_TRUE(judge.Alive(QueuedRunner(kMe)));
  ASSERT_TRUE(cat_->Heartbeat(kOther, clock_.NowMillis()));
  EXPECT_TRUE(judge.Alive(QueuedRunner(kOther)));
  ASSERT_TRUE(cat_->Heartbeat(kOther, 0));  // stopped cleanly
  EXPECT_FALSE(judge.Alive(QueuedRunner(kOther)));
  EXPECT_FALSE(judge.Alive(QueuedRunner("host-ccccccccccccccccc")));  // never registered
  EXPECT_FALSE(judge.Alive("queued@"));
  EXPECT_FALSE(judge.Alive("queued@nobody"));
}

// The bug, at the catalog level: two hosts share one catalog (here one SQLite file, standing in
// for the shared PostgreSQL one). A pending snapshot taken by the other host survives this
// host's start while the other host's heartbeat is fresh, and is ended once it expired.
class SharedCatalogRecoveryTest : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    data_ = dir_ + "/d";
    ASSERT_TRUE(DataDir::Init(data_, {}));
  }
  // A pending snapshot run by `runner`, written straight to the shared catalog.
  std::string Pending(Catalog* cat, const std::string& runner) {
    SnapshotRecord s;
    s.snapshot_id = NewSnapshotId();
    s.volume_id = NewVolumeId();
    s.account_id = kDefaultAccountId;
    s.state = SnapshotState::kPending;
    s.progress = "10%";
    s.start_time_ms = 1;
    s.block_size = 4096;
    s.volume_size_bytes = 4096;
    s.runner = runner;
    EXPECT_TRUE(cat->InsertSnapshot(s));
    return s.snapshot_id;
  }
  SnapshotState StateAfterOpen(const std::string& id) {
    auto d = DataDir::Open(data_);
    EXPECT_TRUE(d) << d.error().ToString();
    if (!d) return SnapshotState::kPending;
    return (*d)->catalog()->GetSnapshot(id)->state;
  }
  std::string data_;
  const std::string other_ = "host-bbbbbbbbbbbbbbbbb";
};

TEST_F(SharedCatalogRecoveryTest, AnotherHostsRunnerSurvivesWhileItsHeartbeatIsFresh) {
  std::string id;
  {
    auto cat = Catalog::Open(data_ + "/catalog.db");
    ASSERT_TRUE(cat);
    ASSERT_TRUE((*cat)->UpsertHost({other_, "b", "http://b", "unix:/b", "0", 1, Clock::Real()->NowMillis()}));
    // Another machine: its own boot id, and a pid that is not a process here.
    id = Pending(cat->get(), "pid:999999999@boot-of-b@" + other_);
  }
  EXPECT_EQ(StateAfterOpen(id), SnapshotState::kPending);
  EXPECT_EQ(StateAfterOpen(id), SnapshotState::kPending);  // and at the next start too
}

TEST_F(SharedCatalogRecoveryTest, AnotherHostsRunnerIsEndedOnceItsHeartbeatExpired) {
  std::string id, old_form;
  {
    auto cat = Catalog::Open(data_ + "/catalog.db");
    ASSERT_TRUE(cat);
    const int64_t expired = Clock::Real()->NowMillis() - kDefaultHostTimeoutMs - 5'000;
    ASSERT_TRUE((*cat)->UpsertHost({other_, "b", "http://b", "unix:/b", "0", 1, expired}));
    id = Pending(cat->get(), "pid:999999999@boot-of-b@" + other_);
    old_form = Pending(cat->get(), "pid:999999999@boot-of-b");  // written before host ids
  }
  auto d = DataDir::Open(data_);
  ASSERT_TRUE(d) << d.error().ToString();
  for (const std::string& s : {id, old_form}) {
    auto rec = (*d)->catalog()->GetSnapshot(s);
    ASSERT_TRUE(rec);
    EXPECT_EQ(rec->state, SnapshotState::kError) << s;
    EXPECT_NE(rec->state_message.find("interrupted"), std::string::npos) << rec->state_message;
  }
}

}  // namespace
}  // namespace snapvol
