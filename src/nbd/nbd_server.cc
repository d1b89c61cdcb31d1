#include "nbd/nbd_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace snapvol::nbd {
namespace {

bool ParseListenAddress(const std::string& spec, sockaddr_in* addr) {
  auto colon = spec.rfind(':');
  if (colon == std::string::npos) return false;
  std::memset(addr, 0, sizeof *addr);
  addr->sin_family = AF_INET;
  int port = std::atoi(spec.substr(colon + 1).c_str());
  if (port < 0 || port > 65535) return false;
  addr->sin_port = htons(static_cast<uint16_t>(port));
  std::string host = spec.substr(0, colon);
  if (host == "localhost") host = "127.0.0.1";
  return inet_pton(AF_INET, host.c_str(), &addr->sin_addr) == 1;
}

}  // namespace

NbdServer::NbdServer(ExportLookup lookup, ExportList list, ServerOptions options)
    : lookup_(std::move(lookup)), list_(std::move(list)), options_(std::move(options)) {
  SetUpTls();  // Start refuses to listen if this failed; without TLS only root is served
}

NbdServer::~NbdServer() {
  Stop();
  if (psk_creds_) gnutls_psk_free_server_credentials(psk_creds_);
}

Status NbdServer::Start() {
  if (options_.psk && !psk_creds_) return MakeError(ErrorCode::kIoError, "cannot set up TLS-PSK credentials");
  if (!options_.unix_socket.empty()) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (options_.unix_socket.size() >= sizeof addr.sun_path)
      return InvalidArgument("NBD socket path is too long: " + options_.unix_socket);
    std::strcpy(addr.sun_path, options_.unix_socket.c_str());
    ::unlink(options_.unix_socket.c_str());  // a socket file left by a previous run
    unix_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    // Anyone who can reach the path may connect: who they are is checked per connection
    // (root by SO_PEERCRED, everyone else by TLS-PSK). The directory decides who reaches it.
    const mode_t mode = options_.psk ? 0666 : 0600;
    if (unix_fd_ < 0 || ::bind(unix_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::chmod(options_.unix_socket.c_str(), mode) != 0 || ::listen(unix_fd_, 64) != 0)
      return MakeError(ErrorCode::kIoError, "cannot listen on " + options_.unix_socket + ": " + std::strerror(errno));
  }
  if (!options_.tcp_listen.empty()) {
    if (!options_.psk) return InvalidArgument("an NBD TCP listener needs TLS-PSK identities");
    sockaddr_in addr{};
    if (!ParseListenAddress(options_.tcp_listen, &addr))
      return InvalidArgument("NBD listen address must be IPv4 HOST:PORT: " + options_.tcp_listen);
    tcp_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(tcp_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (tcp_fd_ < 0 || ::bind(tcp_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(tcp_fd_, 64) != 0)
      return MakeError(ErrorCode::kIoError, "cannot listen on " + options_.tcp_listen + ": " + std::strerror(errno));
    socklen_t len = sizeof addr;
    ::getsockname(tcp_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    tcp_port_ = ntohs(addr.sin_port);
  }
  if (unix_fd_ >= 0) acceptors_.emplace_back([this] { AcceptLoop(unix_fd_, true); });
  if (tcp_fd_ >= 0) acceptors_.emplace_back([this] { AcceptLoop(tcp_fd_, false); });
  return OkStatus();
}

void NbdServer::Stop() {
  if (stopping_.exchange(true)) return;
  for (int fd : {unix_fd_, tcp_fd_})
    if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
  for (auto& t : acceptors_) t.join();
  for (int fd : {unix_fd_, tcp_fd_})
    if (fd >= 0) ::close(fd);
  if (unix_fd_ >= 0) ::unlink(options_.unix_socket.c_str());
  std::list<Connection> threads;
  {
    std::lock_guard lock(mu_);
    for (const auto& [fd, state] : conns_) ::shutdown(fd, SHUT_RDWR);  // their threads see EOF and end
    threads.swap(connections_);
  }
  for (auto& c : threads) c.thread.join();
}

void NbdServer::Unregister(int fd) {
  std::lock_guard lock(mu_);
  conns_.erase(fd);
}

void NbdServer::Claim(int fd, const std::string& name) {
  std::lock_guard lock(mu_);
  conns_[fd].export_name = name;
}

bool NbdServer::ClaimExportSlot(int fd, const Peer& peer) {
  std::lock_guard lock(mu_);
  auto& state = conns_[fd];
  if (!state.counted_for.empty()) return true;  // counted already (one export per connection)
  const bool root = peer.all && peer.account.empty();  // the operator on the Unix socket
  if (!root) {
    size_t n = std::count_if(conns_.begin(), conns_.end(),
                             [&](const auto& c) { return c.second.counted_for == peer.identity; });
    if (n >= options_.max_exports_per_peer) return false;
    state.counted_for = peer.identity;
  }
  return true;
}

void NbdServer::HandshakeDone(int fd) {
  std::lock_guard lock(mu_);
  conns_[fd].in_handshake = false;
}

void NbdServer::Opened(int fd, const Export& opened) {
  std::lock_guard lock(mu_);
  auto& state = conns_[fd];
  state.identity = opened.identity();
  state.generation = opened.generation();
}

std::map<std::string, std::set<std::string>> NbdServer::OpenExports() {
  std::lock_guard lock(mu_);
  std::map<std::string, std::set<std::string>> open;
  for (const auto& c : connections_) {
    auto it = conns_.find(c.fd);
    if (c.done->load() || it == conns_.end() || it->second.export_name.empty()) continue;
    open[it->second.identity.empty() ? it->second.export_name : it->second.identity].insert(it->second.generation);
  }
  return open;
}

Result<size_t> NbdServer::Disconnect(const std::string& name, int wait_ms) {
  return DisconnectWhere(
      name, [] { return Result<std::function<bool(const ConnState&)>>([](const ConnState&) { return true; }); },
      wait_ms);
}

Result<size_t> NbdServer::DisconnectStale(const std::string& name, const CurrentGeneration& current, int wait_ms) {
  return DisconnectWhere(
      name,
      [&]() -> Result<std::function<bool(const ConnState&)>> {
        ASSIGN_OR_RETURN(std::optional<std::string> now, current());
        return [now](const ConnState& s) { return !now || s.generation != *now; };
      },
      wait_ms);
}

Result<size_t> NbdServer::DisconnectWhere(const std::string& name,
                                          const std::function<Result<std::function<bool(const ConnState&)>>()>& choose,
                                          int wait_ms) {
  std::unique_lock lookups(lookup_mu_);
  ASSIGN_OR_RETURN(auto stale, choose());  // no lookup runs while it does (nbd_server.h)
  std::unique_lock lock(mu_);
  std::vector<std::shared_ptr<std::atomic<bool>>> ending;
  for (const auto& c : connections_) {
    auto it = conns_.find(c.fd);
    if (c.done->load() || it == conns_.end() ||
        (it->second.export_name != name && it->second.identity != name) || !stale(it->second))
      continue;
    ::shutdown(c.fd, SHUT_RDWR);  // its thread sees EOF or a failed send and ends
    ending.push_back(c.done);
  }
  lookups.unlock();  // the ones chosen are ending; new lookups may run (and be refused)
  bool all = ended_cv_.wait_for(lock, std::chrono::milliseconds(wait_ms), [&] {
    return std::all_of(ending.begin(), ending.end(), [](const auto& d) { return d->load(); });
  });
  if (!all)
    return MakeError(ErrorCode::kConflict, "NBD connections to " + name + " did not end within " +
                                               std::to_string(wait_ms) + " ms");
  return ending.size();
}

void NbdServer::AcceptLoop(int listen_fd, bool unix_socket) {
  while (!stopping_) {
    int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // shut down
    }
    // Who is connecting: the uid on the Unix socket (root is the operator), else the address.
    Peer peer;
    std::string client;
    if (unix_socket) {
      ucred cred{};
      socklen_t len = sizeof cred;
      if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
        ::close(fd);
        continue;
      }
      client = "uid " + std::to_string(cred.uid);
      if (cred.uid == 0) peer = Peer{"", true, client};
    } else {
      sockaddr_in addr{};
      socklen_t len = sizeof addr;
      ::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len);
      char text[INET_ADDRSTRLEN] = "?";
      inet_ntop(AF_INET, &addr.sin_addr, text, sizeof text);
      client = text;
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    std::lock_guard lock(mu_);
    if (stopping_) {
      ::close(fd);
      return;
    }
    // Join the threads of connections that have ended, so a client that reconnects in a loop
    // does not pile them up; refuse connections beyond the caps.
    for (auto it = connections_.begin(); it != connections_.end();) {
      if (it->done->load()) {
        it->thread.join();
        it = connections_.erase(it);
      } else {
        ++it;
      }
    }
    // Root on the Unix socket is the operator: only the global cap applies to it.
    size_t handshaking = peer.all ? 0 : std::count_if(conns_.begin(), conns_.end(), [&](const auto& c) {
      return c.second.in_handshake && c.second.client == client;
    });
    if (connections_.size() >= options_.max_connections || handshaking >= options_.max_handshakes_per_client) {
      ::close(fd);
      continue;
    }
    conns_[fd].client = client;
    auto done = std::make_shared<std::atomic<bool>>(false);
    connections_.push_back({std::thread([this, fd, done, peer] {
                              ServeConnection(fd, peer);
                              std::lock_guard finished(mu_);
                              ::close(fd);
                              done->store(true);
                              ended_cv_.notify_all();
                            }),
                            done, fd});
  }
}

}  // namespace snapvol::nbd
