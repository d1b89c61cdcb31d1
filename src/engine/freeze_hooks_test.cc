// Freeze hooks around SnapshotJobs::Start's cut: order, the failure policies, and the
// post-command's "always once the pre-command was tried", with fake commands and a fake
// source provider that records when writes were held and each volume cut.
#include "engine/freeze_hooks.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <thread>

#include "catalog/catalog_test_db.h"
#include "core/file_util.h"
#include "core/ids.h"
#include "engine/snapshot_jobs.h"
#include "store/memory_store.h"
#include "volume/cut_sources.h"

namespace snapvol {
namespace {

// What happened, in order, from any thread.
class Trail {
 public:
  void Add(std::string what) {
    std::lock_guard lock(mu_);
    events_.push_back(std::move(what));
  }
  std::vector<std::string> events() const {
    std::lock_guard lock(mu_);
    return events_;
  }
  size_t Count(const std::string& what) const {
    auto e = events();
    return static_cast<size_t>(std::count(e.begin(), e.end(), what));
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> events_;
};

// The file as a cut: point in time, as a managed volume's copy-on-write view is.
class CutView : public BlockSource {
 public:
  explicit CutView(std::unique_ptr<FileSource> file) : file_(std::move(file)) {}
  uint64_t size() const override { return file_->size(); }
  Status ReadAt(uint64_t offset, std::span<uint8_t> out) override { return file_->ReadAt(offset, out); }
  bool point_in_time() const override { return true; }
  std::string Describe() const override { return file_->Describe(); }

 private:
  std::unique_ptr<FileSource> file_;
};

// A provider that cuts by opening the file (as a managed volume's copy-on-write view would),
// recording hold, cut and release; fail_prepare makes the cut fail.
class RecordingProvider : public SourceProvider {
 public:
  explicit RecordingProvider(Trail* trail) : trail_(trail) {}
  Result<std::shared_ptr<void>> HoldWrites(const std::vector<VolumeRecord>&) override {
    trail_->Add("hold");
    return std::shared_ptr<void>(nullptr, [t = trail_](void*) { t->Add("release"); });
  }
  Result<std::optional<PreparedSource>> Prepare(const VolumeRecord& v, const std::string&, const std::string&) override {
    if (fail_prepare) return Internal("the cut failed");
    trail_->Add("cut " + v.volume_id);
    ASSIGN_OR_RETURN(auto src, FileSource::Open(v.path));
    PreparedSource p;
    p.source = std::make_shared<CutView>(std::move(src));
    return std::optional<PreparedSource>(std::move(p));
  }
  bool fail_prepare = false;

 private:
  Trail* trail_;
};

class FreezeHooksTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir() + "/hooks-" + NewVolumeId();
    ASSERT_TRUE(MakeDirs(dir_));
    catalog_db_ = std::make_unique<catalog_testing::TestCatalogDb>(dir_);
    catalog_ = std::move(*Catalog::Open(catalog_db_->location()));
    RepositoryOptions ro;
    ro.block_size = 64 * 1024;
    repo_ = std::move(*Repository::Create(std::make_unique<MemoryStore>(), ro));
    instance_ = NewInstanceId();
    ASSERT_TRUE(catalog_->InsertInstance({instance_, kDefaultAccountId, "db", 1, {}}));
    a_ = MakeVolume('a');
    b_ = MakeVolume('b');
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  VolumeRecord MakeVolume(char fill, const std::string& host_id = "") {
    VolumeRecord v;
    v.volume_id = NewVolumeId();
    v.account_id = kDefaultAccountId;
    v.name = "v";
    v.path = dir_ + "/" + v.volume_id + ".img";
    EXPECT_TRUE(WriteFileAtomic(v.path, AsBytes(std::string(200000, fill))));
    v.size_bytes = 200000;
    v.block_size = 64 * 1024;
    v.created_ms = 1;
    v.instance_id = instance_;
    v.device = fill == 'a' ? "/dev/xvda" : "/dev/xvdb";
    v.host_id = host_id;
    EXPECT_TRUE(catalog_->InsertVolume(v));
    return v;
  }

  void SetHooks(const std::string& on_pre_failure, const std::string& pre = "freeze-it",
                const std::string& post = "thaw-it") {
    ASSERT_TRUE(catalog_->SetInstanceHooks({instance_, pre, post, 2, on_pre_failure, 1}));
  }

