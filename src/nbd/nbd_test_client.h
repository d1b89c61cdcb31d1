// Test support: an NbdServer serving one connection over a socketpair, an in-memory export
// that records every call reaching it, and a raw protocol client (plain or TLS-PSK through
// GnuTLS) that speaks the wire format byte by byte, so tests can send what real clients never
// would.
#pragma once

#include <endian.h>
#include <gnutls/gnutls.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "nbd/nbd_protocol.h"
#include "nbd/nbd_server.h"

namespace snapvol::nbd::testing {

// A RAM disk that remembers every call, so a test can tell that a refused request never
// reached it (the server is the one that checks bounds).
class MemExport : public Export {
 public:
  explicit MemExport(uint64_t size) : data_(size, 0) {}
  uint64_t size() const override { return data_.size(); }
  Status Read(uint64_t offset, std::span<uint8_t> out) override {
    std::lock_guard lock(mu_);
    if (!Inside(offset, out.size())) return InvalidArgument("read out of range reached the export");
    std::memcpy(out.data(), data_.data() + offset, out.size());
    return OkStatus();
  }
  Status Write(uint64_t offset, std::span<const uint8_t> data, bool fua) override {
    std::lock_guard lock(mu_);
    ++writes;
    last_fua = fua;
    if (!Inside(offset, data.size())) return InvalidArgument("write out of range reached the export");
    std::memcpy(data_.data() + offset, data.data(), data.size());
    return OkStatus();
  }
  Status Flush() override { return OkStatus(); }
  Status Trim(uint64_t offset, uint64_t length) override { return WriteZeroes(offset, length, true); }
  Status WriteZeroes(uint64_t offset, uint64_t length, bool) override {
    std::lock_guard lock(mu_);
    ++writes;
    if (!Inside(offset, length)) return InvalidArgument("zeroing out of range reached the export");
    std::memset(data_.data() + offset, 0, length);
    return OkStatus();
  }
  Result<std::vector<Extent>> BlockStatus(uint64_t offset, uint64_t length) override {
    std::lock_guard lock(mu_);
    if (!Inside(offset, length)) return InvalidArgument("block status out of range reached the export");
    return std::vector<Extent>{{length, 0}};
  }
  std::vector<uint8_t> Bytes(uint64_t offset, size_t n) {
    std::lock_guard lock(mu_);
    return {data_.begin() + static_cast<std::ptrdiff_t>(offset), data_.begin() + static_cast<std::ptrdiff_t>(offset + n)};
  }
  std::atomic<int> writes{0};        // calls that change data
  std::atomic<int> out_of_range{0};  // calls outside the export that reached it
  std::atomic<bool> last_fua{false};

