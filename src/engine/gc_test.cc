// GC's guards, each pinned by a test that fails when the guard goes (scripts/mutants proves
// it): a manifest root or index page it cannot read aborts the run before anything is deleted
// (otherwise the damaged snapshot's chunks look unreferenced); objects younger than the grace
// period, or than the oldest live lease, stay; a lease whose heartbeat stopped is stale.
// Store format: from SNAPVOL_STORE_FORMAT (ctest runs this binary on both formats), except
// where a test pins one; damage is done to "the stored bytes of object X" in either format.
#include "store/gc.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>

#include "core/ids.h"
#include "core/process_holder.h"
#include "engine/snapshot_engine.h"
#include "store/block_map.h"
#include "store/memory_store.h"
#include "store/stored_object_test_util.h"

namespace snapvol {
namespace {

constexpr uint32_t kBs = 4096;
constexpr int64_t kMinute = 60 * 1000, kHour = 60 * kMinute;

struct Scenario {
  FakeClock clock{1'800'000'000'000};
  MemoryStore* store = nullptr;
  std::unique_ptr<Repository> repo;
  ThreadPool pool{2};
  std::string kept_id, gone_id;
  ManifestMeta kept;

  // `kept`: 1100 distinct blocks (a two-level map: a root over two leaf pages); `gone`: three
  // other blocks, its snapshot deleted, so a GC has something to delete.
  // format 0: the environment's.
  explicit Scenario(uint32_t format = 0) {
    auto owned = std::make_unique<MemoryStore>(&clock);
    store = owned.get();
    RepositoryOptions opt;
    opt.block_size = kBs;
    opt.format = format;
    repo = std::move(*Repository::Create(std::move(owned), opt));
    kept = Snap(1100, 0);
    kept_id = kept.snapshot_id;
    gone_id = Snap(3, 5000).snapshot_id;
    EXPECT_TRUE(repo->DeleteManifest(gone_id));
    clock.Advance(24 * kHour);
  }

  ManifestMeta Snap(size_t blocks, uint32_t first) {
    class Source : public BlockSource {
     public:
      Source(size_t blocks, uint32_t first) : blocks_(blocks), first_(first) {}
      uint64_t size() const override { return blocks_ * kBs; }
      Status ReadAt(uint64_t off, std::span<uint8_t> out) override {
        // Block b holds the 8 bytes of (b + 1) * an odd constant, repeated: distinct, never zero.
        for (size_t i = 0; i < out.size(); ++i) {
          uint64_t v = (first_ + (off + i) / kBs + 1) * 0x9E3779B97F4A7C15ull;
          out[i] = static_cast<uint8_t>(v >> (8 * ((off + i) % 8)));
        }
        return OkStatus();
      }
      std::string Describe() const override { return "generated"; }
      size_t blocks_;
      uint32_t first_;
    } src(blocks, first);
    EngineOptions eo;
    eo.clock = &clock;
    SnapshotEngine engine(repo.get(), &pool, eo);
    SnapshotRequest req;
    req.snapshot_id = NewSnapshotId();
    req.volume_id = "vol-00000000000000001";
    auto out = engine.Create(&src, req);
    EXPECT_TRUE(out) << out.error().ToString();
    return out->manifest;
  }

  std::set<std::string> Keys() {
    std::set<std::string> keys;
    auto objects = store->List("");
    EXPECT_TRUE(objects);
    for (const auto& o : *objects) keys.insert(o.key);
    return keys;
  }

  Result<GcReport> Gc(int64_t grace_ms = 0) {
    GcOptions o;
    o.grace_ms = grace_ms;
    o.clock = &clock;
    return CollectGarbage(repo.get(), o);
  }

