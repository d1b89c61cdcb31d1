#include "cli/benchmark_command.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <latch>
#include <nlohmann/json.hpp>
#include <random>
#include <span>
#include <thread>
#include <utility>
#include <vector>

#include "core/aligned_buffer.h"
#include "core/file_util.h"
#include "core/hash.h"
#include "store/chunk_codec.h"
#include "store/crypto.h"

namespace snapvol {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr size_t kBlockBytes = 512 * 1024;  // the store's default block
// Non-zero blocks of a bench/genvol image are ~35 parts text to ~30 parts random (zero
// blocks cost a zero check only, so they are left out): 7 text-like and 6 random blocks.
constexpr size_t kTextBlocks = 7, kRandomBlocks = 6;
static_assert(kTextBlocks == kRandomBlocks + 1, "MakeSample interleaves them");
constexpr size_t kIoCallBytes = 4 << 20;
constexpr uint64_t kFreeSpaceMargin = 16 << 20;

double SecondsSince(SteadyClock::time_point t) {
  return std::chrono::duration<double>(SteadyClock::now() - t).count();
}

// ---- sample blocks ----

constexpr const char* kPrograms[] = {"sshd", "systemd", "kernel", "cron", "nginx", "postgres",
                                     "containerd", "kubelet", "chronyd", "sudo", "dbus-daemon"};
constexpr const char* kWords[] = {
    "accepted", "connection", "closed", "session", "opened", "user", "failed", "timeout",
    "retrying", "started", "stopped", "worker", "queue", "flushed", "checkpoint", "segment",
    "replica", "leader", "health", "check", "passed", "degraded", "mount", "device", "cache",
    "miss", "hit", "request", "upstream", "latency", "bytes", "records", "rotated", "config"};
constexpr const char* kPaths[] = {"/api/v1/orders", "/api/v1/users", "/static/app.js", "/healthz",
                                  "/login", "/api/v2/items", "/metrics", "/images/logo.png"};
constexpr const char* kServices[] = {"billing", "auth", "search", "checkout", "gateway", "reports"};

// Fills out with log lines (syslog, web access log, JSON application log) whose timestamps
// advance and whose addresses, ids and numbers vary: zstd level 1 compresses such blocks
// about 3-4x, like the text runs of bench/genvol's images.
void FillText(std::mt19937_64& rng, std::span<uint8_t> out, int64_t& clock_s) {
  auto pick = [&](const auto& list) { return list[rng() % std::size(list)]; };
  size_t pos = 0;
  char line[512];
  while (pos < out.size()) {
    clock_s += static_cast<int64_t>(rng() % 3);
    int hh = static_cast<int>(clock_s / 3600 % 24), mm = static_cast<int>(clock_s / 60 % 60),
        ss = static_cast<int>(clock_s % 60);
    int n = 0;
    switch (rng() % 3) {
      case 0:
        n = std::snprintf(line, sizeof line, "Nov 26 %02d:%02d:%02d host-%02u %s[%u]: %s %s %s %s from 10.%u.%u.%u "
                          "port %u session %08x\n", hh, mm, ss, static_cast<unsigned>(rng() % 8), pick(kPrograms),
                          static_cast<unsigned>(rng() % 32768), pick(kWords), pick(kWords), pick(kWords),
                          pick(kWords), static_cast<unsigned>(rng() % 256), static_cast<unsigned>(rng() % 256),
                          static_cast<unsigned>(rng() % 256), static_cast<unsigned>(rng() % 65536),
                          static_cast<unsigned>(rng()));
        break;
      case 1:
        n = std::snprintf(line, sizeof line,
                          "10.%u.%u.%u - - [26/Nov/2026:%02d:%02d:%02d +0000] \"%s %s?id=%u HTTP/1.1\" %u %u "
                          "\"-\" \"curl/8.5.0\"\n",
                          static_cast<unsigned>(rng() % 256), static_cast<unsigned>(rng() % 256),
                          static_cast<unsigned>(rng() % 256), hh, mm, ss, rng() % 4 ? "GET" : "POST",
                          pick(kPaths), static_cast<unsigned>(rng() % 1000000),
                          rng() % 8 ? 200u : 404u, static_cast<unsigned>(rng() % 90000));
        break;
      default:
        n = std::snprintf(line, sizeof line,
                          "{\"ts\":\"2026-11-26T%02d:%02d:%02d.%03uZ\",\"level\":\"%s\",\"service\":\"%s\","
                          "\"msg\":\"%s %s\",\"request_id\":\"%016llx%016llx\",\"user\":%u,\"ms\":%u}\n",
                          hh, mm, ss, static_cast<unsigned>(rng() % 1000), rng() % 5 ? "info" : "warn",
                          pick(kServices), pick(kWords), pick(kWords), static_cast<unsigned long long>(rng()),
                          static_cast<unsigned long long>(rng()), static_cast<unsigned>(rng() % 100000),
                          static_cast<unsigned>(rng() % 5000));
        break;
    }
    size_t take = std::min(out.size() - pos, static_cast<size_t>(std::max(n, 0)));
    std::copy_n(reinterpret_cast<const uint8_t*>(line), take, out.data() + pos);
    pos += take;
  }
}

void FillRandom(std::mt19937_64& rng, std::span<uint8_t> out) {
  for (size_t i = 0; i < out.size(); i += 8) {
    uint64_t v = rng();
    std::memcpy(out.data() + i, &v, std::min<size_t>(8, out.size() - i));
  }
}

struct Sample {
  std::vector<std::vector<uint8_t>> blocks;  // text and random interleaved
  std::vector<Digest> ids;                   // plain-store ids
  std::vector<std::vector<uint8_t>> stored;  // ChunkCodec objects, for the decode figure
  double text_ratio = 0, sample_ratio = 0;
};

Result<Sample> MakeSample(const ChunkCodec& codec) {
  Sample s;
  std::mt19937_64 rng(20261126);
  int64_t clock_s = 0;
  uint64_t text_plain = 0, text_packed = 0, plain = 0, packed = 0;
  for (size_t i = 0; i < kTextBlocks + kRandomBlocks; ++i) {
    std::vector<uint8_t> b(kBlockBytes);
    bool text = i % 2 == 0;  // interleaved: text, random, text, ..., text
    if (text) FillText(rng, b, clock_s); else FillRandom(rng, b);
    Digest id = codec.Id(b);
    ASSIGN_OR_RETURN(std::vector<uint8_t> obj, codec.Encode(ObjectKind::kChunk, id, b));
    std::vector<uint8_t> back(b.size());
    RETURN_IF_ERROR(codec.DecodeInto(ObjectKind::kChunk, id, obj, back, true));
    if (back != b) return Internal("the chunk codec did not give back a sample block");
    plain += b.size();
    packed += obj.size();
    if (text) {
      std::vector<uint8_t> z(ZSTD_compressBound(b.size()));
      size_t n = ZSTD_compress(z.data(), z.size(), b.data(), b.size(), 1);
      if (ZSTD_isError(n)) return Internal(std::string("zstd: ") + ZSTD_getErrorName(n));
      text_plain += b.size();
      text_packed += n;
    }
    s.blocks.push_back(std::move(b));
    s.ids.push_back(id);
    s.stored.push_back(std::move(obj));
  }
  s.text_ratio = static_cast<double>(text_plain) / static_cast<double>(text_packed);
  s.sample_ratio = static_cast<double>(plain) / static_cast<double>(packed);
  return s;
}

// ---- CPU figures ----

// zstd level 1 with the parameters ChunkCodec sets for it (store/chunk_codec.cc: minimum
// match 5, hash table 2^16). If they drift apart, only the "compress" figure is off: the
// hash + compress + checksum figure runs the codec itself.
ZSTD_CCtx* Compressor() {
  struct Ctx {
    ZSTD_CCtx* c = ZSTD_createCCtx();
    Ctx() {
      ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 1);
      ZSTD_CCtx_setParameter(c, ZSTD_c_minMatch, 5);
      ZSTD_CCtx_setParameter(c, ZSTD_c_hashLog, 16);
    }
    ~Ctx() { ZSTD_freeCCtx(c); }
  };
  thread_local Ctx ctx;
  return ctx.c;
}

