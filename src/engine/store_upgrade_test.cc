// `snapvol store upgrade` below the CLI: a format-1 store with an incremental lineage, a
// deleted snapshot and chunks shared between snapshots is converted to format 2 and every
// snapshot restores byte-identical; a write failing at every point followed by a re-run gives
// the same; the upgrade is exclusive against snapshots and gc both ways; leftovers of format 1
// are ignored by format 2 and deleted by a re-run.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <set>

#include "core/ids.h"
#include "engine/engine_test_util.h"
#include "engine/snapshot_engine.h"
#include "store/fault_store.h"
#include "store/gc.h"
#include "store/memory_store.h"
#include "store/store_upgrade.h"
#include "store/verify.h"

namespace snapvol {
namespace {

constexpr uint32_t kBs = 64 * 1024;
constexpr uint64_t kPack = 1ull << 20;

using testing_util::MemoryTarget;
using testing_util::VectorSource;

// Compressible and random blocks, and some all-zero ones (holes).
std::vector<uint8_t> Volume(size_t blocks, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> v(blocks * kBs);
  for (size_t b = 0; b < blocks; ++b) {
    if (b % 7 == 6) continue;
    for (size_t i = 0; i < kBs; ++i)
      v[b * kBs + i] = (b / 2) % 2 ? static_cast<uint8_t>(rng()) : "upgrade test 0123456789\n"[(b * kBs + i) % 24];
  }
  return v;
}

void Change(std::vector<uint8_t>* v, size_t blocks_changed, uint32_t seed) {
  std::mt19937_64 rng(seed);
  const size_t blocks = v->size() / kBs;
  for (size_t n = 0; n < blocks_changed; ++n) {
    size_t b = rng() % blocks;
    for (int k = 0; k < 32; ++k) (*v)[b * kBs + rng() % kBs] = static_cast<uint8_t>(rng());
  }
}

class StoreUpgradeTest : public testing::Test {
 protected:
  // A format-1 store: volume A with three incremental snapshots (the middle one deleted),
  // volume B (a copy of A's first state plus changes: shares most chunks) with one.
  void Build(bool encrypted = false) {
    memory_ = std::make_unique<MemoryStore>();
    if (encrypted) key_ = Key256{};
    if (key_) (*key_)[0] = 7;
    RepositoryOptions opt;
    opt.block_size = kBs;
    opt.format = 1;
    opt.master_key = key_;
    auto repo = Repository::Create(std::make_unique<FaultInjectingStore>(memory_.get()), opt);
    ASSERT_TRUE(repo) << repo.error().ToString();
    repo_ = std::move(*repo);
    VectorSource a(Volume(48, 1));
    std::string parent;
    for (int i = 0; i < 3; ++i) {
      if (i) Change(&a.data(), 4, 10 + i);
      auto s = Snap(repo_.get(), &a, parent);
      ASSERT_TRUE(s) << s.error().ToString();
      parent = s->manifest.snapshot_id;
      expected_[parent] = a.data();
      if (i == 1) deleted_ = parent;
    }
    ASSERT_TRUE(repo_->DeleteManifest(deleted_));
    expected_.erase(deleted_);
    VectorSource b(Volume(48, 1));
    Change(&b.data(), 6, 99);
    auto s = Snap(repo_.get(), &b, "");
    ASSERT_TRUE(s) << s.error().ToString();
    expected_[s->manifest.snapshot_id] = b.data();
    ASSERT_GT(Count("chunks/"), 20u);
    ASSERT_GT(Count("index/"), 0u);
  }

  // Another process opening the store (sees the format config names now).
  std::unique_ptr<Repository> Open(FaultInjectingStore** fault = nullptr) {
    RepositoryOptions opt;
    opt.master_key = key_;
    auto store = std::make_unique<FaultInjectingStore>(memory_.get());
    if (fault) *fault = store.get();
    auto repo = Repository::Open(std::move(store), opt);
    EXPECT_TRUE(repo) << repo.error().ToString();
    return repo ? std::move(*repo) : nullptr;
  }

