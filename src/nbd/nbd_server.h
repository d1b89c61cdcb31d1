// An NBD (Network Block Device) server: serves exports (block devices by name) to NBD clients
// such as qemu-img, nbdcopy, nbdinfo, libnbd and the kernel's nbd driver, on a Unix socket and
// optionally a TCP port.
//
// Protocol: fixed newstyle handshake only (no oldstyle). Options NBD_OPT_EXPORT_NAME, ABORT,
// LIST, STARTTLS, INFO, GO, STRUCTURED_REPLY, LIST_META_CONTEXT and SET_META_CONTEXT (the
// "base:allocation" context). Commands READ, WRITE (with FUA), DISC, FLUSH, TRIM, WRITE_ZEROES
// (with NO_HOLE) and BLOCK_STATUS; structured replies when the client asks for them. Exports
// advertise CAN_MULTI_CONN: several connections to one export see each other's flushed writes.
//
// Identity: every connection is tied to a Peer before it sees any export. A client
// authenticates with TLS pre-shared keys (NBD_OPT_STARTTLS, then a GnuTLS PSK handshake whose
// identity the PskLookup resolves); a Unix-socket peer whose uid is 0 (SO_PEERCRED) is the
// operator and may skip TLS. Until then every option but STARTTLS and ABORT is answered
// NBD_REP_ERR_TLS_REQD and EXPORT_NAME ends the connection. LIST, INFO, GO and the meta-context
// options show and open only what ExportLookup/ExportList give that peer; an export another
// peer owns is "unknown", exactly like one that does not exist.
//
// Limits: a deadline for the whole handshake (TLS included), an idle timeout between requests,
// a deadline for the rest of a request once it has started, a send timeout, a global
// connection cap, a cap on handshakes in progress per client (uid on the Unix socket, address
// on TCP) and a cap on open exports per peer. A WRITE's payload is taken in 128 KiB pieces as it
// arrives, so memory per connection follows the bytes received, never the announced length.
//
// Hostile input ends the connection, never the server, and never reaches an export: a bad
// magic, an unknown command, an offset or length beyond the export (the request is refused
// with EINVAL/ENOSPC and the connection goes on), a request larger than max_request_bytes or a
// client that disconnects in the middle of a request. A write whose payload does not arrive in
// full is not applied. A command with a flag it may not carry (unknown, or e.g. NO_HOLE on a
// write) is refused with EINVAL and nothing is done.
//
// Thread-safety: Start/Stop from one thread; each connection runs on a thread of its own and
// serves its requests in order. The lookups are called from those threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <condition_variable>
#include <list>
#include <map>
#include <optional>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <gnutls/gnutls.h>

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
  // What the export is, whatever name opened it (a volume id behind an alias): Disconnect(x)
  // ends connections whose export's identity is x too. Empty: only the name counts.
  virtual std::string identity() const { return {}; }
  // What the export was opened under, as its owner names it (snapvold: the volume's attachment,
  // its instance and time): DisconnectStale ends the connections opened under another one.
  virtual std::string generation() const { return {}; }
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

// Who is on the other end of a connection.
struct Peer {
  std::string account;   // the account the PSK identity belongs to; empty: none
  bool all = false;      // every export (an administrator, or root on the Unix socket)
  std::string identity;  // for messages and caps: the PSK identity, or "uid 0"
  bool authenticated() const { return all || !account.empty(); }
};

// A PSK identity's key and the peer it authenticates; nullopt for an unknown identity.
struct PskKey {
  std::vector<uint8_t> key;
  Peer peer;
};
using PskLookup = std::function<std::optional<PskKey>(const std::string& identity)>;

// Finds an export by name for a peer; NotFound (or any error) when there is none it may use.
using ExportLookup = std::function<Result<std::shared_ptr<Export>>(const Peer& peer, const std::string& name)>;
// The names NBD_OPT_LIST shows that peer.
using ExportList = std::function<std::vector<std::string>(const Peer& peer)>;

