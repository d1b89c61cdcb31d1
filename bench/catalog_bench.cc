// snapvol-catalog-bench: rates of the catalog operations a cluster of hosts repeats, measured
// through the Catalog itself (the same statements and transactions snapvold runs), one Catalog
// object (one connection) per simulated host, on SQLite or PostgreSQL. bench/catalog-scale
// drives it and turns its figures into docs/scale.md's sizing.
//
//   snapvol-catalog-bench CATALOG PHASE [--hosts N] [--seconds S] [--count N] [--account ID]
//
// PHASE:
//   heartbeat  N hosts heartbeat as fast as they can for S seconds: the write-transaction
//              ceiling (every write takes the catalog's cluster-wide write lock).
//   snapshots  N hosts each record snapshots as a snapshot job does (a pending row with five
//              tags, its progress every 5%, then completed) for S seconds: snapshots per second.
//   queue      COUNT jobs are queued for N hosts (a routed CreateSnapshot each), then the N hosts
//              claim and finish their own until none is left: claims per second.
//   page       one host reads DescribeSnapshots' pages (1,000 snapshots, keyset paging) of
//              ACCOUNT (default: the account with the most snapshots) for S seconds.
// Each phase prints one JSON object on stdout: counts, seconds, rates and the p50/p99 of one
// operation's latency in milliseconds.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "catalog/catalog.h"
#include "core/ids.h"
#include "engine/snapshot_jobs.h"

using namespace snapvol;

namespace {

using Steady = std::chrono::steady_clock;

double MsSince(Steady::time_point t) {
  return std::chrono::duration<double, std::milli>(Steady::now() - t).count();
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "snapvol-catalog-bench: %s\n", what.c_str());
  std::exit(1);
}

std::unique_ptr<Catalog> OpenOrDie(const std::string& path) {
  auto c = Catalog::Open(path);
  if (!c) Die("cannot open the catalog: " + c.error().ToString());
  return std::move(*c);
}

// Latencies of one operation, gathered from every thread.
class Latencies {
 public:
  void Add(const std::vector<double>& ms) {
    std::lock_guard lock(mu_);
    all_.insert(all_.end(), ms.begin(), ms.end());
  }
  double Quantile(double q) {
    std::lock_guard lock(mu_);
    if (all_.empty()) return 0;
    std::sort(all_.begin(), all_.end());
    return all_[std::min(all_.size() - 1, static_cast<size_t>(q * static_cast<double>(all_.size())))];
  }

 private:
  std::mutex mu_;
  std::vector<double> all_;
};

struct Args {
  std::string catalog, phase, account;
  int hosts = 1;
  double seconds = 5;
  int count = 2000;
};

void Print(const Args& a, const char* unit, uint64_t done, double seconds, Latencies& lat, const std::string& extra = "") {
  std::printf(
      "{\"phase\": \"%s\", \"hosts\": %d, \"%s\": %llu, \"seconds\": %.3f, \"per_second\": %.1f, "
      "\"p50_ms\": %.3f, \"p99_ms\": %.3f%s}\n",
      a.phase.c_str(), a.hosts, unit, static_cast<unsigned long long>(done), seconds,
      seconds > 0 ? static_cast<double>(done) / seconds : 0.0, lat.Quantile(0.5), lat.Quantile(0.99), extra.c_str());
}

// Runs body(host index, catalog, own latencies) on N threads, each with its own Catalog.
template <typename Body>
double OnHosts(const Args& a, Latencies& lat, Body body) {
  std::vector<std::unique_ptr<Catalog>> cats;
  for (int i = 0; i < a.hosts; ++i) cats.push_back(OpenOrDie(a.catalog));
  const auto start = Steady::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < a.hosts; ++i)
    threads.emplace_back([&, i] {
      std::vector<double> mine;
      body(i, *cats[i], mine);
      lat.Add(mine);
    });
  for (auto& t : threads) t.join();
  return MsSince(start) / 1000;
}

std::vector<std::string> RegisterHosts(Catalog& c, int n) {
  std::vector<std::string> ids;
  for (int i = 0; i < n; ++i) {
    HostRecord h{NewHostId(), "bench-" + std::to_string(i), "http://127.0.0.1:1", "", "bench", NowMs(), NowMs()};
    if (auto st = c.UpsertHost(h); !st) Die("register a host: " + st.error().ToString());
    ids.push_back(h.host_id);
  }
  return ids;
}

void Heartbeats(const Args& a) {
  auto setup = OpenOrDie(a.catalog);
  const auto hosts = RegisterHosts(*setup, a.hosts);
  std::atomic<uint64_t> done{0};
  Latencies lat;
  const double s = OnHosts(a, lat, [&](int i, Catalog& c, std::vector<double>& mine) {
    const auto end = Steady::now() + std::chrono::duration<double>(a.seconds);
    while (Steady::now() < end) {
      const auto t = Steady::now();
      if (auto st = c.Heartbeat(hosts[i], NowMs()); !st) Die("heartbeat: " + st.error().ToString());
      mine.push_back(MsSince(t));
      ++done;
    }
  });
  Print(a, "writes", done, s, lat);
}

