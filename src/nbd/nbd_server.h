// An NBD (Network Block Device) server: serves exports (block devices by name) to NBD clients
// such as qemu-img, nbdcopy, nbdinfo, libnbd and the kernel's nbd driver, on a Unix socket and
// optionally a TCP port.
//
// Protocol: fixed newstyle handshake only (no oldstyle, no TLS: use the Unix socket or a
// loopback port). Options NBD_OPT_EXPORT_NAME, ABORT, LIST, INFO, GO, STRUCTURED_REPLY,
// LIST_META_CONTEXT and SET_META_CONTEXT (the "base:allocation" context); STARTTLS is refused.
// Commands READ, WRITE (with FUA), DISC, FLUSH, TRIM, WRITE_ZEROES (with NO_HOLE) and
// BLOCK_STATUS; structured replies when the client asks for them. Exports advertise
// CAN_MULTI_CONN: several connections to one export see each other's flushed writes.
//
// Hostile input ends the connection, never the server, and never reaches an export: a bad
// magic, an unknown command, an offset or length beyond the export (the request is refused
// with EINVAL/ENOSPC and the connection goes on), a request larger than max_request_bytes or a
// client that disconnects in the middle of a request. A write whose payload does not arrive in
// full is not applied. A command with a flag it may not carry (unknown, or e.g. NO_HOLE on a
// write) is refused with EINVAL and nothing is done.
//
// Thread-safety: Start/Stop from one thread; each connection runs on a thread of its own and
// serves its requests in order.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <condition_variable>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"

namespace snapvol::nbd {

// base:allocation flags of an extent.
inline constexpr uint32_t kStateHole = 1;
inline constexpr uint32_t kStateZero = 2;

struct Extent {
  uint64_t length = 0;
  uint32_t flags = 0;  // kStateHole | kStateZero
};

// One block device. Offsets and lengths are checked by the server before they get here.
class Export {
 public:
  virtual ~Export() = default;
  virtual uint64_t size() const = 0;
  virtual Status Read(uint64_t offset, std::span<uint8_t> out) = 0;
  // fua: durable before returning.
  virtual Status Write(uint64_t offset, std::span<const uint8_t> data, bool fua) = 0;
  virtual Status Flush() = 0;
  // The range reads as zeroes afterwards (TRIM may leave it undefined; ours zeroes it).
  virtual Status Trim(uint64_t offset, uint64_t length) = 0;
  // may_punch: the range may be deallocated (not NBD_CMD_FLAG_NO_HOLE).
  virtual Status WriteZeroes(uint64_t offset, uint64_t length, bool may_punch) = 0;
  // Allocation of [offset, offset+length): at least one extent, covering at most that range.
  virtual Result<std::vector<Extent>> BlockStatus(uint64_t offset, uint64_t length) = 0;
};

// An export backed by a file (sparse: TRIM punches holes, BLOCK_STATUS reports them).
class FileExport : public Export {
 public:
  static Result<std::shared_ptr<FileExport>> Open(const std::string& path);
  ~FileExport() override;
  uint64_t size() const override { return size_; }
  Status Read(uint64_t offset, std::span<uint8_t> out) override;
  Status Write(uint64_t offset, std::span<const uint8_t> data, bool fua) override;
  Status Flush() override;
  Status Trim(uint64_t offset, uint64_t length) override;
  Status WriteZeroes(uint64_t offset, uint64_t length, bool may_punch) override;
  Result<std::vector<Extent>> BlockStatus(uint64_t offset, uint64_t length) override;
  // The first data (hole) at or after offset; size() when none.
  Result<uint64_t> NextData(uint64_t offset);
  Result<uint64_t> NextHole(uint64_t offset);

 private:
  FileExport(int fd, uint64_t size, std::string path) : fd_(fd), size_(size), path_(std::move(path)) {}
  int fd_;
  uint64_t size_;
  std::string path_;
};

// Finds an export by name; NotFound (or any error) when there is none to serve.
using ExportLookup = std::function<Result<std::shared_ptr<Export>>(const std::string& name)>;
// The names NBD_OPT_LIST shows.
using ExportList = std::function<std::vector<std::string>()>;

struct ServerOptions {
  std::string unix_socket;  // path; empty: none
  std::string tcp_listen;   // "127.0.0.1:10809", port 0 picks one; empty: none
  uint32_t max_request_bytes = 32u << 20;
};

class NbdServer {
 public:
  NbdServer(ExportLookup lookup, ExportList list, ServerOptions options);
  ~NbdServer();  // Stop()
  NbdServer(const NbdServer&) = delete;
  NbdServer& operator=(const NbdServer&) = delete;

  // Binds the listeners (replacing a stale Unix socket file) and starts accepting.
  Status Start();
  // Stops accepting, ends every connection and joins their threads.
  void Stop();
  // The TCP port actually bound (0 when there is no TCP listener).
  int tcp_port() const { return tcp_port_; }
  // Ends every connection that serves (or is looking up) the export `name` and waits up to
  // `wait_ms` for their threads to finish, so that no write reaches the export afterwards.
  // A request in progress completes; its reply may not reach the client. Make the lookup
  // refuse `name` first (as DetachVolume does): a client that asks again is then refused.
  // Returns the number of connections ended; Conflict when some did not finish in time.
  Result<size_t> Disconnect(const std::string& name, int wait_ms = 30000);

 private:
  void AcceptLoop(int listen_fd);
  void Serve(int fd);

  ExportLookup lookup_;
  ExportList list_;
  ServerOptions options_;
  int unix_fd_ = -1, tcp_fd_ = -1, tcp_port_ = 0;
  std::atomic<bool> stopping_{false};
  std::vector<std::thread> acceptors_;
  static constexpr size_t kMaxConnections = 256;
  // Records, before the export is looked up, which export a connection asks for.
  void Claim(int fd, const std::string& name);
  struct Connection {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;  // set by the thread as its last act, under mu_
    int fd;
  };
  std::mutex mu_;
  std::condition_variable ended_cv_;       // a connection thread finished
  std::set<int> client_fds_;               // guarded by mu_
  std::map<int, std::string> export_of_;   // fd -> export asked for; guarded by mu_
  std::list<Connection> connections_;      // guarded by mu_
};

}  // namespace snapvol::nbd
