// Tests of `snapvol doctor`'s thresholds and of its findings from catalog runs (a fresh catalog
// per test); the data-dir checks are driven end to end by tests/cli/test_doctor.py.
#include "cli/doctor.h"

#include <gtest/gtest.h>

#include <sstream>

#include "catalog/catalog_test_util.h"
#include "core/ids.h"
#include "nlohmann/json.hpp"

namespace snapvol {
namespace {

constexpr int64_t kDay = 86400 * 1000;

TEST(DoctorThresholds, ClockSkew) {
  EXPECT_EQ(ClockSkewFinding(0, "http://s3").status, DoctorStatus::kOk);
  EXPECT_EQ(ClockSkewFinding(60 * 1000, "http://s3").status, DoctorStatus::kOk);
  EXPECT_EQ(ClockSkewFinding(60 * 1000 + 1, "http://s3").status, DoctorStatus::kWarn);
  EXPECT_EQ(ClockSkewFinding(-90 * 1000, "http://s3").status, DoctorStatus::kWarn);
  EXPECT_EQ(ClockSkewFinding(5 * 60 * 1000, "http://s3").status, DoctorStatus::kWarn);
  auto fail = ClockSkewFinding(-(5 * 60 * 1000 + 1), "http://s3");
  EXPECT_EQ(fail.status, DoctorStatus::kFail);
  EXPECT_NE(fail.what.find("300 s ahead of http://s3"), std::string::npos) << fail.what;
  EXPECT_NE(fail.how_to_fix.find("NTP"), std::string::npos);
}

TEST(DoctorThresholds, FreeSpace) {
  EXPECT_EQ(FreeSpaceFinding("/d", 100, 1000).status, DoctorStatus::kOk);  // exactly 10%
  EXPECT_EQ(FreeSpaceFinding("/d", 99, 1000).status, DoctorStatus::kWarn);
  EXPECT_EQ(FreeSpaceFinding("/d", 20, 1000).status, DoctorStatus::kWarn);  // exactly 2%
  auto fail = FreeSpaceFinding("/d", 19, 1000);
  EXPECT_EQ(fail.status, DoctorStatus::kFail);
  EXPECT_NE(fail.what.find("19 bytes"), std::string::npos) << fail.what;
  EXPECT_EQ(FreeSpaceFinding("/d", 0, 0).status, DoctorStatus::kFail);  // nothing known to be free
}

TEST(DoctorThresholds, UsageBacklog) {
  EXPECT_EQ(UsageBacklogFinding(0).status, DoctorStatus::kOk);
  EXPECT_EQ(UsageBacklogFinding(kDoctorUsageBacklogWarn).status, DoctorStatus::kOk);
  EXPECT_EQ(UsageBacklogFinding(kDoctorUsageBacklogWarn + 1).status, DoctorStatus::kWarn);
}

TEST(DoctorReport, ExitCodeAndFormats) {
  std::vector<DoctorFinding> f = {{"a", DoctorStatus::kOk, "fine", ""}, {"b", DoctorStatus::kWarn, "hmm", "do x"}};
  EXPECT_EQ(DoctorExitCode(f), 0);
  std::ostringstream text;
  PrintDoctorReport(f, false, text);
  EXPECT_EQ(text.str(), "OK   a: fine\nWARN b: hmm\n       fix: do x\n2 checks: 0 failed, 1 warnings\n");
  f.push_back({"c", DoctorStatus::kFail, "bad", "do y"});
  EXPECT_EQ(DoctorExitCode(f), 1);
  std::ostringstream js;
  PrintDoctorReport(f, true, js);
  auto j = nlohmann::json::parse(js.str());
  EXPECT_FALSE(j["Ok"].get<bool>());
  ASSERT_EQ(j["Findings"].size(), 3u);
  EXPECT_EQ(j["Findings"][2]["Status"], "fail");
  EXPECT_EQ(j["Findings"][2]["HowToFix"], "do y");
}

class DoctorCatalogTest : public testing_util::FreshCatalogTest {
 protected:
  // The default account was created when the catalog was: "now" is days after that.
  int64_t Since() { return cat_->ListAccounts().value().front().created_ms; }

  const DoctorFinding& Find(const std::vector<DoctorFinding>& fs, const std::string& check) {
    for (const auto& f : fs)
      if (f.check == check) return f;
    ADD_FAILURE() << "no finding " << check;
    return fs.front();
  }

