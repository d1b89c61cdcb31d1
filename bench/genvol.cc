// snapvol-genvol: deterministic generator for benchmark volume images.
//
//   snapvol-genvol create --size BYTES [--seed N] [--no-holes] OUT
//   snapvol-genvol mutate --percent P [--block-size 524288] [--seed N] FILE
//
// `create` lays the image out as a sequence of runs (4 KiB-granular lengths between
// 64 KiB and 8 MiB).  Each run is one of
//   * zero   - ~35% of the bytes; left as holes unless --no-holes,
//   * text   - ~35%; synthetic syslog / access-log / JSON-log / prose lines that
//              compress roughly 3-5x with zstd -1,
//   * random - ~30%; xoshiro256** output, incompressible.
// The run layout and every run's contents are pure functions of (seed, size), so the
// same arguments always produce the same bytes, with or without holes.
//
// `mutate` overwrites P% of the block-size-aligned blocks, chosen uniformly at random
// (deterministically from the seed), with fresh random data, in place.
//
// Only the C++ standard library and POSIX file I/O are used.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

// ---------------------------------------------------------------------------
// Random number generation
// ---------------------------------------------------------------------------

// splitmix64: used to expand seeds and to derive independent per-run seeds.
constexpr uint64_t SplitMix(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Derives a seed for a sub-stream (a run, a block, ...) from the user seed.
constexpr uint64_t DeriveSeed(uint64_t seed, uint64_t domain, uint64_t index) {
  uint64_t s = seed;
  uint64_t a = SplitMix(s) ^ domain;
  uint64_t b = SplitMix(a) ^ index;
  return SplitMix(b);
}

// Domains keep the sub-streams of different purposes apart.
constexpr uint64_t kDomainLayout = 0x6c61796f7574ULL;  // "layout"
constexpr uint64_t kDomainRun = 0x72756eULL;           // "run"
constexpr uint64_t kDomainMutatePick = 0x7069636bULL;  // "pick"
constexpr uint64_t kDomainMutateData = 0x64617461ULL;  // "data"

// xoshiro256**: fast, good-quality 64-bit generator.
class Xoshiro256 {
 public:
  explicit Xoshiro256(uint64_t seed) {
    for (auto& word : s_) word = SplitMix(seed);
  }

  uint64_t Next() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

  // Uniform-ish integer in [0, n) (Lemire's multiply-shift; the tiny bias is irrelevant).
  uint64_t Below(uint64_t n) {
    __extension__ using U128 = unsigned __int128;  // GCC/Clang extension
    return static_cast<uint64_t>((static_cast<U128>(Next()) * n) >> 64);
  }

  // Integer in [lo, hi].
  uint64_t Between(uint64_t lo, uint64_t hi) { return lo + Below(hi - lo + 1); }

  // Fills `n` bytes with random data.
  void Fill(char* out, size_t n) {
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
      // Four independent words per iteration keeps the loop store-bound.
      uint64_t w[4] = {Next(), Next(), Next(), Next()};
      std::memcpy(out + i, w, 32);
    }
    for (; i < n; i += 8) {
      uint64_t w = Next();
      std::memcpy(out + i, &w, std::min<size_t>(8, n - i));
    }
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

[[noreturn]] void Die(const std::string& msg) {
  std::fprintf(stderr, "snapvol-genvol: %s\n", msg.c_str());
  std::exit(1);
}

[[noreturn]] void DieErrno(const std::string& what) { Die(what + ": " + std::strerror(errno)); }

// Parses "123", "64K", "512M", "2G", "1T", "2GiB" (binary multiples).
std::optional<uint64_t> ParseSize(std::string_view text) {
  uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr == text.data()) return std::nullopt;
  std::string_view suffix = text.substr(static_cast<size_t>(ptr - text.data()));
  if (suffix.ends_with("iB"))
    suffix.remove_suffix(2);
  else if (suffix.size() == 2 && suffix.ends_with("B"))
    suffix.remove_suffix(1);
  unsigned shift = 0;
  if (suffix.empty() || suffix == "B")
    shift = 0;
  else if (suffix == "K" || suffix == "k")
    shift = 10;
  else if (suffix == "M" || suffix == "m")
    shift = 20;
  else if (suffix == "G" || suffix == "g")
    shift = 30;
  else if (suffix == "T" || suffix == "t")
    shift = 40;
  else
    return std::nullopt;
  if (shift && value > (UINT64_MAX >> shift)) return std::nullopt;
  return value << shift;
}

std::optional<uint64_t> ParseUint(std::string_view text) {
  uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  return value;
}

void WriteAll(int fd, const char* data, size_t len, uint64_t offset) {
  while (len > 0) {
    ssize_t n = ::pwrite(fd, data, len, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      DieErrno("pwrite");
    }
    data += n;
    len -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
}

std::string HumanBytes(uint64_t bytes) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return buf;
}

// ---------------------------------------------------------------------------
// Text generation
// ---------------------------------------------------------------------------

// Fixed vocabularies.  Their content is part of the image format: changing them changes
// the generated bytes.
constexpr std::string_view kWords[] = {
    "the",      "of",         "and",         "to",         "in",          "for",
    "is",       "on",         "that",        "by",         "this",        "with",
    "from",     "at",         "not",         "be",         "are",         "was",
    "all",      "new",        "more",        "an",         "has",         "will",
    "can",      "request",    "response",    "connection", "session",     "user",
    "client",   "server",     "timeout",     "error",      "warning",     "failed",
    "success",  "started",    "stopped",     "finished",   "retry",       "backend",
    "frontend", "cache",      "miss",        "hit",        "queue",       "worker",
    "thread",   "process",    "memory",      "disk",       "network",     "interface",
    "address",  "route",      "packet",      "socket",     "handshake",   "certificate",
    "expired",  "valid",      "invalid",     "token",      "refresh",     "login",
    "logout",   "permission", "denied",      "granted",    "config",      "reload",
    "update",   "upgrade",    "package",     "install",    "remove",      "service",
    "unit",     "mount",      "device",      "partition",  "filesystem",  "journal",
    "commit",   "rollback",   "transaction", "database",   "table",       "index",
    "query",    "slow",       "fast",        "latency",    "throughput",  "bytes",
    "records",  "rows",       "batch",       "scheduled",  "cron",        "job",
    "task",     "pending",    "running",     "complete",   "aborted",     "signal",
    "received", "sent",       "closed",      "opened",     "listening",   "port",
    "host",     "peer",       "upstream",    "downstream", "health",      "check",
    "passed",   "degraded",   "recovered",   "leader",     "follower",    "election",
    "term",     "snapshot",   "compaction",  "segment",    "offset",      "replica",
    "sync",     "async",      "flush",       "write",      "read",        "seek",
    "block",    "inode",      "kernel",      "module",     "driver",      "firmware",
    "usb",      "pci",        "cpu",         "core",       "temperature", "throttle",
    "power",    "battery",    "suspend",     "resume",     "wake",        "sleep",
    "idle",     "busy",       "load",        "average",    "minute",      "second"};

constexpr std::string_view kPrograms[] = {
    "sshd",     "systemd",        "kernel",         "CRON",         "nginx",    "postgres",
    "dockerd",  "kubelet",        "NetworkManager", "dbus-daemon",  "rsyslogd", "containerd",
    "sudo",     "systemd-logind", "chronyd",        "polkitd",      "snapd",    "apt",
    "dhclient", "smartd",         "udisksd",        "avahi-daemon", "cupsd",    "postfix/smtpd"};

constexpr std::string_view kServices[] = {"billing",  "auth",      "catalog", "search",
                                          "checkout", "inventory", "gateway", "notifier",
                                          "reports",  "scheduler", "storage", "users"};

constexpr std::string_view kLevels[] = {"debug", "info", "info", "warn", "error"};

constexpr std::string_view kPathParts[] = {
    "var", "lib", "usr", "share",  "etc",    "opt",    "srv",   "home",   "log",   "cache",
    "api", "v1",  "v2",  "static", "assets", "images", "users", "orders", "items", "tmp"};

constexpr std::string_view kMethods[] = {"GET", "GET", "GET", "POST", "PUT", "DELETE"};

constexpr std::string_view kStatus[] = {"200", "200", "200", "200", "304", "404", "500", "201"};

constexpr std::string_view kAgents[] = {
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 "
    "Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "curl/7.88.1",
    "Go-http-client/1.1",
    "python-requests/2.31.0",
    "Prometheus/2.45.0"};

constexpr std::string_view kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
struct CivilDate {
  int year;
  unsigned month;  // 1..12
  unsigned day;    // 1..31
};

CivilDate CivilFromDays(int64_t z) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {static_cast<int>(y + (m <= 2)), m, d};
}