  // Fake commands: `freeze-it` and `thaw-it` record themselves (with what their environment
  // says) and answer pre_result; nothing runs for real.
  HookCommandRunner Fake(CommandResult pre_result = {false, 0, 0, ""}) {
    return [this, pre_result](const std::vector<std::string>& argv, const std::vector<std::string>& env,
                              int64_t timeout_ms) -> Result<CommandResult> {
      EXPECT_EQ(timeout_ms, 2000);
      std::string stage, pre;
      for (const auto& e : env) {
        if (e.starts_with("SNAPVOL_HOOK_STAGE=")) stage = e.substr(19);
        if (e.starts_with("SNAPVOL_PRE_RESULT=")) pre = e.substr(19);
        if (e.starts_with("SNAPVOL_INSTANCE_ID=")) EXPECT_EQ(e.substr(20), instance_);
        if (e.starts_with("SNAPVOL_VOLUME_IDS=")) seen_volume_ids_ = e.substr(19);
      }
      // How many snapshots had ended when the thaw came: counted before the thaw is recorded
      // in the trail, which is what tests wait for before they read it.
      if (stage == "post") {
        auto all = *catalog_->ListSnapshots({});
        settled_at_post_ = std::count_if(all.begin(), all.end(),
                                         [](const SnapshotRecord& s) { return s.state != SnapshotState::kPending; });
      }
      trail_.Add(argv[0] + (stage == "post" ? " " + pre : ""));
      return stage == "pre" ? pre_result : CommandResult{false, 0, 0, ""};
    };
  }

