// `snapvol benchmark`: this machine's per-core speeds of the work a snapshot does, and the
// snapshot throughput they bound, so a user can see how close to the limit snapvol runs.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "cli/commands.h"
#include "core/bytes.h"
#include "store/chunk_codec.h"

namespace snapvol {
namespace {

// Runs fn over buf repeatedly for about `seconds`; returns bytes per second.
template <typename Fn>
double Measure(double seconds, size_t bytes_per_call, Fn fn) {
  using clock = std::chrono::steady_clock;
  auto start = clock::now();
  uint64_t calls = 0;
  double elapsed = 0;
  do {
    fn();
    ++calls;
    elapsed = std::chrono::duration<double>(clock::now() - start).count();
  } while (elapsed < seconds);
  return calls * bytes_per_call / elapsed;
}

}  // namespace

int RunBenchmark(double seconds, bool as_json) {
  constexpr size_t kBlock = 512 * 1024;
  std::mt19937_64 rng(42);
  std::vector<uint8_t> random(kBlock), text(kBlock), zeros(kBlock, 0);
  for (auto& b : random) b = static_cast<uint8_t>(rng());
  static const char* words[] = {"INFO", "snapvold", "request", "completed", "GET", "/var/log/syslog",
                                "kernel:", "eth0", "user", "session", "opened", "200", "404"};
  size_t pos = 0;
  while (pos < kBlock) {
    char line[160];
    int n = std::snprintf(line, sizeof line, "2026-11-26T02:%02d:%02d.%03dZ host %s %s %s %llu\n",
                          int(rng() % 60), int(rng() % 60), int(rng() % 1000), words[rng() % 13],
                          words[rng() % 13], words[rng() % 13], (unsigned long long)(rng() % 100000));
    for (int i = 0; i < n && pos < kBlock; ++i) text[pos++] = static_cast<uint8_t>(line[i]);
  }
  ChunkCodec plain(std::nullopt);
  Key256 key;
  key.fill(1);
  ChunkCodec enc(*KeySet::Derive(key));
  volatile uint8_t sink = 0;

  double sha = Measure(seconds, kBlock, [&] { sink = sink + Sha256(random)[0]; });
  double zero_check = Measure(seconds, kBlock, [&] { sink = sink + IsAllZero(zeros.data(), kBlock); });
  auto text_id = plain.Id(text);
  auto rnd_id = plain.Id(random);
  double zstd_text = Measure(seconds, kBlock, [&] { sink = sink + (*plain.Encode(ObjectKind::kChunk, text_id, text))[0]; });
  double zstd_random = Measure(seconds, kBlock, [&] { sink = sink + (*plain.Encode(ObjectKind::kChunk, rnd_id, random))[0]; });
  auto text_obj = *plain.Encode(ObjectKind::kChunk, text_id, text);
  std::vector<uint8_t> out(kBlock);
  double unzstd_text = Measure(seconds, kBlock, [&] { (void)plain.DecodeInto(ObjectKind::kChunk, text_id, text_obj, out, false); });
  double aes = Measure(seconds, kBlock, [&] { sink = sink + (*enc.Encode(ObjectKind::kChunk, rnd_id, random))[0]; });
  double aes_only = aes;  // includes the compression attempt on random data
  (void)aes_only;
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());

  // A root-disk-like mix: 35% zero, 35% text, 30% random. Per byte of volume, the CPU
  // seconds: zero check on everything, SHA-256 and zstd on the non-zero 65%.
  double cost = 0.35 / zero_check + 0.35 * (1 / sha + 1 / zstd_text) + 0.30 * (1 / sha + 1 / zstd_random);
  double bound_full = cores / cost;
  double incr_cost = 0.35 / zero_check + 0.65 / sha;
  double bound_incr = cores / incr_cost;
  double restore_cost = 0.35 * (1 / sha + 1 / unzstd_text) + 0.30 * (1 / sha);
  double bound_restore = cores / restore_cost;

  if (as_json) {
    nlohmann::json j = {{"cores", cores}, {"sha256_bytes_per_sec", sha},
                        {"zstd1_text_bytes_per_sec", zstd_text}, {"zstd1_random_bytes_per_sec", zstd_random},
                        {"zstd_decompress_text_bytes_per_sec", unzstd_text},
                        {"encode_aes256gcm_random_bytes_per_sec", aes},
                        {"bound_full_snapshot_bytes_per_sec", bound_full},
                        {"bound_incremental_bytes_per_sec", bound_incr},
                        {"bound_restore_bytes_per_sec", bound_restore}};
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  auto gbs = [](double v) { return v / 1e9; };
  std::printf("per core, 512 KiB blocks:\n");
  std::printf("  SHA-256                       %6.2f GB/s\n", gbs(sha));
  std::printf("  zero check                    %6.2f GB/s\n", gbs(zero_check));
  std::printf("  zstd -1 compress, text/logs   %6.2f GB/s\n", gbs(zstd_text));
  std::printf("  zstd -1 compress, random      %6.2f GB/s (kept raw)\n", gbs(zstd_random));
  std::printf("  zstd decompress, text/logs    %6.2f GB/s\n", gbs(unzstd_text));
  std::printf("  encode with AES-256-GCM       %6.2f GB/s (random data)\n", gbs(aes));
  std::printf("bounds on %u cores for a root-disk-like volume (35%% zero, 35%% text, 30%% random):\n", cores);
  std::printf("  full snapshot                 %6.2f GB/s of volume size\n", gbs(bound_full));
  std::printf("  incremental (hash only)       %6.2f GB/s\n", gbs(bound_incr));
  std::printf("  restore (decompress + check)  %6.2f GB/s (before writing)\n", gbs(bound_restore));
  return 0;
}

}  // namespace snapvol
