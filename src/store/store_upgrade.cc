#include "store/store_upgrade.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "core/process_holder.h"

namespace snapvol {
namespace {

constexpr size_t kDeleteGroup = 1000;
constexpr char kGcRunHolderPrefix[] = "store upgrade ";


std::string ConflictHint() {
  return "snapvol store upgrade needs the store to itself: stop snapvold (it keeps the store open in "
         "format 1) and let running snapshots, gc and verification end, then run it again";
}

// The upgrade's exclusive hold: leases/store-upgrade (snapshot writers refuse to start while it
// exists, Repository::PutLease) and a gc-runs/ record (format-2 gc and verification refuse,
// snapshots that reused chunks wait). Both renewed by a thread; removed on every way out.
class Hold {
 public:
  Hold(Repository* repo, const UpgradeOptions& opt) : repo_(repo), opt_(opt) {}
  ~Hold() {
    if (!published_) return;
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (heartbeat_.joinable()) heartbeat_.join();
    (void)repo_->RemoveGcRun(run_.run_id);
    (void)repo_->RemoveLease(Repository::kUpgradeLeaseId);
  }

  Status Take() {
    using DeadFn = std::function<bool(const std::string&, const std::string&)>;
    const DeadFn dead = opt_.holder_dead ? opt_.holder_dead : DeadFn(HolderIsGone);
    const int64_t now = opt_.clock->NowMillis();
    const std::string me = ThisProcessHolder();
    const std::string start = ThisProcessStartToken();
    // A live upgrade elsewhere keeps the store; one that died on this host is taken over.
    ASSIGN_OR_RETURN(auto leases, repo_->ListLeases());
    for (const auto& l : leases)
      if (l.snapshot_id == Repository::kUpgradeLeaseId && l.heartbeat_ms >= now - opt_.lease_expiry_ms &&
          !dead(l.holder, l.holder_start))
        return MakeError(ErrorCode::kConflict,
                         "another snapvol store upgrade (" + l.holder + ", started " + FormatIso8601(l.started_ms) +
                             ") holds this store; run this again when it has ended",
                         /*retryable=*/true);
    ASSIGN_OR_RETURN(auto runs, repo_->ListGcRuns());
    for (const auto& r : runs)
      if (r.holder.starts_with(kGcRunHolderPrefix) &&
          dead(r.holder.substr(sizeof kGcRunHolderPrefix - 1), r.holder_start))
        RETURN_IF_ERROR(repo_->RemoveGcRun(r.run_id));

    // Checked before anything is written (a refusal leaves no trace), and again after.
    RETURN_IF_ERROR(RequireNoOthers(now));
    std::array<uint8_t, 16> id{};
    RETURN_IF_ERROR(RandomBytes(id));
    run_ = {ToHex(id), kGcRunHolderPrefix + me, now, now, start};
    lease_ = {Repository::kUpgradeLeaseId, "", me, now, now, start};
    published_ = true;  // from here the destructor removes what was written
    RETURN_IF_ERROR(repo_->PutLease(lease_));
    RETURN_IF_ERROR(repo_->PutGcRun(run_));
    // Written before read: a snapshot or gc that starts now either is listed here or sees
    // the lease / record above and refuses.
    RETURN_IF_ERROR(RequireNoOthers(now));

    heartbeat_ = std::thread([this] {
      std::unique_lock lock(mu_);
      while (!cv_.wait_for(lock, std::chrono::milliseconds(opt_.heartbeat_ms), [&] { return stop_; })) {
        const int64_t t = opt_.clock->NowMillis();
        LeaseInfo lease = lease_;
        GcRunInfo run = run_;
        lease.heartbeat_ms = run.heartbeat_ms = t;
        // A failed renewal only lets writers and gc runs stop waiting sooner; a writer still
        // refuses while the lease object exists, whatever its age.
        (void)repo_->PutLease(lease);
        (void)repo_->PutGcRun(run);
      }
    });
    return OkStatus();
  }

 private:
  // Conflict while a snapshot lease or a gc or verification run (other than this hold's) is live.
  Status RequireNoOthers(int64_t now) {
    ASSIGN_OR_RETURN(auto leases, repo_->ListLeases());
    for (const auto& l : leases)
      if (l.snapshot_id != Repository::kUpgradeLeaseId && l.heartbeat_ms >= now - opt_.lease_expiry_ms)
        return MakeError(ErrorCode::kConflict,
                         "snapshot " + l.snapshot_id + " is being written (" + l.holder + ", started " +
                             FormatIso8601(l.started_ms) + "); " + ConflictHint(),
                         /*retryable=*/true);
    ASSIGN_OR_RETURN(auto runs, repo_->ListGcRuns());
    for (const auto& r : runs)
      if (r.run_id != run_.run_id && r.heartbeat_ms >= now - kGcRunExpiryMs)
        return MakeError(ErrorCode::kConflict,
                         "a gc or verification run (" + r.holder + ", started " + FormatIso8601(r.started_ms) +
                             ") is live; " + ConflictHint(),
                         /*retryable=*/true);
    return OkStatus();
  }