  Result<SnapshotOutcome> Snap(Repository* repo, BlockSource* src, const std::string& parent) {
    SnapshotEngine engine(repo, &pool_);
    SnapshotRequest req;
    req.snapshot_id = NewSnapshotId();
    req.volume_id = "vol-00000000000000001";
    req.parent_id = parent;
    req.start_time_ms = 1;
    return engine.Create(src, req);
  }

  // On the pool (objects in flight at once), or serially.
  Result<UpgradeReport> Upgrade(Repository* repo, bool dry_run = false, bool serial = false) {
    UpgradeOptions o;
    o.pack_size = kPack;
    o.packs_per_commit = 1;  // every pack published at once: more points to fail at, and resume
    o.dry_run = dry_run;
    o.pool = serial ? nullptr : &pool_;
    return UpgradeStore(repo, o);
  }

  // Every surviving snapshot restores byte-identical, and verify finds nothing wrong.
  void ExpectAllRestore(Repository* repo) {
    SnapshotEngine engine(repo, &pool_);
    for (const auto& [id, data] : expected_) {
      MemoryTarget t(data.size());
      auto r = engine.Restore(id, &t);
      ASSERT_TRUE(r) << id << ": " << r.error().ToString();
      EXPECT_TRUE(t.data == data) << id << " does not restore byte-identical";
    }
    auto report = VerifySnapshots(repo, {}, &pool_, {});
    ASSERT_TRUE(report) << report.error().ToString();
    EXPECT_TRUE(report->ok());
    EXPECT_EQ(report->snapshots_checked, expected_.size());
  }

  std::map<std::string, size_t> Keys() {
    std::map<std::string, size_t> out;
    auto listed = memory_->List("");  // held: a range-for over *temporary would dangle
    for (const auto& o : *listed) out[o.key] = o.size;
    return out;
  }
  size_t Count(const std::string& prefix) { return memory_->List(prefix)->size(); }
  // Upgrades the store, then puts its format-1 objects (chunks/, index/) back, as an upgrade
  // killed after the flip and before its deletes leaves them; *saved gets them.
  void UpgradeLeavingFormat1Objects(std::map<std::string, std::vector<uint8_t>>* saved) {
    for (const char* prefix : {"chunks/", "index/"}) {
      auto listed = memory_->List(prefix);
      ASSERT_TRUE(listed) << listed.error().ToString();
      for (const auto& o : *listed) (*saved)[o.key] = *memory_->Get(o.key);
    }
    ASSERT_TRUE(Upgrade(repo_.get()));
    for (const auto& [k, v] : *saved) ASSERT_TRUE(memory_->Put(k, v));
  }