// Produces an endless stream of log-like text lines.  Lines are written straight into the
// output while at least kMaxLine bytes remain; near the end of a Fill() call they go
// through a small buffer instead, and a cut line continues in the next call.
class TextGen {
 public:
  // Upper bound on one generated line (the longest is a 3-sentence prose line, ~550 B).
  static constexpr size_t kMaxLine = 1024;

  // `start_seconds` is the Unix time of the first line.
  TextGen(uint64_t seed, int64_t start_seconds) : rng_(seed), now_(start_seconds) {}

  void Fill(char* out, size_t n) {
    // First drain what is left of a line cut by the previous call.
    size_t take = std::min(n, pending_len_ - pending_pos_);
    std::memcpy(out, pending_ + pending_pos_, take);
    pending_pos_ += take;
    out += take;
    n -= take;
    // Fast path: generate directly into the output.
    while (n >= kMaxLine) {
      p_ = out;
      MakeLine();
      const size_t len = static_cast<size_t>(p_ - out);
      out += len;
      n -= len;
    }
    // Tail: generate into the pending buffer and copy the part that fits.
    while (n > 0) {
      p_ = pending_;
      MakeLine();
      pending_len_ = static_cast<size_t>(p_ - pending_);
      pending_pos_ = std::min(n, pending_len_);
      std::memcpy(out, pending_, pending_pos_);
      out += pending_pos_;
      n -= pending_pos_;
    }
  }