  void AddRun(const std::string& job, const std::string& state, int64_t finished_ms, const std::string& message = "") {
    MaintenanceRunRecord r;
    r.job = job;
    r.trigger = "manual";
    r.scheduled_ms = r.started_ms = finished_ms - 1000;
    r.finished_ms = finished_ms;
    r.state = state;
    r.message = message;
    ASSERT_TRUE(cat_->InsertMaintenanceRun(r));
  }
};

TEST_F(DoctorCatalogTest, YoungServiceWithoutRunsIsOk) {
  auto fs = MaintenanceFindings(cat_.get(), Since() + kDay);
  EXPECT_EQ(Find(fs, "gc runs").status, DoctorStatus::kOk);
  EXPECT_EQ(Find(fs, "verify runs").status, DoctorStatus::kOk);
  EXPECT_EQ(Find(fs, "damaged snapshots").status, DoctorStatus::kOk);
}

TEST_F(DoctorCatalogTest, OldServiceWithoutRunsWarns) {
  auto fs = MaintenanceFindings(cat_.get(), Since() + 3 * kDay);
  const auto& gc = Find(fs, "gc runs");
  EXPECT_EQ(gc.status, DoctorStatus::kWarn);
  EXPECT_NE(gc.how_to_fix.find("maintenance enabled"), std::string::npos) << gc.how_to_fix;
  EXPECT_EQ(DoctorExitCode(fs), 0);
}

TEST_F(DoctorCatalogTest, FailedAndStaleRuns) {
  const int64_t now = Since() + 10 * kDay;
  AddRun("gc", "succeeded", now - 3 * kDay);
  AddRun("gc", "failed", now - kDay, "store unreachable");
  AddRun("verify", "succeeded", now - 3 * kDay);  // older than 2 days
  AddRun("verify", "queued", 0);                  // not finished: does not count
  auto fs = MaintenanceFindings(cat_.get(), now);
  const auto& gc = Find(fs, "gc runs");
  EXPECT_EQ(gc.status, DoctorStatus::kWarn);
  EXPECT_NE(gc.what.find("failed: store unreachable"), std::string::npos) << gc.what;
  const auto& verify = Find(fs, "verify runs");
  EXPECT_EQ(verify.status, DoctorStatus::kWarn);
  EXPECT_NE(verify.what.find("last 2 days"), std::string::npos) << verify.what;
  AddRun("gc", "succeeded", now - 1000);
  AddRun("verify", "succeeded", now - 1000);
  fs = MaintenanceFindings(cat_.get(), now);
  EXPECT_EQ(Find(fs, "gc runs").status, DoctorStatus::kOk);
  EXPECT_EQ(Find(fs, "verify runs").status, DoctorStatus::kOk);
}

TEST_F(DoctorCatalogTest, DamagedSnapshotFailsNamingIt) {
  VolumeRecord v;
  v.volume_id = NewVolumeId();
  v.account_id = kDefaultAccountId;
  v.path = "/dev/null";
  v.size_bytes = 1 << 20;
  v.block_size = 512 * 1024;
  v.created_ms = Since();
  ASSERT_TRUE(cat_->InsertVolume(v));
  SnapshotRecord s;
  s.snapshot_id = NewSnapshotId();
  s.volume_id = v.volume_id;
  s.account_id = kDefaultAccountId;
  s.state = SnapshotState::kCompleted;
  s.progress = "100%";
  s.start_time_ms = s.completed_time_ms = Since();
  s.volume_size_bytes = v.size_bytes;
  s.block_size = v.block_size;
  ASSERT_TRUE(cat_->InsertSnapshot(s));
  ASSERT_TRUE(cat_->RecordSnapshotChecked(s.snapshot_id, Since() + 1, true));
  EXPECT_EQ(Find(MaintenanceFindings(cat_.get(), Since() + kDay), "damaged snapshots").status, DoctorStatus::kOk);
  ASSERT_TRUE(cat_->MarkSnapshotDamaged(s.snapshot_id, Since() + 2, "chunk ab12 checksum mismatch", "damaged: chunk ab12"));
  auto fs = MaintenanceFindings(cat_.get(), Since() + kDay);
  const auto& d = Find(fs, "damaged snapshots");
  EXPECT_EQ(d.status, DoctorStatus::kFail);
  EXPECT_NE(d.what.find(s.snapshot_id), std::string::npos) << d.what;
  EXPECT_NE(d.what.find("checksum mismatch"), std::string::npos) << d.what;
  EXPECT_EQ(DoctorExitCode(fs), 1);
}

TEST_F(DoctorCatalogTest, LifecycleRunsWarnOnFailedOrPartialLatestRun) {
  EXPECT_EQ(LifecycleRunFindings(cat_.get()).at(0).status, DoctorStatus::kOk);
  LifecyclePolicyRecord p;
  p.policy_id = "policy-0123456789abcdef0";
  p.account_id = kDefaultAccountId;
  p.description = "nightly";
  p.details = "{}";
  p.created_ms = p.modified_ms = Since();
  ASSERT_TRUE(cat_->InsertLifecyclePolicy(p));
  LifecycleRunRecord r;
  r.policy_id = p.policy_id;
  r.schedule_name = "daily";
  r.scheduled_ms = r.started_ms = Since() + 1000;
  r.finished_ms = Since() + 2000;
  r.state = "succeeded";
  ASSERT_TRUE(cat_->InsertLifecycleRun(r));
  auto fs = LifecycleRunFindings(cat_.get());
  ASSERT_EQ(fs.size(), 1u);
  EXPECT_EQ(fs[0].status, DoctorStatus::kOk);
  r.scheduled_ms = r.started_ms = Since() + kDay;
  r.finished_ms = Since() + kDay + 1000;
  r.state = "partial";
  r.created = 1;
  r.failed = 1;
  r.message = "vol-x: quota exceeded";
  ASSERT_TRUE(cat_->InsertLifecycleRun(r));
  fs = LifecycleRunFindings(cat_.get());
  ASSERT_EQ(fs.size(), 1u);
  EXPECT_EQ(fs[0].status, DoctorStatus::kWarn);
  EXPECT_NE(fs[0].what.find(p.policy_id), std::string::npos) << fs[0].what;
  EXPECT_NE(fs[0].what.find("quota exceeded"), std::string::npos) << fs[0].what;
  p.state = "DISABLED";
  ASSERT_TRUE(cat_->UpdateLifecyclePolicy(p));
  EXPECT_EQ(LifecycleRunFindings(cat_.get()).at(0).status, DoctorStatus::kOk);
}

// A lease whose holder is not an up host warns, naming the lease and the host's state; a
// released lease, or one held by an up host, is fine.
TEST_F(DoctorCatalogTest, ClusterLeaseOfAHostThatIsNotUpWarns) {
  const int64_t now = Since() + kDay;
  EXPECT_EQ(Find(ClusterLeaseFindings(cat_.get(), now), "cluster leases").status, DoctorStatus::kOk);
  const std::string up = "host-aaaaaaaaaaaaaaaaa", gone = "host-bbbbbbbbbbbbbbbbb";
  ASSERT_TRUE(cat_->UpsertHost({up, "alpha", "http://a", "unix:/a", "1", now - 60'000, now - 1'000}));
  ASSERT_TRUE(cat_->UpsertHost({gone, "beta", "http://b", "unix:/b", "1", now - 60'000, now - 45'000}));
  ASSERT_TRUE(cat_->AcquireClusterLease("maintenance", up, now - 1'000, 30'000));
  auto fs = ClusterLeaseFindings(cat_.get(), now);
  ASSERT_EQ(fs.size(), 1u);
  EXPECT_EQ(fs[0].status, DoctorStatus::kOk) << fs[0].what;

  // The holder stopped heartbeating (killed) and its lease is still live: warn.
  ASSERT_TRUE(cat_->AcquireClusterLease("other", gone, now - 1'000, 30'000));
  fs = ClusterLeaseFindings(cat_.get(), now);
  ASSERT_EQ(fs.size(), 1u);
  EXPECT_EQ(fs[0].status, DoctorStatus::kWarn);
  EXPECT_NE(fs[0].what.find("lease other"), std::string::npos) << fs[0].what;
  EXPECT_NE(fs[0].what.find(gone + ", which is unreachable"), std::string::npos) << fs[0].what;
  EXPECT_EQ(DoctorExitCode(fs), 0);

  // Released by a clean stop: fine. An unregistered holder of an expired lease: warn.
  ASSERT_TRUE(cat_->ReleaseClusterLease("other", gone));
  EXPECT_EQ(ClusterLeaseFindings(cat_.get(), now)[0].status, DoctorStatus::kOk);
  ASSERT_TRUE(cat_->AcquireClusterLease("third", "host-ccccccccccccccccc", now - 60'000, 30'000));
  fs = ClusterLeaseFindings(cat_.get(), now);
  ASSERT_EQ(fs.size(), 1u);
  EXPECT_NE(fs[0].what.find("expired"), std::string::npos) << fs[0].what;
  EXPECT_NE(fs[0].what.find("not registered"), std::string::npos) << fs[0].what;
}

// A volume in error warns with why; one deleting on a host that is not up warns naming it; one
// deleting on an up host, or without a host, is under way and fine.
TEST_F(DoctorCatalogTest, VolumesInErrorOrWaitingForAHostThatIsDownWarn) {
  const int64_t now = Since() + kDay;
  auto fs = VolumeFindings(cat_.get(), now);
  ASSERT_EQ(fs.size(), 1u);
  EXPECT_EQ(fs[0].status, DoctorStatus::kOk) << fs[0].what;
  const std::string up = "host-aaaaaaaaaaaaaaaaa", gone = "host-bbbbbbbbbbbbbbbbb";
  ASSERT_TRUE(cat_->UpsertHost({up, "alpha", "http://a", "unix:/a", "1", now - 60'000, now - 1'000}));
  ASSERT_TRUE(cat_->UpsertHost({gone, "beta", "http://b", "unix:/b", "1", now - 60'000, now - 45'000}));
  auto volume = [&](const std::string& host_id) {
    VolumeRecord v;
    v.volume_id = NewVolumeId();
    v.account_id = kDefaultAccountId;
    v.path = "/dev/vd" + v.volume_id.substr(v.volume_id.size() - 3);
    v.size_bytes = 1ULL << 30;
    v.block_size = 512 * 1024;
    v.created_ms = now - kDay;
    v.host_id = host_id;
    return v;
  };
  const VolumeRecord here = volume(up), there = volume(gone), broken = volume("");
  for (const auto& v : {here, there, broken}) ASSERT_TRUE(cat_->InsertVolume(v));
  ASSERT_TRUE(cat_->SetVolumeState(here.volume_id, "deleting", "queued@" + up));
  fs = VolumeFindings(cat_.get(), now);
  ASSERT_EQ(fs.size(), 1u);
  EXPECT_EQ(fs[0].status, DoctorStatus::kOk) << fs[0].what;
  EXPECT_NE(fs[0].what.find("3 volume(s)"), std::string::npos) << fs[0].what;

  ASSERT_TRUE(cat_->SetVolumeState(there.volume_id, "deleting", "queued@" + gone));
  ASSERT_TRUE(cat_->SetVolumeState(broken.volume_id, "error", "the restore could not start: no space"));
  fs = VolumeFindings(cat_.get(), now);
  ASSERT_EQ(fs.size(), 2u);
  EXPECT_EQ(fs[0].status, DoctorStatus::kWarn);
  EXPECT_NE(fs[0].what.find("1 volume(s) in state error, e.g. " + broken.volume_id + ": the restore could not start"),
            std::string::npos)
      << fs[0].what;
  EXPECT_EQ(fs[1].status, DoctorStatus::kWarn);
  EXPECT_NE(fs[1].what.find(there.volume_id + " (deleting) on " + gone + ", which is unreachable"), std::string::npos)
      << fs[1].what;
  EXPECT_EQ(DoctorExitCode(fs), 0);
}

TEST(DoctorDaemon, RefusesABadUrlAndFailsOnAClosedPort) {
  EXPECT_EQ(DaemonFinding("127.0.0.1:8787").status, DoctorStatus::kFail);
  // Port 1 on loopback: nothing listens there in a test environment (connect is refused).
  auto f = DaemonFinding("http://127.0.0.1:1");
  EXPECT_EQ(f.status, DoctorStatus::kFail);
  EXPECT_NE(f.what.find("/healthz"), std::string::npos) << f.what;
}

}  // namespace
}  // namespace snapvol