  std::vector<SnapshotRecord> WaitSettled() {
    for (int i = 0; i < 500; ++i) {
      if (catalog_->ListSnapshots({.state = SnapshotState::kPending})->empty()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return *catalog_->ListSnapshots({});
  }

  std::vector<SnapshotJobRequest> Both() { return {{a_, "", {}, 0, false}, {b_, "", {}, 0, false}}; }

  std::string dir_, instance_;
  std::unique_ptr<catalog_testing::TestCatalogDb> catalog_db_;  // outlives catalog_
  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<Repository> repo_;
  ThreadPool pool_{2};
  VolumeRecord a_, b_;
  Trail trail_;
  std::string seen_volume_ids_;
  std::atomic<int64_t> settled_at_post_{-1};
};

std::string TagOf(const SnapshotRecord& s, const std::string& key) {
  for (const auto& t : s.tags)
    if (t.key == key) return t.value;
  return "<none>";
}

TEST_F(FreezeHooksTest, PreThenTheCutOfEveryVolumeThenPost) {
  SetHooks("fail");
  RecordingProvider provider(&trail_);
  SnapshotJobs jobs(repo_.get(), catalog_.get(), &pool_, "test-runner", 2);
  jobs.SetSourceProvider(&provider);
  jobs.SetHookRunner(Fake(), nullptr);
  auto started = jobs.Start(Both(), instance_);
  ASSERT_TRUE(started) << started.error().ToString();
  // Every volume was cut point in time: the thaw does not wait for the jobs.
  EXPECT_EQ(trail_.events(), (std::vector<std::string>{"freeze-it", "hold", "cut " + a_.volume_id,
                                                       "cut " + b_.volume_id, "release", "thaw-it ok"}));
  EXPECT_EQ(seen_volume_ids_, a_.volume_id + " " + b_.volume_id);
  for (const auto& s : WaitSettled()) {
    EXPECT_EQ(s.state, SnapshotState::kCompleted) << s.state_message;
    EXPECT_EQ(TagOf(s, kConsistencyTag), "application-consistent; point-in-time");
  }
}

// No cut across hosts is proven (docs/multi-host.md part 3): an instance whose volumes live on
// two hosts is refused before its hooks run or anything is written.
TEST_F(FreezeHooksTest, AnInstanceWhoseVolumesLiveOnTwoHostsIsNotCut) {
  SetHooks("fail");
  ASSERT_TRUE(catalog_->UpsertHost({"host-aaaaaaaaaaaaaaaaa", "alpha", "", "", "0", 1, 1}));
  const VolumeRecord on_a = MakeVolume('c', "host-aaaaaaaaaaaaaaaaa");
  const VolumeRecord on_b = MakeVolume('d', "host-bbbbbbbbbbbbbbbbb");  // no row: named by its id
  RecordingProvider provider(&trail_);
  SnapshotJobs jobs(repo_.get(), catalog_.get(), &pool_, "test-runner", 2);
  jobs.SetSourceProvider(&provider);
  jobs.SetHookRunner(Fake(), nullptr);
  auto refused = jobs.Start({{on_a, "", {}, 0, false}, {on_b, "", {}, 0, false}}, instance_);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), ErrorCode::kInvalidArgument);
  const std::string m = refused.error().message();
  EXPECT_NE(m.find("alpha (host-aaaaaaaaaaaaaaaaa): " + on_a.volume_id), std::string::npos) << m;
  EXPECT_NE(m.find("host-bbbbbbbbbbbbbbbbb: " + on_b.volume_id), std::string::npos) << m;
  EXPECT_NE(m.find(instance_), std::string::npos) << m;
  EXPECT_TRUE(trail_.events().empty()) << "frozen or cut before the refusal";
  EXPECT_TRUE(catalog_->ListSnapshots({})->empty());
  EXPECT_TRUE(CheckCutOnOneHost(*catalog_, {{on_a, "", {}, 0, false}, {on_b, "", {}, 0, false}}, instance_)
                  .error().message() == m);
  // One host's volumes are cut together as before; a volume alone is no cross-host cut.
  EXPECT_TRUE(CheckCutOnOneHost(*catalog_, {{on_a, "", {}, 0, false}, {on_a, "", {}, 0, false}}, instance_));
  ASSERT_TRUE(jobs.Start({{on_b, "", {}, 0, false}}));
  EXPECT_EQ(WaitSettled().size(), 1u);
}

// An instance cut asked of host A for volumes host B holds (docs/multi-host.md part 3): A
// runs no hook and cuts nothing; it queues one job with both snapshots for B, and B's claim
// runs the hooks around the cut of both, as a local request would.
TEST_F(FreezeHooksTest, ARoutedInstanceCutRunsItsHooksOnTheVolumesHost) {
  constexpr char kA[] = "host-aaaaaaaaaaaaaaaaa";
  constexpr char kB[] = "host-bbbbbbbbbbbbbbbbb";
  SetHooks("fail");
  catalog_->SetLocalHost(kA);
  auto opened = Catalog::Open(catalog_db_->location());
  ASSERT_TRUE(opened) << opened.error().ToString();
  std::unique_ptr<Catalog> on_b_catalog = std::move(*opened);
  on_b_catalog->SetLocalHost(kB);
  const VolumeRecord c = MakeVolume('c', kB), d = MakeVolume('d', kB);
  Trail nothing_on_a;
  RecordingProvider provider_a(&nothing_on_a), provider_b(&trail_);
  SnapshotJobs on_a(repo_.get(), catalog_.get(), &pool_, std::string("pid:1@boot@") + kA, 2);
  on_a.SetSourceProvider(&provider_a);
  on_a.SetHookRunner(Fake(), nullptr);
  auto started = on_a.Start({{c, "", {}, 0, false}, {d, "", {}, 0, false}}, instance_);
  ASSERT_TRUE(started) << started.error().ToString();
  ASSERT_EQ(started->size(), 2u);
  EXPECT_TRUE(trail_.events().empty()) << "host A froze the instance";
  EXPECT_TRUE(nothing_on_a.events().empty()) << "host A cut a volume it does not hold";
  auto queue = catalog_->ListSnapshotJobs();
  ASSERT_TRUE(queue);
  ASSERT_EQ(queue->size(), 1u);
  EXPECT_EQ((*queue)[0].host_id, kB);
  EXPECT_EQ((*queue)[0].instance_id, instance_);
  EXPECT_EQ((*queue)[0].snapshot_ids,
            (std::vector<std::string>{(*started)[0].snapshot_id, (*started)[1].snapshot_id}));

  SnapshotJobs on_b(repo_.get(), on_b_catalog.get(), &pool_, std::string("pid:2@boot@") + kB, 2);
  on_b.SetSourceProvider(&provider_b);
  on_b.SetHookRunner(Fake(), nullptr);
  auto claimed = on_b_catalog->ClaimSnapshotJob(kB, on_b.runner_id(), 5);
  ASSERT_TRUE(claimed && claimed->has_value());
  ASSERT_TRUE(on_b.RunQueued(**claimed));
  EXPECT_EQ(trail_.events(), (std::vector<std::string>{"freeze-it", "hold", "cut " + c.volume_id,
                                                       "cut " + d.volume_id, "release", "thaw-it ok"}));
  EXPECT_EQ(seen_volume_ids_, c.volume_id + " " + d.volume_id);
  for (const auto& s : WaitSettled()) {
    EXPECT_EQ(s.state, SnapshotState::kCompleted) << s.state_message;
    EXPECT_EQ(TagOf(s, kConsistencyTag), "application-consistent; point-in-time");
  }
  EXPECT_TRUE(catalog_->ListSnapshotJobs()->empty());
}

// B's pre-command fails with hooks that say "fail": the queued snapshots end `error` with the
// reason, no data is taken, and the job leaves the queue.
TEST_F(FreezeHooksTest, ARoutedCutWhosePreCommandFailsEndsItsSnapshotsError) {
  constexpr char kA[] = "host-aaaaaaaaaaaaaaaaa";
  constexpr char kB[] = "host-bbbbbbbbbbbbbbbbb";
  SetHooks("fail");
  catalog_->SetLocalHost(kA);
  auto opened = Catalog::Open(catalog_db_->location());
  ASSERT_TRUE(opened) << opened.error().ToString();
  std::unique_ptr<Catalog> on_b_catalog = std::move(*opened);
  on_b_catalog->SetLocalHost(kB);
  const VolumeRecord c = MakeVolume('c', kB);
  SnapshotJobs on_a(repo_.get(), catalog_.get(), &pool_, std::string("pid:1@boot@") + kA, 1);
  auto started = on_a.Start({{c, "", {}, 0, false}}, instance_);
  ASSERT_TRUE(started) << started.error().ToString();
  RecordingProvider provider_b(&trail_);
  SnapshotJobs on_b(repo_.get(), on_b_catalog.get(), &pool_, std::string("pid:2@boot@") + kB, 1);
  on_b.SetSourceProvider(&provider_b);
  on_b.SetHookRunner(Fake({false, 3, 0, "cannot freeze"}), nullptr);
  auto claimed = on_b_catalog->ClaimSnapshotJob(kB, on_b.runner_id(), 5);
  ASSERT_TRUE(claimed && claimed->has_value());
  ASSERT_TRUE(on_b.RunQueued(**claimed));
  auto s = catalog_->GetSnapshot((*started)[0].snapshot_id);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->state, SnapshotState::kError);
  EXPECT_NE(s->state_message.find("no data was taken"), std::string::npos) << s->state_message;
  EXPECT_FALSE(repo_->GetManifest(s->snapshot_id));
  for (const auto& e : trail_.events()) EXPECT_FALSE(e.starts_with("cut ")) << "cut after a failed pre-command";
  EXPECT_TRUE(catalog_->ListSnapshotJobs()->empty());
}

TEST_F(FreezeHooksTest, AVolumeReadLiveStaysFrozenUntilItsSnapshotEnds) {
  SetHooks("fail");
  SnapshotJobs jobs(repo_.get(), catalog_.get(), &pool_, "test-runner", 1);  // no provider: files read live
  jobs.SetHookRunner(Fake(), nullptr);
  ASSERT_TRUE(jobs.Start(Both(), instance_));
  auto all = WaitSettled();
  for (int i = 0; i < 500 && trail_.Count("thaw-it ok") == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(trail_.events(), (std::vector<std::string>{"freeze-it", "thaw-it ok"}));
  EXPECT_EQ(settled_at_post_, 2) << "thawed before both volumes had been read";
  for (const auto& s : all) EXPECT_EQ(s.state, SnapshotState::kCompleted) << s.state_message;
}

TEST_F(FreezeHooksTest, AFailedPreCommandFailsTheSnapshotsWithoutTakingDataAndStillThaws) {
  SetHooks("fail");
  RecordingProvider provider(&trail_);
  SnapshotJobs jobs(repo_.get(), catalog_.get(), &pool_, "test-runner", 2);
  jobs.SetSourceProvider(&provider);
  jobs.SetHookRunner(Fake({false, 3, 0, "no guest agent\n"}), nullptr);
  auto started = jobs.Start(Both(), instance_);
  ASSERT_TRUE(started) << started.error().ToString();
  ASSERT_EQ(started->size(), 2u);
  EXPECT_EQ(trail_.events(), (std::vector<std::string>{"freeze-it", "thaw-it failed"}));  // no hold, no cut
  auto all = *catalog_->ListSnapshots({});
  ASSERT_EQ(all.size(), 2u);
  for (const auto& s : all) {
    EXPECT_EQ(s.state, SnapshotState::kError);
    EXPECT_EQ(s.state_message, "pre-command exited 3: no guest agent; no data was taken");
    EXPECT_FALSE(repo_->GetManifest(s.snapshot_id));
  }
  EXPECT_EQ((*started)[0].state, SnapshotState::kError);
}

// Snapshots the quota would refuse freeze nothing: the pre-command does not run, nothing is
// cut, nothing is recorded; with room for both, the same call freezes and takes them.
TEST_F(FreezeHooksTest, OverTheSnapshotQuotaNothingIsFrozen) {
  SetHooks("fail");
  QuotaSetting one{QuotaSetting::Mode::kLimit, 1};
  ASSERT_TRUE(catalog_->SetQuotas(kDefaultAccountId, {{QuotaKind::kSnapshots, one}}));
  RecordingProvider provider(&trail_);
  SnapshotJobs jobs(repo_.get(), catalog_.get(), &pool_, "test-runner", 2);
  jobs.SetSourceProvider(&provider);
  jobs.SetHookRunner(Fake(), nullptr);
  auto refused = jobs.Start(Both(), instance_);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), ErrorCode::kQuotaExceeded) << refused.error().ToString();
  EXPECT_NE(refused.error().message().find("limit is 1"), std::string::npos) << refused.error().ToString();
  EXPECT_TRUE(trail_.events().empty()) << trail_.events().front();
  EXPECT_TRUE(catalog_->ListSnapshots({})->empty());