std::atomic<uint64_t> g_sink{0};  // results flow here so no work can be optimised away

// Runs work(block index) on `threads` threads at once, each for about `seconds` and each
// starting at its own place in the sample; returns the block bytes all of them processed per
// second of wall time, from the common start until the last thread is done.
template <typename Work>
double Throughput(unsigned threads, double seconds, size_t blocks, Work work) {
  std::latch ready(threads + 1);
  std::vector<uint64_t> done(threads);
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      ready.arrive_and_wait();
      auto begin = SteadyClock::now();
      size_t i = t * blocks / threads;
      uint64_t n = 0, acc = 0;
      do {
        acc += work(i % blocks);
        ++i;
        ++n;
      } while (SecondsSince(begin) < seconds);
      done[t] = n;
      g_sink += acc;
    });
  }
  ready.arrive_and_wait();
  auto begin = SteadyClock::now();
  for (auto& th : pool) th.join();
  double wall = SecondsSince(begin);
  uint64_t total = 0;
  for (uint64_t n : done) total += n;
  return static_cast<double>(total * kBlockBytes) / wall;
}

Result<CpuSpeeds> MeasureCpu(const Sample& s, const ChunkCodec& codec, unsigned threads, double seconds) {
  std::atomic<uint64_t> failures{0};
  const size_t n = s.blocks.size();
  CpuSpeeds c;
  c.hash = Throughput(threads, seconds, n, [&](size_t i) { return Sha256(s.blocks[i])[0]; });
  c.compress = Throughput(threads, seconds, n, [&](size_t i) -> uint64_t {
    thread_local std::vector<uint8_t> out(ZSTD_compressBound(kBlockBytes));
    const auto& b = s.blocks[i];
    size_t len = ZSTD_compress2(Compressor(), out.data(), out.size(), b.data(), b.size());
    if (ZSTD_isError(len)) ++failures;
    return len;
  });
  c.hash_compress_checksum = Throughput(threads, seconds, n, [&](size_t i) -> uint64_t {
    Digest id = codec.Id(s.blocks[i]);
    auto obj = codec.Encode(ObjectKind::kChunk, id, s.blocks[i]);
    if (!obj) { ++failures; return 0; }
    return obj->size();
  });
  c.decode_verify = Throughput(threads, seconds, n, [&](size_t i) -> uint64_t {
    thread_local std::vector<uint8_t> out(kBlockBytes);
    if (!codec.DecodeInto(ObjectKind::kChunk, s.ids[i], s.stored[i], out, true)) ++failures;
    return out[0];
  });
  if (failures > 0) return Internal("the chunk codec failed during the measurement");
  return c;
}