  ThreadPool pool_{3};
  std::unique_ptr<MemoryStore> memory_;
  std::optional<Key256> key_;
  std::unique_ptr<Repository> repo_;
  std::map<std::string, std::vector<uint8_t>> expected_;
  std::string deleted_;
};

TEST_F(StoreUpgradeTest, EverySnapshotRestoresAfterTheUpgradeAndASecondRunIsANoOp) {
  Build();
  const size_t chunks = Count("chunks/"), pages = Count("index/");
  auto r = Upgrade(repo_.get());
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_TRUE(r->changed);
  EXPECT_EQ(r->chunks, chunks);
  EXPECT_EQ(r->pages, pages);
  EXPECT_EQ(r->copied, chunks + pages);
  EXPECT_EQ(r->leftovers_deleted, chunks + pages);
  EXPECT_GE(r->packs, 2u);  // data packs and tree packs are separate
  EXPECT_EQ(Count("chunks/"), 0u);
  EXPECT_EQ(Count("index/"), 0u);
  EXPECT_EQ(Count("leases/"), 0u);
  EXPECT_EQ(Count("gc-runs/"), 0u);
  EXPECT_GT(Count("packindex/"), 0u);

  auto upgraded = Open();
  ASSERT_NE(upgraded, nullptr);
  EXPECT_EQ(upgraded->format(), 2u);
  EXPECT_EQ(upgraded->packed()->pack_size(), kPack);
  ExpectAllRestore(upgraded.get());

  // The deleted snapshot's own objects were copied too (nothing is judged dead here); gc on
  // the format-2 store then frees them and the survivors still restore.
  GcOptions g;
  g.grace_ms = 0;
  FakeClock later(INT64_MAX / 4);
  g.clock = &later;
  auto gc = CollectGarbage(upgraded.get(), g);
  ASSERT_TRUE(gc) << gc.error().ToString();
  EXPECT_GT(gc->deleted_chunks + gc->deleted_pages, 0u);  // at least the deleted snapshot's root page
  ExpectAllRestore(Open().get());

  // Twice: says format 2, changes nothing.
  const auto before = Keys();
  auto again = Upgrade(Open().get());
  ASSERT_TRUE(again) << again.error().ToString();
  EXPECT_EQ(again->format_before, 2u);
  EXPECT_FALSE(again->changed);
  EXPECT_EQ(again->chunks + again->pages, 0u);
  EXPECT_EQ(Keys(), before);
}

TEST_F(StoreUpgradeTest, DryRunChangesNothing) {
  Build();
  const auto before = Keys();
  auto r = Upgrade(repo_.get(), /*dry_run=*/true);
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_FALSE(r->changed);
  EXPECT_EQ(r->chunks, Count("chunks/"));
  EXPECT_GE(r->packs_estimate, 2u);
  EXPECT_EQ(Keys(), before);
  EXPECT_EQ(Open()->format(), 1u);
}

TEST_F(StoreUpgradeTest, EncryptedStoreStaysEncryptedAndRestores) {
  Build(/*encrypted=*/true);
  auto r = Upgrade(repo_.get(), /*dry_run=*/false, /*serial=*/true);
  ASSERT_TRUE(r) << r.error().ToString();
  auto upgraded = Open();
  ASSERT_NE(upgraded, nullptr);
  EXPECT_EQ(upgraded->format(), 2u);
  EXPECT_TRUE(upgraded->encrypted());
  ExpectAllRestore(upgraded.get());
}

// A write failing at every point of the upgrade (each run stops there, as a crash would),
// then a run without faults in a new process: the same store as an uninterrupted upgrade.
TEST_F(StoreUpgradeTest, FailingAtEveryWriteThenRunningAgainLosesNothing) {
  bool reached_end = false;
  uint64_t failed_runs = 0, resumed_objects = 0;
  for (uint64_t n = 1; !reached_end; ++n) {
    SCOPED_TRACE("failing from write " + std::to_string(n));
    expected_.clear();
    Build();
    if (HasFatalFailure()) return;
    FaultInjectingStore* fault = nullptr;
    auto first = Open(&fault);
    fault->FailWritesFrom(n);
    auto r = Upgrade(first.get(), /*dry_run=*/false, /*serial=*/n % 2 == 0);
    if (r) {
      reached_end = true;  // n is past the last write: the upgrade ran whole
    } else {
      ++failed_runs;
      EXPECT_NE(r.error().code(), ErrorCode::kCorruption) << r.error().ToString();
      // Before the flip the store still reads as format 1, whole.
      auto mid = Open();
      if (mid->format() == 1) ExpectAllRestore(mid.get());
      auto rerun = Upgrade(Open().get());
      ASSERT_TRUE(rerun) << rerun.error().ToString();
      resumed_objects += rerun->already_packed;
    }
    auto upgraded = Open();
    ASSERT_NE(upgraded, nullptr);
    EXPECT_EQ(upgraded->format(), 2u);
    EXPECT_EQ(Count("chunks/") + Count("index/") + Count("leases/") + Count("gc-runs/"), 0u);
    ExpectAllRestore(upgraded.get());
    ASSERT_LT(n, 200u) << "the upgrade never ran whole";
  }
  // Lease, gc-run record, several packs and packindex objects, config: every one was failed.
  EXPECT_GE(failed_runs, 6u);
  EXPECT_GT(resumed_objects, 0u) << "no re-run found objects an earlier run had packed";
  std::printf("upgrade writes failed one at a time: %llu\n", static_cast<unsigned long long>(failed_runs));
}

TEST_F(StoreUpgradeTest, RefusedWhileASnapshotOrGcIsLiveAndChangesNothing) {
  Build();
  const int64_t now = Clock::Real()->NowMillis();
  ASSERT_TRUE(repo_->PutLease({"snap-0123456789abcdef0", "", "otherhost:1", now, now}));
  const auto before = Keys();
  auto r = Upgrade(repo_.get());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kConflict);
  EXPECT_NE(r.error().message().find("stop snapvold"), std::string::npos) << r.error().message();
  EXPECT_EQ(Keys(), before);
  ASSERT_TRUE(repo_->RemoveLease("snap-0123456789abcdef0"));