  QuotaSetting two{QuotaSetting::Mode::kLimit, 2};
  ASSERT_TRUE(catalog_->SetQuotas(kDefaultAccountId, {{QuotaKind::kSnapshots, two}}));
  ASSERT_TRUE(jobs.Start(Both(), instance_));
  EXPECT_EQ(trail_.events().front(), "freeze-it");
  EXPECT_EQ(WaitSettled().size(), 2u);
}

TEST_F(FreezeHooksTest, ATimedOutPreCommandMakesThemCrashConsistentWhenTheHooksSaySo) {
  SetHooks("crash-consistent");
  RecordingProvider provider(&trail_);
  SnapshotJobs jobs(repo_.get(), catalog_.get(), &pool_, "test-runner", 2);
  jobs.SetSourceProvider(&provider);
  jobs.SetHookRunner(Fake({true, -1, 9, "flushing"}), nullptr);
  ASSERT_TRUE(jobs.Start(Both(), instance_));
  EXPECT_EQ(trail_.events(), (std::vector<std::string>{"freeze-it", "hold", "cut " + a_.volume_id,
                                                       "cut " + b_.volume_id, "release", "thaw-it failed"}));
  for (const auto& s : WaitSettled()) {
    EXPECT_EQ(s.state, SnapshotState::kCompleted) << s.state_message;
    EXPECT_EQ(TagOf(s, kConsistencyTag),
              "crash-consistent (pre-command did not finish within 2 s (killed): flushing); point-in-time");
  }
}