// ---- I/O figures ----

// Creates the temporary file the I/O figures use and unlinks it at once, so nothing is left
// behind whatever happens; the open descriptor keeps it alive until the end.
Result<UniqueFd> OpenScratch(const std::string& dir, uint64_t bytes) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    int err = errno;
    if (err == ENOENT) return NotFound("--dir " + dir + " does not exist");
    return std::unexpected(PosixError("--dir " + dir, err));
  }
  if (!S_ISDIR(st.st_mode)) return InvalidArgument("--dir " + dir + " is not a directory");
  std::string name = dir + "/.snapvol-benchmark-XXXXXX";
  int fd = ::mkstemp(name.data());
  if (fd < 0) {
    Error e = PosixError("cannot create a file in --dir " + dir, errno);
    return std::unexpected(Error(e.code(), e.message() + " (pass --dir a writable directory)"));
  }
  UniqueFd owned(fd);
  ::unlink(name.c_str());
  struct statvfs fs {};
  if (::fstatvfs(owned.get(), &fs) == 0) {
    uint64_t free_bytes = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
    if (free_bytes < bytes + kFreeSpaceMargin)
      return MakeError(ErrorCode::kNoSpace, "--dir " + dir + " has " + std::to_string(free_bytes >> 20) +
                                                " MiB free; the I/O test writes " + std::to_string(bytes >> 20) +
                                                " MiB (pass a smaller --size or another --dir)");
  }
  return owned;
}