struct ServerOptions {
  std::string unix_socket;  // path; empty: none
  std::string tcp_listen;   // "HOST:PORT" (IPv4), port 0 picks one; empty: none
  uint32_t max_request_bytes = 32u << 20;
  PskLookup psk;            // empty: no TLS (only root on the Unix socket is served)
  int handshake_timeout_ms = 10'000;   // accept to the export being open, TLS included
  int idle_timeout_ms = 30 * 60'000;   // between requests; 0: none
  int request_timeout_ms = 60'000;     // the rest of a request (payload included) once begun; sends
  size_t max_connections = 256;
  size_t max_handshakes_per_client = 16;  // not for root on the Unix socket
  size_t max_exports_per_peer = 32;    // open exports per account (root on the socket: no cap)
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
  // Connections that opened an export whose identity() is `name` (under another name) end too;
  // a lookup in progress when Disconnect begins is waited for, so none slips past it.
  // Returns the number of connections ended; Conflict when some did not finish in time.
  Result<size_t> Disconnect(const std::string& name, int wait_ms = 30000);
  // Disconnect's choice narrowed to the connections opened under a generation() other than the
  // one current() names (nullopt: none is current, all of them end). current() is called once,
  // while no lookup is in progress and none can begin, so a connection opened after it read
  // what it returns is never ended; its error is returned, and nothing ends.
  using CurrentGeneration = std::function<Result<std::optional<std::string>>()>;
  Result<size_t> DisconnectStale(const std::string& name, const CurrentGeneration& current, int wait_ms = 30000);
  // What the connections being served have opened (each export's identity(), else the name it
  // was opened by), with the generations they were opened under: what a caller may have to
  // Disconnect. A connection still looking its export up counts under generation "".
  std::map<std::string, std::set<std::string>> OpenExports();
  // Serves one connection on `fd` (a connected stream socket) on the calling thread, with the
  // peer the listener would have found (tests drive it over a socketpair). Does not close fd.
  void ServeConnection(int fd, const Peer& unix_peer);

 private:
  class Session;
  friend class Session;
  void SetUpTls();  // the PSK credentials, when options_.psk is set (psk_creds_ stays null on failure)
  void AcceptLoop(int listen_fd, bool unix_socket);
  // Records, before the export is looked up, which export a connection asks for.
  void Claim(int fd, const std::string& name);
  // Counts an open export against the peer's cap; false (nothing counted) when at the cap.
  bool ClaimExportSlot(int fd, const Peer& peer);
  void HandshakeDone(int fd);
  // Records the identity and generation of the export a connection opened.
  void Opened(int fd, const Export& opened);

  ExportLookup lookup_;
  ExportList list_;
  ServerOptions options_;
  gnutls_psk_server_credentials_t psk_creds_ = nullptr;
  int unix_fd_ = -1, tcp_fd_ = -1, tcp_port_ = 0;
  std::atomic<bool> stopping_{false};
  std::vector<std::thread> acceptors_;
  struct Connection {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;  // set by the thread as its last act, under mu_
    int fd;
  };
  // What the server knows of a connection being served, by its fd.
  struct ConnState {
    std::string client;        // "uid N" or the address: the per-client handshake cap's key
    bool in_handshake = true;
    std::string export_name;   // asked for (Claim), so Disconnect can find it
    std::string identity;      // of the export it opened (Opened), when not its name
    std::string generation;    // of the export it opened (Opened)
    std::string counted_for;   // the peer whose cap this open export counts against; empty: none
  };
  void Unregister(int fd);
  // Ends the connections to `name` (by export name or identity) for which stale(state) holds,
  // chosen while lookup_mu_ is held exclusively (Disconnect's rule); choose() runs first, under
  // that lock, and its error ends nothing.
  Result<size_t> DisconnectWhere(const std::string& name, const std::function<Result<std::function<bool(const ConnState&)>>()>& choose,
                                 int wait_ms);

  // Held shared from a connection's Claim to its Opened, and exclusively by Disconnect while it
  // picks the connections to end: a lookup that began before is counted, one after sees the
  // refusal the caller set up first. Taken before mu_.
  std::shared_mutex lookup_mu_;
  std::mutex mu_;
  std::condition_variable ended_cv_;          // a connection thread finished
  std::map<int, ConnState> conns_;            // guarded by mu_
  std::list<Connection> connections_;         // accepted ones' threads; guarded by mu_
};

}  // namespace snapvol::nbd