 private:
  template <size_t N>
  std::string_view Pick(const std::string_view (&list)[N]) {
    return list[rng_.Below(N)];
  }

  void Put(std::string_view s) {
    std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
  }
  void Put(char c) { *p_++ = c; }

  void PutDec(uint64_t v) { p_ = std::to_chars(p_, p_ + 24, v).ptr; }

  // Zero-padded decimal with exactly `width` digits.
  void PutDecFixed(uint64_t v, int width) {
    for (int i = width - 1; i >= 0; --i) {
      p_[i] = static_cast<char>('0' + v % 10);
      v /= 10;
    }
    p_ += width;
  }

  void PutHex(uint64_t v, int digits) {
    static constexpr char kHex[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; --i) {
      p_[i] = kHex[v & 15];
      v >>= 4;
    }
    p_ += digits;
  }

  void PutWords(unsigned count) {
    for (unsigned i = 0; i < count; ++i) {
      if (i) Put(' ');
      Put(Pick(kWords));
    }
  }

  void PutPath(unsigned depth) {
    for (unsigned i = 0; i < depth; ++i) {
      Put('/');
      Put(Pick(kPathParts));
    }
  }

  void PutIp() {
    Put("10.");
    PutDec(rng_.Below(4));
    Put('.');
    PutDec(rng_.Below(32));
    Put('.');
    PutDec(1 + rng_.Below(254));
  }

  // Advances the clock by 0-2 seconds and refreshes the cached date fields.
  void Tick() {
    now_ += static_cast<int64_t>(rng_.Below(3));
    const int64_t days = now_ / 86400;
    const int64_t secs = now_ % 86400;
    if (days != cached_days_) {
      cached_days_ = days;
      date_ = CivilFromDays(days);
    }
    hour_ = static_cast<unsigned>(secs / 3600);
    minute_ = static_cast<unsigned>(secs / 60 % 60);
    second_ = static_cast<unsigned>(secs % 60);
  }