void Snapshots(const Args& a) {
  auto setup = OpenOrDie(a.catalog);
  auto account = setup->CreateAccount("bench-" + NewVolumeId());
  if (!account) Die("create an account: " + account.error().ToString());
  std::atomic<uint64_t> done{0};
  Latencies lat;
  const double s = OnHosts(a, lat, [&](int i, Catalog& c, std::vector<double>& mine) {
    const std::string volume = NewVolumeId();
    const auto end = Steady::now() + std::chrono::duration<double>(a.seconds);
    while (Steady::now() < end) {
      const auto t = Steady::now();
      SnapshotRecord r;
      r.snapshot_id = NewSnapshotId();
      r.volume_id = volume;
      r.account_id = account->account_id;
      r.start_time_ms = NowMs();
      r.volume_size_bytes = 100ull << 30;
      r.block_size = 512 * 1024;
      r.description = "Created for policy bench: automatic";
      r.runner = "pid:" + std::to_string(i) + "@bench";
      r.tags = {{"Name", "bench volume"}, {"Owner", "team-" + std::to_string(i)}, {"aws:dlm:lifecycle-policy-id", "policy-0123456789abcdef0"},
                {"aws:dlm:lifecycle-schedule-name", "daily-0200-utc"}, {"aws:snapvol:lifecycle-run", "2026-12-05T02:00:00Z"}};
      if (auto st = c.InsertSnapshot(r); !st) Die("insert a snapshot: " + st.error().ToString());
      for (int pct = kProgressStepPercent; pct < 100; pct += kProgressStepPercent)  // as a job writes it
        if (auto st = c.UpdateProgress(r.snapshot_id, std::to_string(pct) + "%"); !st)
          Die("progress of a snapshot: " + st.error().ToString());
      if (auto st = c.MarkCompleted(r.snapshot_id, NowMs(), 1 << 20, 2, 204800); !st)
        Die("complete a snapshot: " + st.error().ToString());
      mine.push_back(MsSince(t));
      ++done;
    }
  });
  Print(a, "snapshots", done, s, lat,
        ", \"write_transactions\": " + std::to_string((1 + 100 / kProgressStepPercent) * done.load()));
}

void Queue(const Args& a) {
  auto setup = OpenOrDie(a.catalog);
  const auto hosts = RegisterHosts(*setup, a.hosts);
  const auto fill = Steady::now();
  for (int j = 0; j < a.count; ++j) {
    SnapshotJobRecord job;
    job.job_id = NewSnapshotId();
    job.host_id = hosts[j % a.hosts];
    job.snapshot_ids = {job.job_id};
    job.created_ms = NowMs();
    if (auto st = setup->EnqueueSnapshotJob(job); !st) Die("queue a job: " + st.error().ToString());
  }
  const double enqueue_s = MsSince(fill) / 1000;
  std::atomic<uint64_t> done{0};
  Latencies lat;
  const double s = OnHosts(a, lat, [&](int i, Catalog& c, std::vector<double>& mine) {
    const std::string runner = "pid:" + std::to_string(i) + "@bench@" + hosts[i];
    for (;;) {
      const auto t = Steady::now();
      auto job = c.ClaimSnapshotJob(hosts[i], runner, NowMs());
      if (!job) Die("claim: " + job.error().ToString());
      if (!*job) break;
      if (auto st = c.FinishSnapshotJob((*job)->job_id, runner); !st) Die("finish: " + st.error().ToString());
      mine.push_back(MsSince(t));
      ++done;
    }
  });
  if (done.load() != static_cast<uint64_t>(a.count))
    Die("claimed " + std::to_string(done.load()) + " of " + std::to_string(a.count) + " jobs");
  char extra[96];
  std::snprintf(extra, sizeof extra, ", \"enqueued_per_second\": %.1f", a.count / enqueue_s);
  Print(a, "claims", done, s, lat, extra);
}

void Pages(const Args& a) {
  auto c = OpenOrDie(a.catalog);
  std::string account = a.account;
  if (account.empty()) Die("page needs --account");
  uint64_t pages = 0, rows = 0;
  Latencies lat;
  std::vector<double> mine;
  const auto start = Steady::now();
  const auto end = start + std::chrono::duration<double>(a.seconds);
  std::string after;
  while (Steady::now() < end) {
    const auto t = Steady::now();
    auto page = c->ListSnapshotsPage(account, after, 1000);
    if (!page) Die("page: " + page.error().ToString());
    mine.push_back(MsSince(t));
    ++pages;
    rows += page->size();
    after = page->size() == 1000 ? page->back().snapshot_id : "";
  }
  lat.Add(mine);
  Print(a, "pages", pages, MsSince(start) / 1000, lat, ", \"rows\": " + std::to_string(rows));
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  std::vector<std::string> pos;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Die(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--hosts") a.hosts = std::atoi(value().c_str());
    else if (arg == "--seconds") a.seconds = std::atof(value().c_str());
    else if (arg == "--count") a.count = std::atoi(value().c_str());
    else if (arg == "--account") a.account = value();
    else if (arg.starts_with("--")) Die("unknown flag " + arg);
    else pos.push_back(arg);
  }
  if (pos.size() != 2 || a.hosts < 1 || a.seconds <= 0 || a.count < 1) {
    std::fprintf(stderr,
                 "usage: snapvol-catalog-bench CATALOG heartbeat|snapshots|queue|page [--hosts N] [--seconds S] "
                 "[--count N] [--account ID]\n");
    return 2;
  }
  a.catalog = pos[0];
  a.phase = pos[1];
  if (a.phase == "heartbeat") Heartbeats(a);
  else if (a.phase == "snapshots") Snapshots(a);
  else if (a.phase == "queue") Queue(a);
  else if (a.phase == "page") Pages(a);
  else Die("unknown phase " + a.phase);
  return 0;
}