  ASSERT_TRUE(repo_->PutGcRun({"0123456789abcdef0123456789abcdef", "otherhost:2", now, now}));
  const auto before_gc = Keys();
  r = Upgrade(repo_.get());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kConflict);
  EXPECT_EQ(Keys(), before_gc);
  ASSERT_TRUE(repo_->RemoveGcRun("0123456789abcdef0123456789abcdef"));

  // A live upgrade of another host holds the store; one of a dead process here is taken over.
  ASSERT_TRUE(repo_->PutLease({Repository::kUpgradeLeaseId, "", "otherhost:3", now, now}));
  r = Upgrade(repo_.get());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kConflict);
  UpgradeOptions o;
  o.pack_size = kPack;
  o.holder_dead = [](const std::string& holder, const std::string&) { return holder == "otherhost:3"; };
  auto taken = UpgradeStore(repo_.get(), o);
  ASSERT_TRUE(taken) << taken.error().ToString();
  ExpectAllRestore(Open().get());
}

TEST_F(StoreUpgradeTest, SnapshotWritersAreRefusedDuringAndAfterTheUpgrade) {
  Build();
  auto stale = Open();  // opened as format 1, as a daemon left running would have
  VectorSource src(Volume(8, 5));
  const int64_t now = Clock::Real()->NowMillis();
  // While an upgrade holds the store (its lease is there): refused, and its lease removed.
  ASSERT_TRUE(repo_->PutLease({Repository::kUpgradeLeaseId, "", "otherhost:3", now, now}));
  auto during = Snap(stale.get(), &src, "");
  ASSERT_FALSE(during);
  EXPECT_EQ(during.error().code(), ErrorCode::kConflict);
  EXPECT_TRUE(during.error().retryable());
  EXPECT_EQ(Count("leases/"), 1u);
  ASSERT_TRUE(repo_->RemoveLease(Repository::kUpgradeLeaseId));

  ASSERT_TRUE(Upgrade(repo_.get()));
  // After it: a process that opened the store as format 1 must not write chunks/ into it.
  auto after = Snap(stale.get(), &src, "");
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().code(), ErrorCode::kConflict);
  EXPECT_EQ(Count("chunks/"), 0u);
  EXPECT_EQ(Count("leases/"), 0u);
  // A process that opens it now writes format 2.
  auto fresh = Open();
  auto ok = Snap(fresh.get(), &src, "");
  ASSERT_TRUE(ok) << ok.error().ToString();
  expected_[ok->manifest.snapshot_id] = src.data();
  ExpectAllRestore(Open().get());
}