  void PutTime() {
    PutDecFixed(hour_, 2);
    Put(':');
    PutDecFixed(minute_, 2);
    Put(':');
    PutDecFixed(second_, 2);
  }

  void PutIsoDate() {
    PutDecFixed(static_cast<uint64_t>(date_.year), 4);
    Put('-');
    PutDecFixed(date_.month, 2);
    Put('-');
    PutDecFixed(date_.day, 2);
  }

  void MakeLine() {
    Tick();
    const uint64_t kind = rng_.Below(100);
    if (kind < 50) {
      SyslogLine();
    } else if (kind < 70) {
      AccessLogLine();
    } else if (kind < 85) {
      JsonLogLine();
    } else {
      ProseLine();
    }
  }

  // "Mar  5 12:34:56 web-03 sshd[1234]: word word ... key=value"
  void SyslogLine() {
    Put(kMonths[date_.month - 1]);
    Put(' ');
    if (date_.day < 10) Put(' ');
    PutDec(date_.day);
    Put(' ');
    PutTime();
    Put(" host-");
    PutDecFixed(rng_.Below(8), 2);
    Put(' ');
    Put(Pick(kPrograms));
    Put('[');
    PutDec(100 + rng_.Below(4000));
    Put("]: ");
    PutWords(3 + static_cast<unsigned>(rng_.Below(8)));
    switch (rng_.Below(4)) {
      case 0:
        Put(" path=");
        PutPath(2 + static_cast<unsigned>(rng_.Below(3)));
        break;
      case 1:
        Put(" from ");
        PutIp();
        Put(" port ");
        PutDec(30000 + rng_.Below(30000));
        break;
      case 2:
        Put(" (code=");
        PutDec(rng_.Below(4));
        Put(", status=");
        Put(Pick(kWords));
        Put(')');
        break;
      default:
        break;
    }
    Put('\n');
  }

  // Combined log format.
  void AccessLogLine() {
    PutIp();
    Put(" - - [");
    PutDecFixed(date_.day, 2);
    Put('/');
    Put(kMonths[date_.month - 1]);
    Put('/');
    PutDecFixed(static_cast<uint64_t>(date_.year), 4);
    Put(':');
    PutTime();
    Put(" +0000] \"");
    Put(Pick(kMethods));
    Put(' ');
    PutPath(1 + static_cast<unsigned>(rng_.Below(3)));
    if (rng_.Below(2)) {
      Put('/');
      PutDec(rng_.Below(100000));
    }
    if (rng_.Below(3) == 0) {
      Put("?page=");
      PutDec(rng_.Below(20));
    }
    Put(" HTTP/1.1\" ");
    Put(Pick(kStatus));
    Put(' ');
    PutDec(rng_.Below(60000));
    Put(" \"-\" \"");
    Put(Pick(kAgents));
    Put("\"\n");
  }

  // Structured JSON application log.
  void JsonLogLine() {
    Put("{\"ts\":\"");
    PutIsoDate();
    Put('T');
    PutTime();
    Put('.');
    PutDecFixed(rng_.Below(1000), 3);
    Put("Z\",\"level\":\"");
    Put(Pick(kLevels));
    Put("\",\"svc\":\"");
    Put(Pick(kServices));
    Put("\",\"msg\":\"");
    PutWords(2 + static_cast<unsigned>(rng_.Below(6)));
    Put("\",\"req_id\":\"");
    PutHex(rng_.Next(), 12);
    Put("\",\"latency_ms\":");
    PutDec(rng_.Below(2000));
    Put("}\n");
  }