  // (level, id) of every page of the kept snapshot, root first.
  std::vector<std::pair<uint32_t, Digest>> KeptPages() {
    std::vector<std::pair<uint32_t, Digest>> pages;
    BlockMapReader reader(repo.get(), kept);
    EXPECT_TRUE(reader.Walk(
        [&](uint32_t level, const Digest& id) -> Result<bool> {
          pages.emplace_back(level, id);
          return true;
        },
        nullptr));
    return pages;
  }
};

// Damage one object the kept snapshot needs; GC must refuse and delete nothing, and once the
// object is whole again the same GC deletes the gone snapshot's chunks (so it could delete).
void ExpectGcRefusesWhile(Scenario& s, const std::string& key, const std::function<void()>& damage) {
  auto original = s.store->Get(key);
  ASSERT_TRUE(original) << key;
  damage();
  const auto before = s.Keys();
  auto r = s.Gc();
  ASSERT_FALSE(r) << "gc ran over " << key << " and deleted " << r->deleted_chunks << " chunks";
  EXPECT_EQ(r.error().code(), ErrorCode::kCorruption) << r.error().ToString();
  EXPECT_NE(r.error().ToString().find("nothing deleted"), std::string::npos) << r.error().ToString();
  EXPECT_EQ(s.Keys(), before) << "gc deleted objects before giving up";

  ASSERT_TRUE(s.store->Put(key, *original));
  auto ok = s.Gc();
  ASSERT_TRUE(ok) << ok.error().ToString();
  EXPECT_EQ(ok->deleted_chunks, 3u);
  EXPECT_EQ(ok->deleted_roots, 1u);
  EXPECT_EQ(ok->live_chunks, 1100u);
}

TEST(GcGuards, AMissingLeafPageAbortsGcBeforeAnythingIsDeleted) {
  Scenario s;
  auto pages = s.KeptPages();
  ASSERT_EQ(pages.size(), 3u);  // a root and two leaves
  ASSERT_EQ(pages[2].first, 0u);
  // Format 1: the page's object; format 2: the pack holding it (all the tree's pages).
  auto leaf = testing_util::LocateStored(s.repo.get(), ObjectKind::kIndexPage, pages[2].second);
  ASSERT_TRUE(leaf) << leaf.error().ToString();
  ExpectGcRefusesWhile(s, leaf->key, [&] { ASSERT_TRUE(s.store->Delete(leaf->key)); });
}

TEST(GcGuards, ADamagedRootPageAbortsGcBeforeAnythingIsDeleted) {
  Scenario s;
  auto root = testing_util::LocateStored(s.repo.get(), ObjectKind::kIndexPage, s.kept.root_page);
  ASSERT_TRUE(root) << root.error().ToString();
  ExpectGcRefusesWhile(s, root->key, [&] {
    ASSERT_TRUE(testing_util::CorruptStored(s.repo.get(), ObjectKind::kIndexPage, s.kept.root_page, 0x04));
  });
}

TEST(GcGuards, ADamagedManifestRootAbortsGcBeforeAnythingIsDeleted) {
  Scenario s;
  const std::string manifest = Repository::ManifestKey(s.kept_id);
  ExpectGcRefusesWhile(s, manifest, [&] {
    ASSERT_TRUE(s.store->Mutate(manifest, [](std::vector<uint8_t>& b) { b[b.size() / 2] ^= 0x04; }));
  });
}

// Objects nothing references yet (a snapshot being written, or not yet published). Format 1's
// objects: the two tests below pin format 1; format 2's unpublished packs and their grace are
// PackedStoreTest.PacksOfAFailedSnapshotAreGarbageAndGcIsExclusive.
void PutStrays(Scenario& s, const std::string& salt) {
  ASSERT_TRUE(s.store->Put(Repository::ChunkKey(Sha256(AsBytes("chunk " + salt))), AsBytes("x")));
  ASSERT_TRUE(s.store->Put(Repository::PageKey(Sha256(AsBytes("page " + salt))), AsBytes("y")));
}

TEST(GcGuards, ObjectsYoungerThanTheGracePeriodStayAndADryRunDeletesNothing) {
  Scenario s(1);
  ASSERT_TRUE(s.Gc());  // only the kept snapshot's objects remain
  PutStrays(s, "a");
  s.clock.Advance(10 * kMinute);
  auto young = s.Gc(15 * kMinute);
  ASSERT_TRUE(young);
  EXPECT_EQ(young->deleted_chunks + young->deleted_pages, 0u);
  EXPECT_EQ(young->kept_young, 2u);

  s.clock.Advance(6 * kMinute);
  const auto before = s.Keys();
  GcOptions dry;
  dry.grace_ms = 15 * kMinute;
  dry.clock = &s.clock;
  dry.dry_run = true;
  auto report = CollectGarbage(s.repo.get(), dry);
  ASSERT_TRUE(report);
  EXPECT_EQ(report->deleted_chunks, 1u);
  EXPECT_EQ(report->deleted_pages, 1u);
  EXPECT_EQ(s.Keys(), before);

  auto old = s.Gc(15 * kMinute);
  ASSERT_TRUE(old);
  EXPECT_EQ(old->deleted_chunks, 1u);
  EXPECT_EQ(old->deleted_pages, 1u);
  EXPECT_EQ(old->live_chunks, 1100u);
}

TEST(GcGuards, ALiveLeaseKeepsEverythingYoungerThanItsStartAndAStaleOneDoesNot) {
  Scenario s(1);
  ASSERT_TRUE(s.Gc());
  const int64_t t0 = s.clock.NowMillis();
  PutStrays(s, "b");
  // A snapshot that started an hour before the strays were written, still beating.
  s.clock.Advance(2 * kHour);
  LeaseInfo lease{NewSnapshotId(), "", "test", t0 - kHour, s.clock.NowMillis() - kMinute};
  ASSERT_TRUE(s.repo->PutLease(lease));
  auto live = s.Gc();
  ASSERT_TRUE(live);
  EXPECT_EQ(live->live_leases, 1u);
  EXPECT_EQ(live->stale_leases_removed, 0u);
  EXPECT_EQ(live->deleted_chunks + live->deleted_pages, 0u);
  EXPECT_EQ(live->kept_young, 2u);
  ASSERT_EQ(s.repo->ListLeases()->size(), 1u);

  // Its heartbeat is past the lease expiry (30 minutes): the writer died.
  s.clock.Advance(31 * kMinute);
  auto stale = s.Gc();
  ASSERT_TRUE(stale);
  EXPECT_EQ(stale->live_leases, 0u);
  EXPECT_EQ(stale->stale_leases_removed, 1u);
  EXPECT_EQ(stale->deleted_chunks, 1u);
  EXPECT_EQ(stale->deleted_pages, 1u);
  EXPECT_TRUE(s.repo->ListLeases()->empty());
}

}  // namespace
}  // namespace snapvol