// An upgrade interrupted after the flip leaves format-1 objects behind: format 2 neither
// reads nor counts them, gc (within its grace) and verify do not fail on them, and running
// the upgrade again deletes them.
TEST_F(StoreUpgradeTest, LeftoversAfterTheFlipAreIgnoredAndThenDeleted) {
  Build();
  std::map<std::string, std::vector<uint8_t>> saved;
  ASSERT_NO_FATAL_FAILURE(UpgradeLeavingFormat1Objects(&saved));

  auto upgraded = Open();
  ExpectAllRestore(upgraded.get());
  // Within the grace period a format-2 gc keeps them (FormatTwoGcDeletesFormat1Leftovers...
  // covers what it does after).
  auto gc = CollectGarbage(upgraded.get(), GcOptions{});
  ASSERT_TRUE(gc) << gc.error().ToString();
  EXPECT_EQ(gc->leftovers_young, saved.size());
  EXPECT_EQ(gc->leftovers_deleted, 0u);
  EXPECT_EQ(Count("chunks/") + Count("index/"), saved.size());

  auto dry = Upgrade(Open().get(), /*dry_run=*/true);
  ASSERT_TRUE(dry);
  EXPECT_EQ(dry->format_before, 2u);
  EXPECT_EQ(dry->chunks + dry->pages, saved.size());
  EXPECT_EQ(Count("chunks/") + Count("index/"), saved.size());
  auto rerun = Upgrade(Open().get());
  ASSERT_TRUE(rerun) << rerun.error().ToString();
  EXPECT_EQ(rerun->leftovers_deleted, saved.size());
  EXPECT_EQ(Count("chunks/") + Count("index/") + Count("leases/") + Count("gc-runs/"), 0u);
  ExpectAllRestore(Open().get());
}

// Format-1 objects left after the flip (an upgrade killed before its deletes, or written by a
// process that still had the old config) are garbage to a format-2 gc once its grace has
// passed, dead or live alike, since format 2 reads every live one from its pack; except a live
// one whose packed copy is gone (here: a lost pack, dropped from the index by this very gc),
// which is then the only copy left and stays.
TEST_F(StoreUpgradeTest, FormatTwoGcDeletesFormat1LeftoversAfterTheGraceButNeverTheOnlyCopy) {
  Build();
  std::map<std::string, std::vector<uint8_t>> saved;
  ASSERT_NO_FATAL_FAILURE(UpgradeLeavingFormat1Objects(&saved));

  // Chunks the surviving snapshots need, computed from their data (not by gc's mark).
  std::set<std::string> live;
  for (const auto& [id, data] : expected_)
    for (size_t off = 0; off < data.size(); off += kBs) {
      std::span<const uint8_t> block(data.data() + off, std::min<size_t>(kBs, data.size() - off));
      if (std::any_of(block.begin(), block.end(), [](uint8_t b) { return b != 0; }))
        live.insert("chunks/" + ToHex(Sha256(block)).substr(0, 2) + "/" + ToHex(Sha256(block)));
    }
  size_t dead = 0;
  for (const auto& [k, v] : saved) dead += k.starts_with("chunks/") && !live.count(k);
  ASSERT_GT(dead, 0u);  // the deleted snapshot's own chunks

  // Lose the data pack that holds the first live chunk: its live chunks now exist only as
  // format-1 leftovers.
  auto upgraded = Open();
  ASSERT_NE(upgraded, nullptr);
  ASSERT_TRUE(upgraded->packed()->Refresh());
  Digest first{};
  ASSERT_TRUE(DigestFromHex(live.begin()->substr(10)));
  first = *DigestFromHex(live.begin()->substr(10));
  auto lost = upgraded->packed()->Find(ObjectKind::kChunk, first);
  ASSERT_TRUE(lost);
  std::set<std::string> only_copy;
  for (const auto& k : live) {
    auto at = upgraded->packed()->Find(ObjectKind::kChunk, *DigestFromHex(k.substr(10)));
    ASSERT_TRUE(at) << k;
    if (at->pack == lost->pack) only_copy.insert(k);
  }
  ASSERT_LT(only_copy.size(), live.size());  // other live chunks keep a packed copy
  ASSERT_TRUE(memory_->Delete(PackedObjects::PackKey(lost->pack)));

  GcOptions g;
  g.grace_ms = 0;
  FakeClock later(INT64_MAX / 4);
  g.clock = &later;
  auto gc = CollectGarbage(Open().get(), g);
  ASSERT_TRUE(gc) << gc.error().ToString();
  EXPECT_EQ(gc->packs_lost, 1u);
  EXPECT_EQ(gc->leftovers_young, 0u);
  EXPECT_EQ(gc->leftovers_needed, only_copy.size());
  EXPECT_EQ(gc->leftovers_deleted, saved.size() - only_copy.size());
  std::set<std::string> left;
  for (const char* prefix : {"chunks/", "index/"}) {
    auto listed = memory_->List(prefix);  // held: a range-for over *temporary would dangle
    for (const auto& o : *listed) left.insert(o.key);
  }
  EXPECT_EQ(left, only_copy);
  for (const auto& k : only_copy) {
    auto kept = memory_->Get(k);
    ASSERT_TRUE(kept) << k << " (the only copy of a live chunk) was deleted";
    EXPECT_EQ(*kept, saved[k]) << k;
  }

  // A second run finds the same: still needed, nothing else left to delete.
  auto again = CollectGarbage(Open().get(), g);
  ASSERT_TRUE(again) << again.error().ToString();
  EXPECT_EQ(again->leftovers_needed, only_copy.size());
  EXPECT_EQ(again->leftovers_deleted, 0u);
  EXPECT_EQ(Count("chunks/"), only_copy.size());
}