struct IoSpeeds {
  double write = 0, write_fsync = 0, write_writeback_fsync = 0, write_direct_fsync = 0;
  double page_cache_read = 0;
};

// Writes `bytes` into fd (emptied first) around the page cache, `threads` calls in flight,
// then fsyncs; the speed, or 0 when the file system refuses direct I/O.
Result<double> MeasureDirectWrite(int fd, const std::string& what, uint64_t bytes, size_t threads,
                                  std::span<const uint8_t> pattern) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_DIRECT) != 0) return 0.0;
  struct Restore {
    int fd, flags;
    ~Restore() { ::fcntl(fd, F_SETFL, flags); }
  } restore{fd, flags};
  if (::ftruncate(fd, 0) != 0) return std::unexpected(PosixError("truncate " + what, errno));
  const uint64_t call = pattern.size(), calls = (bytes + call - 1) / call;
  std::atomic<uint64_t> next{0};
  std::atomic<int> failed_errno{0};
  auto begin = SteadyClock::now();
  std::vector<std::thread> workers;
  for (size_t t = 0; t < std::max<size_t>(1, threads); ++t)
    workers.emplace_back([&] {
      AlignedBuffer buf;
      buf.Reserve(call);
      std::memcpy(buf.data(), pattern.data(), call);
      for (uint64_t k; (k = next.fetch_add(1)) < calls && failed_errno == 0;) {
        buf.data()[0] = static_cast<uint8_t>(k);  // no two calls write the same bytes
        ssize_t n = ::pwrite(fd, buf.data(), call, static_cast<off_t>(k * call));
        if (n != static_cast<ssize_t>(call)) failed_errno = n < 0 ? errno : EIO;
      }
    });
  for (auto& w : workers) w.join();
  if (failed_errno == EINVAL) return 0.0;  // alignment refused: no direct I/O here
  if (failed_errno != 0) return std::unexpected(PosixError("direct write of " + what, failed_errno));
  RETURN_IF_ERROR(FsyncFd(fd, what));
  return static_cast<double>(calls * call) / SecondsSince(begin);
}

