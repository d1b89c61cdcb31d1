// `snapvol benchmark`: this machine's bound for each path a snapshot or restore takes —
// SHA-256, zstd and the chunk codec per core and on all cores at once (measured together,
// not multiplied), reading a file from the page cache, and writing one until it is on the
// device — so benchmark scripts can report snapvol's figures as a share of them.
// Thread-safety: RunBenchmark starts and joins its own threads; call it from one thread.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <ostream>
#include <string>

#include "core/status.h"

namespace snapvol {

struct BenchmarkOptions {
  std::string dir;           // where the I/O figures write their temporary file; must exist
  uint64_t size_mib = 256;   // bytes written and read back by the I/O figures
  double seconds = 0.5;      // time spent on each CPU figure (and on the page-cache reads)
};

// Speeds in bytes per second of block data (1 GB = 1e9 B when printed).
struct CpuSpeeds {
  double hash = 0;                    // SHA-256 of the block (a plain store's chunk id)
  double compress = 0;                // zstd level 1 as the chunk codec sets it up
  double hash_compress_checksum = 0;  // id + ChunkCodec::Encode on a plain store
  double decode_verify = 0;           // ChunkCodec::DecodeInto with the id check, as restore reads
};

struct BenchmarkReport {
  unsigned threads = 0;  // std::thread::hardware_concurrency(), at least 1
  size_t block_bytes = 0;
  size_t text_blocks = 0, random_blocks = 0;
  double text_ratio = 0;   // plaintext / zstd output over the text-like blocks
  double sample_ratio = 0;  // plaintext / stored bytes over all sample blocks (random ones kept raw)
  double seconds = 0;
  CpuSpeeds per_core;
  CpuSpeeds all_cores;
  double encrypted_per_core = 0;  // HMAC id + Encode on an encrypted store (AES-256-GCM)
  std::string dir;
  uint64_t io_bytes = 0;
  double write = 0;                  // buffered 4 MiB pwrite()s until the last one returns
  double write_fsync = 0;            // the same plus one fsync at the end
  double write_writeback_fsync = 0;  // writeback started after each call + fsync
  double write_direct_fsync = 0;     // O_DIRECT writes (as restore does), one thread per core,
                                     // + fsync; 0 where the file system offers no direct I/O
  double page_cache_read = 0;        // 4 MiB pread()s of the file just written and synced
};

// The temporary file is created in options.dir first, so a directory that is missing, not
// a directory, not writable or short of space is refused (InvalidArgument, NotFound,
// Unauthorized or NoSpace naming it) before any time is spent. The file is unlinked as soon
// as it is open: nothing is left behind, even when the process is killed.
Result<BenchmarkReport> RunBenchmark(const BenchmarkOptions& options);

// Human-readable table, or (json) one JSON document; keys in README.md and bench/README.md.
void PrintBenchmarkReport(const BenchmarkReport& report, bool json, std::ostream& out);

// Adds `snapvol benchmark [--dir DIR] [--size MIB] [--seconds S] [--json]`. data_dir and
// output are the CLI's global options, read when the command runs: without --dir the I/O
// figures use the data dir's local store, else the current directory. The callback sets
// *action; failures print one `snapvol: error:` line and set *exit_code to 1.
void AddBenchmarkCommand(CLI::App& app, const std::string* data_dir, const std::string* output,
                         std::function<void()>* action, int* exit_code);

}  // namespace snapvol