  Repository* repo_;
  const UpgradeOptions& opt_;
  GcRunInfo run_;
  LeaseInfo lease_;
  bool published_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread heartbeat_;
};

struct Listed {
  ObjectKind kind;
  std::vector<StoredObjectInfo> objects;
};

Result<std::array<Listed, 2>> ListFormat1(Repository* repo) {
  std::array<Listed, 2> out{Listed{ObjectKind::kChunk, {}}, Listed{ObjectKind::kIndexPage, {}}};
  for (auto& l : out) {
    ASSIGN_OR_RETURN(l.objects, repo->ListFormat1Objects(l.kind));
  }
  return out;
}

std::string NameOf(ObjectKind kind) { return kind == ObjectKind::kChunk ? "chunk" : "index page"; }

// Objects handled between two progress reports (and two chances to commit): a few per thread.
size_t GroupSize(ThreadPool* pool) { return pool ? 4 * pool->size() : 4; }

// fn(i) for every i in [from, to), on the pool when there is one; the first error.
Status RunAll(ThreadPool* pool, size_t from, size_t to, const std::function<Status(size_t)>& fn) {
  if (!pool) {
    for (size_t i = from; i < to; ++i) RETURN_IF_ERROR(fn(i));
    return OkStatus();
  }
  std::mutex mu;
  std::optional<Error> first;  // guarded by mu
  for (size_t i = from; i < to; ++i)
    pool->Submit([&, i] {
      Status st = fn(i);
      if (st) return;
      std::lock_guard lock(mu);
      if (!first) first = st.error();
    });
  pool->Wait();
  if (first) return std::unexpected(*first);
  return OkStatus();
}

Status DeleteAll(Repository* repo, const std::array<Listed, 2>& listed, uint64_t* deleted) {
  for (const auto& l : listed) {
    std::vector<Digest> group;
    for (size_t i = 0; i < l.objects.size(); ++i) {
      group.push_back(l.objects[i].id);
      if (group.size() == kDeleteGroup || i + 1 == l.objects.size()) {
        RETURN_IF_ERROR(repo->DeleteFormat1Objects(l.kind, group));
        *deleted += group.size();
        group.clear();
      }
    }
  }
  return OkStatus();
}

// A format-2 store: only the leftovers of an interrupted upgrade can remain.
Result<UpgradeReport> FinishLeftovers(Repository* repo, const UpgradeOptions& opt) {
  UpgradeReport report;
  report.format_before = 2;
  ASSIGN_OR_RETURN(auto listed, ListFormat1(repo));
  report.chunks = listed[0].objects.size();
  report.pages = listed[1].objects.size();
  for (const auto& l : listed)
    for (const auto& o : l.objects) report.bytes_before += o.size;
  // A run killed after its deletes can still have left its hold, which keeps writers out.
  ASSIGN_OR_RETURN(auto leases, repo->ListLeases());
  const bool held = std::any_of(leases.begin(), leases.end(),
                                [](const LeaseInfo& l) { return l.snapshot_id == Repository::kUpgradeLeaseId; });
  if (opt.dry_run || (report.chunks + report.pages == 0 && !held)) return report;
  Hold hold(repo, opt);
  RETURN_IF_ERROR(hold.Take());
  RETURN_IF_ERROR(DeleteAll(repo, listed, &report.leftovers_deleted));
  report.changed = true;
  return report;
}

}  // namespace

Result<UpgradeReport> UpgradeStore(Repository* repo, const UpgradeOptions& opt) {
  if (opt.pack_size < kMinPackSize || opt.pack_size > kMaxPackSize)
    return InvalidArgument("pack size must be between 1 and 128 MiB");
  if (repo->format() == 2) return FinishLeftovers(repo, opt);

  UpgradeReport report;
  ASSIGN_OR_RETURN(auto listed, ListFormat1(repo));
  report.chunks = listed[0].objects.size();
  report.pages = listed[1].objects.size();
  UpgradeProgress progress;
  progress.objects_total = report.chunks + report.pages;
  for (const auto& l : listed)
    for (const auto& o : l.objects) report.bytes_before += o.size;
  progress.bytes_total = report.bytes_before;

  // What an earlier, interrupted run already packed and indexed is not copied again.
  auto packed = repo->NewPackedObjects(opt.pack_size);
  RETURN_IF_ERROR(packed->Refresh());
  if (opt.dry_run) {
    for (const auto& l : listed) {
      uint64_t to_copy = 0;
      for (const auto& o : l.objects) {
        if (packed->Find(l.kind, o.id)) ++report.already_packed;
        else to_copy += o.size;
      }
      report.packs_estimate += (to_copy + opt.pack_size - 1) / opt.pack_size;
    }
    return report;
  }

  Hold hold(repo, opt);
  RETURN_IF_ERROR(hold.Take());
  report.changed = true;

  // Copy: chunks into data packs, then pages into tree packs, each object decoded and checked
  // against its id on the way (a damaged one stops the upgrade before the flip).
  auto job = packed->NewJob();
  DigestSet vanished[2];
  progress.phase = "copy";
  enum Outcome : uint8_t { kAlready, kCopied, kVanished };
  for (size_t k = 0; k < listed.size(); ++k) {
    const auto& l = listed[k];
    std::vector<Outcome> outcome(l.objects.size(), kAlready);
    auto copy = [&](size_t i) -> Status {
      const StoredObjectInfo& o = l.objects[i];
      if (packed->Find(l.kind, o.id)) return OkStatus();
      uint64_t stored = 0;
      auto plain = repo->ReadFormat1Object(l.kind, o.id, &stored);
      if (!plain && plain.error().code() == ErrorCode::kNotFound) {
        outcome[i] = kVanished;  // a format-1 gc deleted it: no snapshot needs it
        return OkStatus();
      }
      if (!plain)
        return std::unexpected(
            plain.error().WithContext("upgrade stopped, the store is still format 1 (run snapvol verify, then gc)"));
      auto added = job->Put(l.kind, o.id, *plain);
      if (!added) return std::unexpected(added.error().WithContext("upgrade stopped, the store is still format 1"));
      if (added->written) outcome[i] = kCopied;
      return OkStatus();
    };
    for (size_t from = 0; from < l.objects.size();) {
      const size_t to = std::min(l.objects.size(), from + GroupSize(opt.pool));
      RETURN_IF_ERROR(RunAll(opt.pool, from, to, copy));
      // Between groups no Put runs: a commit here publishes whole packs only.
      if (job->PendingBytes() >= std::max<uint64_t>(1, opt.packs_per_commit) * opt.pack_size) RETURN_IF_ERROR(job->Commit());
      for (size_t i = from; i < to; ++i) {
        ++progress.objects_done;
        progress.bytes_done += l.objects[i].size;
        if (outcome[i] == kCopied) ++report.copied;
        else if (outcome[i] == kAlready) ++report.already_packed;
        else {
          vanished[k].insert(l.objects[i].id);
          ++report.vanished;
        }
      }
      if (opt.progress) opt.progress(progress);
      from = to;
    }
  }
  RETURN_IF_ERROR(job->Commit());
  job.reset();

  // Verify through an index read afresh from the store, as any process opening the upgraded
  // store will read it: every object is found, read by range from its pack and matches its id.
  auto fresh = repo->NewPackedObjects(opt.pack_size);
  RETURN_IF_ERROR(fresh->Refresh());
  std::set<Digest> packs;
  progress = {"verify", 0, progress.objects_total, 0, progress.bytes_total};
  for (size_t k = 0; k < listed.size(); ++k) {
    const auto& l = listed[k];
    std::vector<Digest> pack_of(l.objects.size());
    std::vector<uint64_t> size_of(l.objects.size(), 0);
    auto check = [&](size_t i) -> Status {
      const StoredObjectInfo& o = l.objects[i];
      if (vanished[k].count(o.id)) return OkStatus();
      auto loc = fresh->Find(l.kind, o.id);
      auto stored = loc ? fresh->ReadStored(l.kind, o.id) : Result<std::vector<uint8_t>>(NotFound("not in the new index"));
      Status ok = stored ? Status(OkStatus()) : Status(std::unexpected(stored.error()));
      if (ok) {
        auto plain = repo->codec().Decode(l.kind, o.id, *stored, /*verify_id=*/true);
        if (!plain) ok = std::unexpected(plain.error());
      }
      if (!ok)
        return std::unexpected(ok.error().WithContext("upgrade stopped before the flip, the store is still format 1: " +
                                                      NameOf(l.kind) + " " + ToHex(o.id) + " does not read back from its pack"));
      pack_of[i] = loc->pack;
      size_of[i] = stored->size();
      return OkStatus();
    };
    for (size_t from = 0; from < l.objects.size();) {
      const size_t to = std::min(l.objects.size(), from + GroupSize(opt.pool));
      RETURN_IF_ERROR(RunAll(opt.pool, from, to, check));
      for (size_t i = from; i < to; ++i) {
        ++progress.objects_done;
        progress.bytes_done += l.objects[i].size;
        if (vanished[k].count(l.objects[i].id)) continue;
        packs.insert(pack_of[i]);
        report.bytes_after += size_of[i];
      }
      if (opt.progress) opt.progress(progress);
      from = to;
    }
  }
  report.packs = packs.size();

  // The flip: one atomic Put. From here the store is format 2.
  RETURN_IF_ERROR(repo->WriteFormat2Config(opt.pack_size));
  ASSIGN_OR_RETURN(listed, ListFormat1(repo));
  RETURN_IF_ERROR(DeleteAll(repo, listed, &report.leftovers_deleted));
  return report;
}

}  // namespace snapvol