Result<IoSpeeds> MeasureIo(int fd, const std::string& dir, uint64_t bytes, double seconds, size_t threads) {
  // Random bytes, so a compressing or deduplicating file system cannot shortcut the writes.
  std::vector<uint8_t> buf(kIoCallBytes);
  std::mt19937_64 rng(7);
  FillRandom(rng, buf);
  const std::string what = "the temporary file in --dir " + dir;
  // Writes `bytes` from offset 0 into fresh blocks, optionally starting writeback after each
  // call (sync_file_range, as restore does: the final fsync then finds little left), then
  // fsyncs; returns the seconds until the last write returned and until the fsync did.
  auto pass = [&](bool early_writeback) -> Result<std::pair<double, double>> {
    if (::ftruncate(fd, 0) != 0) return std::unexpected(PosixError("truncate " + what, errno));
    auto begin = SteadyClock::now();
    for (uint64_t off = 0; off < bytes;) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), bytes - off));
      buf[0] = static_cast<uint8_t>(off >> 22);  // no two calls write the same bytes
      auto st = PwriteFull(fd, {buf.data(), n}, off);
      if (!st) return std::unexpected(st.error().WithContext("writing " + what));
      if (early_writeback)
        ::sync_file_range(fd, static_cast<off_t>(off), static_cast<off_t>(n), SYNC_FILE_RANGE_WRITE);
      off += n;
    }
    double written = SecondsSince(begin);
    RETURN_IF_ERROR(FsyncFd(fd, what));
    return std::pair{written, SecondsSince(begin)};
  };
  // Untimed: fill the page cache once and drop it again (the next pass truncates, which
  // discards dirty pages unwritten). A VM whose balloon handed idle memory back to the host
  // pays seconds per GiB to get it back; that pays it here instead of in the first timed pass.
  for (uint64_t off = 0; off < bytes; off += buf.size()) {
    auto st = PwriteFull(fd, {buf.data(), static_cast<size_t>(std::min<uint64_t>(buf.size(), bytes - off))}, off);
    if (!st) return std::unexpected(st.error().WithContext("writing " + what));
  }
  IoSpeeds io;
  const double b = static_cast<double>(bytes);
  ASSIGN_OR_RETURN(auto early, pass(true));
  io.write_writeback_fsync = b / early.second;
  ASSIGN_OR_RETURN(auto plain, pass(false));
  io.write = b / plain.first;
  io.write_fsync = b / plain.second;
  ASSIGN_OR_RETURN(io.write_direct_fsync, MeasureDirectWrite(fd, what, bytes, threads, buf));

  // One pass untimed makes sure every page is cached (the write left them there, unless
  // memory is short); then whole passes until `seconds` have gone by.
  auto read_all = [&]() -> Status {
    for (uint64_t off = 0; off < bytes;) {
      ASSIGN_OR_RETURN(size_t n, PreadFull(fd, buf, off));
      if (n == 0) return Internal(what + " is shorter than written");
      off += n;
    }
    return OkStatus();
  };
  RETURN_IF_ERROR(read_all());
  auto begin = SteadyClock::now();
  uint64_t passes = 0;
  do {
    RETURN_IF_ERROR(read_all());
    ++passes;
  } while (SecondsSince(begin) < seconds);
  io.page_cache_read = static_cast<double>(passes * bytes) / SecondsSince(begin);
  return io;
}

double Gb(double bytes_per_sec) { return bytes_per_sec / 1e9; }

// Rounded to 0.1 MB/s for output: more digits than these measurements can hold.
double Round(double v) { return v == 0 ? 0 : std::round(v * 1e4) / 1e4; }

}  // namespace

Result<BenchmarkReport> RunBenchmark(const BenchmarkOptions& o) {
  if (o.size_mib == 0) return InvalidArgument("--size must be at least 1 (MiB)");
  if (!(o.seconds > 0)) return InvalidArgument("--seconds must be positive");
  const uint64_t bytes = o.size_mib << 20;
  ASSIGN_OR_RETURN(UniqueFd scratch, OpenScratch(o.dir, bytes));

  BenchmarkReport r;
  r.threads = std::max(1u, std::thread::hardware_concurrency());
  r.block_bytes = kBlockBytes;
  r.text_blocks = kTextBlocks;
  r.random_blocks = kRandomBlocks;
  r.seconds = o.seconds;
  ChunkCodec plain(std::nullopt);
  ASSIGN_OR_RETURN(Sample sample, MakeSample(plain));
  r.text_ratio = sample.text_ratio;
  r.sample_ratio = sample.sample_ratio;
  ASSIGN_OR_RETURN(r.per_core, MeasureCpu(sample, plain, 1, o.seconds));
  ASSIGN_OR_RETURN(r.all_cores, MeasureCpu(sample, plain, r.threads, o.seconds));

  Key256 master;
  RETURN_IF_ERROR(RandomBytes(master));
  ASSIGN_OR_RETURN(KeySet keys, KeySet::Derive(master));
  ChunkCodec encrypted(std::move(keys));
  std::atomic<uint64_t> failures{0};
  r.encrypted_per_core = Throughput(1, o.seconds, sample.blocks.size(), [&](size_t i) -> uint64_t {
    Digest id = encrypted.Id(sample.blocks[i]);
    auto obj = encrypted.Encode(ObjectKind::kChunk, id, sample.blocks[i]);
    if (!obj) { ++failures; return 0; }
    return obj->size();
  });
  if (failures > 0) return Internal("the encrypting chunk codec failed during the measurement");

  char resolved[PATH_MAX];
  r.dir = ::realpath(o.dir.c_str(), resolved) ? resolved : o.dir;
  r.io_bytes = bytes;
  ASSIGN_OR_RETURN(IoSpeeds io, MeasureIo(scratch.get(), o.dir, bytes, o.seconds, r.threads));
  r.write = io.write;
  r.write_fsync = io.write_fsync;
  r.write_writeback_fsync = io.write_writeback_fsync;
  r.write_direct_fsync = io.write_direct_fsync;
  r.page_cache_read = io.page_cache_read;
  return r;
}