 private:
  bool Inside(uint64_t offset, uint64_t n) {
    bool ok = offset <= data_.size() && n <= data_.size() - offset;
    if (!ok) ++out_of_range;
    return ok;
  }
  std::mutex mu_;
  std::vector<uint8_t> data_;
};

// One option reply.
struct OptReply {
  uint32_t option = 0, type = 0;
  std::string data;
};

// A raw NBD client on one end of a socketpair.
class RawClient {
 public:
  // Reads give up after kRecvTimeoutSeconds, so a server that never answers fails the test instead
  // of hanging it.
  explicit RawClient(int fd) : fd_(fd) {
    timeval tv{kRecvTimeoutSeconds, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  static constexpr int kRecvTimeoutSeconds = 10;
  ~RawClient() {
    if (session_) gnutls_deinit(session_);
    if (creds_) gnutls_psk_free_client_credentials(creds_);
    ::close(fd_);
  }
  bool Send(const std::string& bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = session_ ? gnutls_record_send(session_, bytes.data() + off, bytes.size() - off)
                           : ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }
  // Exactly n bytes; false when the server closed (or failed) first.
  bool Recv(size_t n, std::string* out) {
    out->assign(n, '\0');
    size_t off = 0;
    while (off < n) {
      ssize_t got = session_ ? gnutls_record_recv(session_, out->data() + off, n - off)
                             : ::recv(fd_, out->data() + off, n - off, 0);
      if (got <= 0) return false;
      off += static_cast<size_t>(got);
    }
    return true;
  }
  // True when the server ended the connection (EOF or reset), reading and dropping anything
  // before it; false when it is still open after the receive timeout.
  bool Closed() {
    char sink[4096];
    for (;;) {
      ssize_t got = session_ ? gnutls_record_recv(session_, sink, sizeof sink) : ::recv(fd_, sink, sizeof sink, 0);
      if (got > 0) continue;
      if (got == 0) return true;
      if (session_) return got != GNUTLS_E_AGAIN && got != GNUTLS_E_INTERRUPTED;
      if (errno == EINTR) continue;
      return errno != EAGAIN && errno != EWOULDBLOCK;  // a timeout: still open
    }
  }
  void ShutdownWrite() { ::shutdown(fd_, SHUT_WR); }
  // Reads the greeting and sends fixed newstyle + no zeroes.
  bool Hello() {
    std::string hello;
    if (!Recv(18, &hello) || hello.substr(0, 16) != "NBDMAGICIHAVEOPT") return false;
    return Send(Be32(3));
  }
  bool Option(uint32_t option, const std::string& data, OptReply* reply) {
    return Send(Be64(proto::kOptMagic) + Be32(option) + Be32(static_cast<uint32_t>(data.size())) + data) &&
           ReadReply(reply);
  }
  bool ReadReply(OptReply* reply) {
    std::string head;
    if (!Recv(20, &head) || U64(head, 0) != proto::kOptReplyMagic) return false;
    reply->option = U32(head, 8);
    reply->type = U32(head, 12);
    return Recv(U32(head, 16), &reply->data);
  }
  // Option replies until the final (ACK or error) one; the informational ones in *before.
  bool OptionAll(uint32_t option, const std::string& data, std::vector<OptReply>* before, OptReply* last) {
    if (!Option(option, data, last)) return false;
    while (last->type == proto::kRepServer || last->type == proto::kRepInfo || last->type == proto::kRepMetaContext) {
      before->push_back(*last);
      if (!ReadReply(last)) return false;
    }
    return true;
  }
  static std::string GoData(const std::string& name) { return Be32(static_cast<uint32_t>(name.size())) + name + Be16(0); }
  // STARTTLS, then a PSK handshake as `identity` with `key`. False if either fails.
  bool StartTls(const std::string& identity, const std::vector<uint8_t>& key) {
    OptReply r;
    if (!Option(proto::kOptStartTls, "", &r) || r.type != proto::kRepAck) return false;
    gnutls_psk_allocate_client_credentials(&creds_);
    gnutls_datum_t k{const_cast<unsigned char*>(key.data()), static_cast<unsigned int>(key.size())};
    gnutls_psk_set_client_credentials(creds_, identity.c_str(), &k, GNUTLS_PSK_KEY_RAW);
    gnutls_init(&session_, GNUTLS_CLIENT);
    gnutls_priority_set_direct(session_, "NORMAL:+ECDHE-PSK:+DHE-PSK:+PSK", nullptr);
    gnutls_credentials_set(session_, GNUTLS_CRD_PSK, creds_);
    gnutls_transport_set_int(session_, fd_);
    int rc;
    do {
      rc = gnutls_handshake(session_);
    } while (rc < 0 && !gnutls_error_is_fatal(rc));
    return rc == 0;
  }
  // A request header (and payload); the simple reply's error, or -1 when the connection ended.
  long Request(uint16_t flags, uint16_t type, uint64_t handle, uint64_t offset, uint32_t length,
               const std::string& payload = "", std::string* read_back = nullptr) {
    if (!Send(Be32(proto::kRequestMagic) + Be16(flags) + Be16(type) + Be64(handle) + Be64(offset) + Be32(length) + payload))
      return -1;
    std::string reply;
    if (!Recv(16, &reply) || U32(reply, 0) != proto::kSimpleReplyMagic || U64(reply, 8) != handle) return -1;
    uint32_t error = U32(reply, 4);
    if (error == 0 && type == proto::kCmdRead && read_back && !Recv(length, read_back)) return -1;
    return error;
  }

  static std::string Be16(uint16_t v) { v = htobe16(v); return std::string(reinterpret_cast<char*>(&v), 2); }
  static std::string Be32(uint32_t v) { v = htobe32(v); return std::string(reinterpret_cast<char*>(&v), 4); }
  static std::string Be64(uint64_t v) { v = htobe64(v); return std::string(reinterpret_cast<char*>(&v), 8); }
  static uint32_t U32(const std::string& s, size_t at) {
    uint32_t v;
    std::memcpy(&v, s.data() + at, 4);
    return be32toh(v);
  }
  static uint64_t U64(const std::string& s, size_t at) {
    uint64_t v;
    std::memcpy(&v, s.data() + at, 8);
    return be64toh(v);
  }
  static uint16_t U16(const std::string& s, size_t at) {
    uint16_t v;
    std::memcpy(&v, s.data() + at, 2);
    return be16toh(v);
  }

 private:
  int fd_;
  gnutls_session_t session_ = nullptr;
  gnutls_psk_client_credentials_t creds_ = nullptr;
};

// A server for one test, serving connections on socketpairs with a given peer.
class Harness {
 public:
  explicit Harness(ServerOptions options = {}) {
    exports_["vol-a"] = std::make_shared<MemExport>(1 << 20);
    exports_["vol-b"] = std::make_shared<MemExport>(1 << 20);
    owner_["vol-a"] = "111111111111";
    owner_["vol-b"] = "222222222222";
    server_ = std::make_unique<NbdServer>(
        [this](const Peer& peer, const std::string& name) -> Result<std::shared_ptr<Export>> {
          auto it = exports_.find(name);
          if (it == exports_.end() || !(peer.all || peer.account == owner_[name])) return NotFound(name);
          return std::shared_ptr<Export>(it->second);
        },
        [this](const Peer& peer) {
          std::vector<std::string> names;
          for (const auto& [name, owner] : owner_)
            if (peer.all || peer.account == owner) names.push_back(name);
          return names;
        },
        std::move(options));
  }
  ~Harness() {
    for (auto& t : threads_) t.join();
  }
  // A connection from `peer` (what the listener found: root, or nobody yet).
  std::unique_ptr<RawClient> Connect(const Peer& peer) {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return nullptr;
    threads_.emplace_back([this, fd = fds[0], peer] {
      server_->ServeConnection(fd, peer);
      ::close(fd);
    });
    return std::make_unique<RawClient>(fds[1]);
  }
  MemExport& Disk(const std::string& name) { return *exports_.at(name); }
  static Peer Root() { return Peer{"", true, "uid 0"}; }

 private:
  std::map<std::string, std::shared_ptr<MemExport>> exports_;
  std::map<std::string, std::string> owner_;
  std::unique_ptr<NbdServer> server_;
  std::vector<std::thread> threads_;
};

}  // namespace snapvol::nbd::testing