  // Plain prose / documentation-like text.
  void ProseLine() {
    const unsigned sentences = 1 + static_cast<unsigned>(rng_.Below(3));
    for (unsigned s = 0; s < sentences; ++s) {
      if (s) Put(' ');
      std::string_view first = Pick(kWords);
      Put(static_cast<char>(first[0] - 'a' + 'A'));
      Put(first.substr(1));
      Put(' ');
      PutWords(4 + static_cast<unsigned>(rng_.Below(10)));
      Put('.');
    }
    Put('\n');
  }

  Xoshiro256 rng_;
  int64_t now_;
  int64_t cached_days_ = -1;
  CivilDate date_{};
  unsigned hour_ = 0, minute_ = 0, second_ = 0;
  char* p_ = nullptr;       // write cursor of the line being generated
  char pending_[kMaxLine];  // a line that did not fit into the previous Fill()
  size_t pending_len_ = 0;
  size_t pending_pos_ = 0;
};

// ---------------------------------------------------------------------------
// create
// ---------------------------------------------------------------------------

enum class Kind { kZero = 0, kText = 1, kRandom = 2 };
constexpr const char* kKindNames[] = {"zero", "text", "random"};

struct Run {
  uint64_t offset;
  uint64_t length;
  Kind kind;
};

constexpr uint64_t kRunUnit = 4096;     // run lengths are multiples of this
constexpr uint64_t kMinRun = 64 << 10;  // 64 KiB
constexpr uint64_t kMaxRun = 8 << 20;   // 8 MiB
// Target byte shares of zero / text / random data, in percent.
constexpr uint64_t kTargetPercent[3] = {35, 35, 30};

// Splits the image into runs.  Each run's kind is drawn with probability proportional to
// how far that kind still is below its target share, so the totals land close to the
// targets even for small images, while the order stays random.
std::vector<Run> PlanLayout(uint64_t size, uint64_t seed) {
  Xoshiro256 rng(DeriveSeed(seed, kDomainLayout, 0));
  std::vector<Run> runs;
  double assigned[3] = {0, 0, 0};
  uint64_t offset = 0;
  while (offset < size) {
    uint64_t length = rng.Between(kMinRun / kRunUnit, kMaxRun / kRunUnit) * kRunUnit;
    length = std::min(length, size - offset);

    double deficit[3];
    double total = 0;
    for (int k = 0; k < 3; ++k) {
      // Deficit after placing this run elsewhere, clamped at zero; +1 keeps every kind
      // possible so the layout never becomes fully predictable.
      double target = static_cast<double>(size) * static_cast<double>(kTargetPercent[k]) / 100;
      deficit[k] = std::max(0.0, target - assigned[k]) + 1;
      total += deficit[k];
    }
    // Draw a point in [0, total) with 53-bit resolution.
    double r = static_cast<double>(rng.Next() >> 11) * 0x1.0p-53 * total;
    int kind = 0;
    while (kind < 2 && r >= deficit[kind]) {
      r -= deficit[kind];
      ++kind;
    }
    assigned[kind] += static_cast<double>(length);
    runs.push_back({offset, length, static_cast<Kind>(kind)});
    offset += length;
  }
  return runs;
}

constexpr size_t kBufferSize = 8 << 20;