void PrintBenchmarkReport(const BenchmarkReport& r, bool json, std::ostream& out) {
  double full = std::min(r.all_cores.hash_compress_checksum, r.page_cache_read);
  double incremental = std::min(r.all_cores.hash, r.page_cache_read);
  double write_sync = std::max({r.write_fsync, r.write_writeback_fsync, r.write_direct_fsync});
  double restore = std::min(r.all_cores.decode_verify, write_sync);
  if (json) {
    auto speeds = [](const CpuSpeeds& c) {
      return nlohmann::json{{"hash_gbps", Round(Gb(c.hash))},
                            {"compress_gbps", Round(Gb(c.compress))},
                            {"hash_compress_checksum_gbps", Round(Gb(c.hash_compress_checksum))},
                            {"decode_verify_gbps", Round(Gb(c.decode_verify))}};
    };
    nlohmann::json per_core = speeds(r.per_core);
    per_core["hash_compress_checksum_encrypted_gbps"] = Round(Gb(r.encrypted_per_core));
    nlohmann::json j = {
        {"threads", r.threads},
        {"block_bytes", r.block_bytes},
        {"seconds_per_figure", r.seconds},
        {"sample", {{"text_blocks", r.text_blocks}, {"random_blocks", r.random_blocks},
                    {"text_compression_ratio", Round(r.text_ratio)},
                    {"stored_ratio", Round(r.sample_ratio)}}},
        {"per_core", per_core},
        {"all_cores", speeds(r.all_cores)},
        {"io", {{"dir", r.dir}, {"size_bytes", r.io_bytes}, {"write_gbps", Round(Gb(r.write))},
                {"write_fsync_gbps", Round(Gb(r.write_fsync))},
                {"write_writeback_fsync_gbps", Round(Gb(r.write_writeback_fsync))},
                {"write_direct_fsync_gbps", Round(Gb(r.write_direct_fsync))},
                {"write_sync_gbps", Round(Gb(write_sync))},
                {"page_cache_read_gbps", Round(Gb(r.page_cache_read))}}},
        {"bounds", {{"full_snapshot_gbps", Round(Gb(full))}, {"incremental_gbps", Round(Gb(incremental))},
                    {"restore_gbps", Round(Gb(restore))}}}};
    out << j.dump(2) << "\n";
    return;
  }
  char line[256];
  auto row = [&](const char* what, double one, double all) {
    if (all > 0) std::snprintf(line, sizeof line, "  %-44s %7.2f GB/s  %7.2f GB/s\n", what, Gb(one), Gb(all));
    else std::snprintf(line, sizeof line, "  %-44s %7.2f GB/s\n", what, Gb(one));
    out << line;
  };
  std::snprintf(line, sizeof line,
                "512 KiB blocks, %zu text-like (zstd -1: %.1fx) and %zu random; %.2g s per figure\n",
                r.text_blocks, r.text_ratio, r.random_blocks, r.seconds);
  out << line;
  std::string all = std::to_string(r.threads) + (r.threads == 1 ? " thread" : " threads");
  std::snprintf(line, sizeof line, "  %-44s %12s  %12s\n", "", "1 thread", all.c_str());
  out << line;
  row("SHA-256 (chunk id)", r.per_core.hash, r.all_cores.hash);
  row("zstd level 1 compress", r.per_core.compress, r.all_cores.compress);
  row("hash + compress + checksum (plain store)", r.per_core.hash_compress_checksum,
      r.all_cores.hash_compress_checksum);
  row("the same on an encrypted store (AES-256-GCM)", r.encrypted_per_core, 0);
  row("decode + verify (checksum, zstd, SHA-256)", r.per_core.decode_verify, r.all_cores.decode_verify);
  std::snprintf(line, sizeof line, "%llu MiB in %s (%zu MiB calls):\n",
                static_cast<unsigned long long>(r.io_bytes >> 20), r.dir.c_str(), kIoCallBytes >> 20);
  out << line;
  row("write (until the last call returns)", r.write, 0);
  row("write + fsync at the end", r.write_fsync, 0);
  row("write, writeback started per call, + fsync", r.write_writeback_fsync, 0);
  if (r.write_direct_fsync > 0) {
    char what[96];
    std::snprintf(what, sizeof what, "O_DIRECT write, %u in flight, + fsync", static_cast<unsigned>(r.threads));
    row(what, r.write_direct_fsync, 0);
  } else {
    out << "  O_DIRECT write: not offered by this file system\n";
  }
  row("page-cache read", r.page_cache_read, 0);
  out << "bounds, in GB/s of non-zero blocks (zero blocks cost a zero check only):\n";
  row("full snapshot (hash+compress+checksum, read)", full, 0);
  row("incremental, full read (SHA-256, read)", incremental, 0);
  row("restore (decode + verify, write + fsync)", restore, 0);
  std::snprintf(line, sizeof line, "  a full snapshot also writes its stored bytes (here %.2fx smaller) at "
                "the faster write + fsync speed\n", r.sample_ratio);
  out << line;
}