// Killed after its deletes, before it removed its lease: writers are kept out until a re-run,
// which finds nothing left to delete and removes the hold.
TEST_F(StoreUpgradeTest, HoldLeftAfterTheDeletesIsRemovedByARerun) {
  Build();
  ASSERT_TRUE(Upgrade(repo_.get()));
  const int64_t now = Clock::Real()->NowMillis();
  ASSERT_TRUE(repo_->PutLease({Repository::kUpgradeLeaseId, "", "gonehost:1", now, now}));
  auto fresh = Open();
  VectorSource src(Volume(8, 5));
  auto refused = Snap(fresh.get(), &src, "");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), ErrorCode::kConflict);

  UpgradeOptions o;
  o.pack_size = kPack;
  o.holder_dead = [](const std::string& holder, const std::string&) { return holder == "gonehost:1"; };
  auto rerun = UpgradeStore(fresh.get(), o);
  ASSERT_TRUE(rerun) << rerun.error().ToString();
  EXPECT_TRUE(rerun->changed);
  EXPECT_EQ(rerun->leftovers_deleted, 0u);
  EXPECT_EQ(Count("leases/") + Count("gc-runs/"), 0u);
  auto ok = Snap(fresh.get(), &src, "");
  ASSERT_TRUE(ok) << ok.error().ToString();
}

TEST_F(StoreUpgradeTest, DamagedFormat1ObjectStopsTheUpgradeBeforeTheFlip) {
  Build();
  auto objs = *memory_->List("chunks/");
  auto bytes = *memory_->Get(objs[3].key);
  bytes[bytes.size() / 2] ^= 0x40;
  ASSERT_TRUE(memory_->Put(objs[3].key, bytes));
  auto r = Upgrade(repo_.get());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kCorruption);
  EXPECT_NE(r.error().message().find("still format 1"), std::string::npos) << r.error().message();
  EXPECT_EQ(Open()->format(), 1u);
  EXPECT_GT(Count("chunks/"), 20u);
  EXPECT_EQ(Count("leases/") + Count("gc-runs/"), 0u);
}

}  // namespace
}  // namespace snapvol