int CmdCreate(uint64_t size, uint64_t seed, bool holes, const std::string& out) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<Run> runs = PlanLayout(size, seed);

  int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) DieErrno("open " + out);
  // Setting the size first leaves every byte we do not write as a hole.
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) DieErrno("ftruncate " + out);

  std::unique_ptr<char[]> buffer(new char[kBufferSize]);
  uint64_t bytes_by_kind[3] = {0, 0, 0};
  uint64_t runs_by_kind[3] = {0, 0, 0};

  // Buffered writer: coalesces consecutive written runs into kBufferSize writes.
  uint64_t buf_offset = 0;  // file offset of buffer[0]
  size_t buf_fill = 0;
  auto flush = [&] {
    if (buf_fill) WriteAll(fd, buffer.get(), buf_fill, buf_offset);
    buf_offset += buf_fill;
    buf_fill = 0;
  };

  for (size_t i = 0; i < runs.size(); ++i) {
    const Run& run = runs[i];
    const int k = static_cast<int>(run.kind);
    bytes_by_kind[k] += run.length;
    runs_by_kind[k] += 1;

    if (run.kind == Kind::kZero && holes) {
      flush();
      buf_offset = run.offset + run.length;  // skip: stays a hole
      continue;
    }

    // Every run gets its own generator, seeded from (seed, run index).
    const uint64_t run_seed = DeriveSeed(seed, kDomainRun, i);
    std::optional<Xoshiro256> random_gen;
    std::optional<TextGen> text_gen;
    if (run.kind == Kind::kRandom) random_gen.emplace(run_seed);
    // Text timestamps start at a fixed date and advance with the position on disk.
    if (run.kind == Kind::kText) {
      text_gen.emplace(run_seed, int64_t{1700000000} + static_cast<int64_t>(run.offset >> 12));
    }

    uint64_t remaining = run.length;
    while (remaining > 0) {
      if (buf_fill == kBufferSize) flush();
      const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining, kBufferSize - buf_fill));
      char* dst = buffer.get() + buf_fill;
      switch (run.kind) {
        case Kind::kZero:
          std::memset(dst, 0, n);
          break;
        case Kind::kText:
          text_gen->Fill(dst, n);
          break;
        case Kind::kRandom:
          random_gen->Fill(dst, n);
          break;
      }
      buf_fill += n;
      remaining -= n;
    }
  }
  flush();
  if (::close(fd) != 0) DieErrno("close " + out);

  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("created %s: %llu bytes, seed %llu, %zu runs, %s\n", out.c_str(),
              static_cast<unsigned long long>(size), static_cast<unsigned long long>(seed),
              runs.size(), holes ? "sparse (zero runs are holes)" : "fully allocated");
  for (int k = 0; k < 3; ++k) {
    std::printf(
        "  %-6s %4llu runs %12s (%4.1f%%)\n", kKindNames[k],
        static_cast<unsigned long long>(runs_by_kind[k]), HumanBytes(bytes_by_kind[k]).c_str(),
        size ? 100.0 * static_cast<double>(bytes_by_kind[k]) / static_cast<double>(size) : 0.0);
  }
  std::printf("  %.2f s, %.2f GB/s\n", secs,
              secs > 0 ? static_cast<double>(size) / secs / 1e9 : 0.0);
  return 0;
}

// ---------------------------------------------------------------------------
// mutate
// ---------------------------------------------------------------------------

int CmdMutate(double percent, uint64_t block_size, uint64_t seed, const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) DieErrno("open " + path);
  struct stat st {};
  if (::fstat(fd, &st) != 0) DieErrno("fstat " + path);
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  const uint64_t nblocks = (size + block_size - 1) / block_size;  // last one may be partial

  uint64_t count =
      static_cast<uint64_t>(std::llround(static_cast<double>(nblocks) * percent / 100));
  if (percent > 0 && count == 0 && nblocks > 0) count = 1;
  count = std::min(count, nblocks);

  // Partial Fisher-Yates shuffle: the first `count` entries become a uniform random
  // sample of distinct block indexes.
  Xoshiro256 pick(DeriveSeed(seed, kDomainMutatePick, 0));
  std::vector<uint64_t> index(nblocks);
  for (uint64_t i = 0; i < nblocks; ++i) index[i] = i;
  for (uint64_t i = 0; i < count; ++i) {
    const uint64_t j = i + pick.Below(nblocks - i);
    std::swap(index[i], index[j]);
  }
  index.resize(count);
  std::sort(index.begin(), index.end());  // write in disk order

  std::vector<char> data(block_size);
  for (uint64_t block : index) {
    const uint64_t offset = block * block_size;
    const size_t len = static_cast<size_t>(std::min(block_size, size - offset));
    // Data depends on (seed, block) only, so the result is independent of write order.
    Xoshiro256 gen(DeriveSeed(seed, kDomainMutateData, block));
    gen.Fill(data.data(), len);
    WriteAll(fd, data.data(), len, offset);
  }
  if (::close(fd) != 0) DieErrno("close " + path);

  std::printf("mutated %llu of %llu blocks (%.3f%%) of %llu bytes in %s\n",
              static_cast<unsigned long long>(count), static_cast<unsigned long long>(nblocks),
              nblocks ? 100.0 * static_cast<double>(count) / static_cast<double>(nblocks) : 0.0,
              static_cast<unsigned long long>(block_size), path.c_str());
  return 0;
}

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------