namespace snapvol {
namespace {

// A process of this host that has exited (reaped), and its start token taken while it ran.
std::pair<pid_t, std::string> ExitedChild() {
  int ready[2], go[2];
  EXPECT_EQ(::pipe(ready), 0);
  EXPECT_EQ(::pipe(go), 0);
  pid_t child = ::fork();
  if (child == 0) {
    char c = 0;
    (void)!::write(ready[1], &c, 1);
    (void)!::read(go[0], &c, 1);
    ::_exit(0);
  }
  char c = 0;
  EXPECT_EQ(::read(ready[0], &c, 1), 1);
  std::string token = ProcessStartToken(child);
  EXPECT_FALSE(token.empty());
  EXPECT_EQ(::write(go[1], &c, 1), 1);
  int status = 0;
  EXPECT_EQ(::waitpid(child, &status, 0), child);
  for (int fd : {ready[0], ready[1], go[0], go[1]}) ::close(fd);
  return {child, token};
}

// A gc killed on this host leaves its record (heartbeat fresh); once its process is gone the
// next gc removes it at once, says so, and runs (format 2 refuses while another run is live).
// A record of a live process, of a pid reused by another process, or of a process this one
// cannot judge (another host, another pid namespace) is treated as the brief says.
TEST(GcGuards, TheRecordOfAGcWhoseProcessIsGoneIsRemovedAndTheNextRunGoesOn) {
  Scenario s;
  const int64_t now = s.clock.NowMillis();
  auto [pid, token] = ExitedChild();
  const GcRunInfo dead{std::string(32, 'd'), ThisHostName() + ":" + std::to_string(pid), now, now, token};
  ASSERT_TRUE(s.repo->PutGcRun(dead));
  auto r = s.Gc();
  ASSERT_TRUE(r) << r.error().ToString();
  ASSERT_EQ(r->gone_runs_removed.size(), 1u);
  EXPECT_NE(r->gone_runs_removed[0].find(dead.holder), std::string::npos) << r->gone_runs_removed[0];
  EXPECT_EQ(r->deleted_chunks, 3u);
  EXPECT_TRUE(s.repo->ListGcRuns()->empty());

  // The parent of this process runs: its record stays (and keeps a format-2 gc off).
  const std::string parent = ThisHostName() + ":" + std::to_string(::getppid());
  const std::string parent_token = ProcessStartToken(::getppid());
  ASSERT_FALSE(parent_token.empty());
  const GcRunInfo live{std::string(32, 'e'), parent, now, now, parent_token};
  ASSERT_TRUE(s.repo->PutGcRun(live));
  auto second = s.Gc();
  if (s.repo->format() == 2) {
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error().code(), ErrorCode::kConflict);
  } else {
    ASSERT_TRUE(second) << second.error().ToString();
    EXPECT_TRUE(second->gone_runs_removed.empty());
  }
  EXPECT_EQ(s.repo->ListGcRuns()->size(), 1u);
  ASSERT_TRUE(s.repo->RemoveGcRun(live.run_id));

  // The same pid, started at another time: reused by another process, so the holder is gone.
  std::string reused_token = parent_token.substr(0, parent_token.rfind(' ')) + " 1";
  ASSERT_TRUE(s.repo->PutGcRun({std::string(32, 'f'), parent, now, now, reused_token}));
  auto third = s.Gc();
  ASSERT_TRUE(third) << third.error().ToString();
  EXPECT_EQ(third->gone_runs_removed.size(), 1u);
  EXPECT_TRUE(s.repo->ListGcRuns()->empty());

  // Not judged: another host of the same pid, or a token of another pid namespace (a
  // container sharing the host name), even with the pid gone here.
  const std::string other_ns = "x" + token;
  ASSERT_TRUE(s.repo->PutGcRun({std::string(32, 'a'), "elsewhere:" + std::to_string(pid), now, now, token}));
  ASSERT_TRUE(s.repo->PutGcRun({std::string(32, 'b'), dead.holder, now, now, other_ns}));
  auto fourth = s.Gc();
  if (s.repo->format() == 2) ASSERT_FALSE(fourth);
  else ASSERT_TRUE(fourth && fourth->gone_runs_removed.empty());
  EXPECT_EQ(s.repo->ListGcRuns()->size(), 2u);
}

}  // namespace
}  // namespace snapvol