TEST_F(FreezeHooksTest, PostRunsWhenTheCutFails) {
  SetHooks("fail");
  RecordingProvider provider(&trail_);
  provider.fail_prepare = true;
  SnapshotJobs jobs(repo_.get(), catalog_.get(), &pool_, "test-runner", 2);
  jobs.SetSourceProvider(&provider);
  jobs.SetHookRunner(Fake(), nullptr);
  auto started = jobs.Start(Both(), instance_);
  ASSERT_FALSE(started);
  EXPECT_EQ(trail_.events(), (std::vector<std::string>{"freeze-it", "hold", "release", "thaw-it ok"}));
}

TEST_F(FreezeHooksTest, PostRunsAfterASnapshotThatFails) {
  SetHooks("fail");
  ASSERT_EQ(::unlink(b_.path.c_str()), 0);  // its job cannot read it
  SnapshotJobs jobs(repo_.get(), catalog_.get(), &pool_, "test-runner", 1);
  jobs.SetHookRunner(Fake(), nullptr);
  ASSERT_TRUE(jobs.Start(Both(), instance_));
  WaitSettled();
  for (int i = 0; i < 500 && trail_.Count("thaw-it ok") == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(trail_.events(), (std::vector<std::string>{"freeze-it", "thaw-it ok"}));
  EXPECT_EQ(catalog_->ListSnapshots({.volume_id = b_.volume_id})->at(0).state, SnapshotState::kError);
}

TEST_F(FreezeHooksTest, PostRunsWhenTheServiceIsStopping) {
  SetHooks("fail");
  SnapshotJobs jobs(repo_.get(), catalog_.get(), &pool_, "test-runner", 1);
  jobs.SetHookRunner(Fake(), nullptr);
  jobs.Shutdown();
  EXPECT_FALSE(jobs.Start(Both(), instance_));  // refused before the pre-command
  EXPECT_TRUE(trail_.events().empty());
}

TEST_F(FreezeHooksTest, NoHooksOrNoInstanceRunNothingAndClaimNothing) {
  SnapshotJobs jobs(repo_.get(), catalog_.get(), &pool_, "test-runner", 2);
  jobs.SetHookRunner(Fake(), nullptr);
  ASSERT_TRUE(jobs.Start(Both(), instance_));  // the instance has no hooks
  SetHooks("fail");
  ASSERT_TRUE(jobs.Start({{a_, "", {}, 0, false}}));  // one volume, no instance named
  for (const auto& s : WaitSettled()) EXPECT_EQ(TagOf(s, kConsistencyTag), kConsistencyReadWhileRunning);
  EXPECT_TRUE(trail_.events().empty());
}

TEST_F(FreezeHooksTest, PostOnlyHooksThawWithoutClaimingConsistency) {
  SetHooks("fail", "", "thaw-it");
  SnapshotJobs jobs(repo_.get(), catalog_.get(), &pool_, "test-runner", 2);
  jobs.SetHookRunner(Fake(), nullptr);
  ASSERT_TRUE(jobs.Start(Both(), instance_));
  for (const auto& s : WaitSettled()) EXPECT_EQ(TagOf(s, kConsistencyTag), kConsistencyReadWhileRunning);
  for (int i = 0; i < 500 && trail_.Count("thaw-it none") == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(trail_.events(), (std::vector<std::string>{"thaw-it none"}));
}

// The real runner: no shell unless asked for, a clean environment, and every run reported.
TEST(FreezeSession, RealCommandsGetTheirEnvironmentAndAreReported) {
  const std::string out = testing::TempDir() + "/hook-env-" + NewVolumeId();
  InstanceHooksRecord h{"i-0123456789abcdef0", "sh -c 'echo \"$SNAPVOL_HOOK_STAGE $SNAPVOL_INSTANCE_ID $SNAPVOL_VOLUME_IDS $HOME\" >> " + out + "'",
                        "sh -c 'echo \"$SNAPVOL_HOOK_STAGE $SNAPVOL_PRE_RESULT $SNAPVOL_SNAPSHOT_IDS\" >> " + out + "; echo thawed'",
                        5, "fail", 1};
  std::vector<HookRun> runs;
  {
    FreezeSession s(h, {"vol-1", "vol-2"}, {"snap-1", "snap-2"}, RealHookCommandRunner(),
                    [&](const HookRun& r) { runs.push_back(r); });
    EXPECT_TRUE(s.Freeze());
    EXPECT_EQ(s.ConsistencyNote(), "application-consistent");
  }  // thaws
  auto written = *ReadWholeFile(out);
  EXPECT_EQ(std::string(written.begin(), written.end()), "pre i-0123456789abcdef0 vol-1 vol-2 \npost ok snap-1 snap-2\n");
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[1].stage, "post");
  EXPECT_TRUE(runs[1].ok);
  EXPECT_EQ(runs[1].outcome, "exited 0: thawed");
  EXPECT_EQ(runs[1].output, "thawed\n");
  ::unlink(out.c_str());

  h.pre_command = "/nonexistent/freeze";
  FreezeSession missing(h, {"vol-1"}, {"snap-1"}, RealHookCommandRunner(), nullptr);
  EXPECT_FALSE(missing.Freeze());
  EXPECT_TRUE(missing.fails_snapshots());
  EXPECT_NE(missing.failure().find("pre-command could not be run"), std::string::npos) << missing.failure();
}

}  // namespace
}  // namespace snapvol