void AddBenchmarkCommand(CLI::App& app, const std::string* data_dir, const std::string* output,
                         std::function<void()>* action, int* exit_code) {
  auto* cmd = app.add_subcommand(
      "benchmark",
      "Measure this machine's bound for each path a snapshot or restore takes: SHA-256, zstd level 1 and the\n"
      "chunk codec on 512 KiB blocks (1 thread, and one per core at once), reading a file from the page\n"
      "cache, and writing one until it is on the device (fsync at the end; with writeback started after\n"
      "each call; and around the page cache, as restore does). Takes about 10 x --seconds plus the I/O.");
  auto o = std::make_shared<BenchmarkOptions>();
  auto json = std::make_shared<bool>(false);
  cmd->add_option("--dir", o->dir,
                  "Directory for the I/O test's temporary file (removed at once; default: the data dir's\n"
                  "local store if --data-dir names one, else the current directory)");
  cmd->add_option("--size", o->size_mib, "MiB written, fsynced and read back by the I/O test (default 256)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 20));
  cmd->add_option("--seconds", o->seconds, "Time per CPU figure and for the page-cache reads (default 0.5)")
      ->check(CLI::Range(0.001, 600.0));
  cmd->add_flag("--json", *json, "Print one JSON document (the same as -o json)");
  cmd->callback([=] {
    *action = [=] {
      BenchmarkOptions opts = *o;
      if (opts.dir.empty()) {
        struct stat st {};
        std::string store = *data_dir + "/store";
        opts.dir = !data_dir->empty() && ::stat(store.c_str(), &st) == 0 && S_ISDIR(st.st_mode) ? store : ".";
      }
      auto report = RunBenchmark(opts);
      if (!report) {
        std::cerr << "snapvol: error: " << report.error().message() << "\n";
        *exit_code = 1;
        return;
      }
      PrintBenchmarkReport(*report, *json || *output == "json", std::cout);
      *exit_code = 0;
    };
  });
}

}  // namespace snapvol