void Usage(FILE* f) {
  std::fputs(
      "usage:\n"
      "  snapvol-genvol create --size BYTES [--seed N] [--no-holes] OUT\n"
      "      Write a deterministic volume image of BYTES (suffix K/M/G/T = binary units):\n"
      "      ~35% zeros (holes unless --no-holes), ~35% log-like text, ~30% random,\n"
      "      in runs of 64 KiB..8 MiB.  Default seed 1.\n"
      "  snapvol-genvol mutate --percent P [--block-size 524288] [--seed N] FILE\n"
      "      Overwrite P% of the block-size-aligned blocks of FILE in place with new\n"
      "      random data (blocks picked deterministically from the seed).\n",
      f);
}

struct Args {
  std::string command;
  std::vector<std::string> positional;
  std::optional<std::string> size, seed, percent, block_size;
  bool no_holes = false;
};

Args ParseArgs(int argc, char** argv) {
  Args args;
  if (argc < 2) {
    Usage(stderr);
    std::exit(2);
  }
  args.command = argv[1];
  if (args.command == "-h" || args.command == "--help") {
    Usage(stdout);
    std::exit(0);
  }
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    std::optional<std::string> inline_value;
    if (arg.starts_with("--")) {
      if (auto eq = arg.find('='); eq != std::string::npos) {
        inline_value = arg.substr(eq + 1);
        arg.resize(eq);
      }
    }
    auto value = [&]() -> std::string {
      if (inline_value) return *inline_value;
      if (i + 1 >= argc) Die("missing value for " + arg);
      return argv[++i];
    };
    if (arg == "--size")
      args.size = value();
    else if (arg == "--seed")
      args.seed = value();
    else if (arg == "--percent")
      args.percent = value();
    else if (arg == "--block-size")
      args.block_size = value();
    else if (arg == "--no-holes")
      args.no_holes = true;
    else if (arg == "-h" || arg == "--help") {
      Usage(stdout);
      std::exit(0);
    } else if (arg.starts_with("-") && arg != "-")
      Die("unknown option " + arg);
    else
      args.positional.push_back(arg);
  }
  return args;
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = ParseArgs(argc, argv);

  uint64_t seed = 1;
  if (args.seed) {
    auto v = ParseUint(*args.seed);
    if (!v) Die("invalid --seed " + *args.seed);
    seed = *v;
  }
  if (args.positional.size() != 1) {
    Usage(stderr);
    Die("expected exactly one file argument");
  }
  const std::string& file = args.positional[0];

  if (args.command == "create") {
    if (!args.size) Die("create needs --size");
    auto size = ParseSize(*args.size);
    if (!size) Die("invalid --size " + *args.size);
    return CmdCreate(*size, seed, !args.no_holes, file);
  }
  if (args.command == "mutate") {
    if (!args.percent) Die("mutate needs --percent");
    char* end = nullptr;
    const double percent = std::strtod(args.percent->c_str(), &end);
    if (end == args.percent->c_str() || *end != '\0' || !(percent >= 0 && percent <= 100)) {
      Die("invalid --percent " + *args.percent + " (expected 0..100)");
    }
    uint64_t block_size = 524288;
    if (args.block_size) {
      auto v = ParseSize(*args.block_size);
      if (!v || *v == 0) Die("invalid --block-size " + *args.block_size);
      block_size = *v;
    }
    return CmdMutate(percent, block_size, seed, file);
  }
  Usage(stderr);
  Die("unknown command " + args.command);
}
