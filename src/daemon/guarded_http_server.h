// GuardedServer: cpp-httplib's server (plain or TLS) with the limits a listener shared by many
// clients needs and the library (0.11) lacks:
//   - a deadline for a request's line and headers: the library's read timeout restarts at
//     every byte, so a client sending one header byte every few seconds held a worker thread
//     for ever (slowloris); the body then has a deadline of its own. Both are checked before
//     every read, not only when a read would wait: a client keeping the socket full is cut too;
//   - a budget for a request's line and headers (bytes and lines): the library keeps every
//     header line it reads, with no limit of its own, so a client streaming header lines
//     grew the daemon's memory without bound. Past the budget the client is answered 431 and
//     the connection closed;
//   - a cap on open connections per client address, so one client cannot hold every worker
//     thread (connections beyond it are answered 503 and closed at once);
//   - closing the connection after a response that leaves the stream in doubt: headers that
//     did not parse or did not arrive in time, and any response a handler marks with
//     CloseConnectionAfter (a body refused unread or read halfway), so what follows is never
//     parsed as new requests.
// The server drives each connection itself (keep-alive loop, reads and writes with poll, TLS
// through the library's own SSL_CTX) and hands each request to the library's process_request,
// so routing, parsing and responses stay the library's.
//
// Thread-safety: the server is used as the library's; connections run on its worker threads,
// the per-client counts are guarded by a mutex, and CloseConnectionAfter acts on the
// connection of the calling worker thread.
#pragma once

#include <httplib.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>

namespace snapvol {

struct HttpLimits {
  // From the first byte of a request (or the connection's start) to the end of its headers.
  std::chrono::milliseconds header_timeout{10'000};
  // From the end of the headers to the end of the body.
  std::chrono::milliseconds body_timeout{120'000};
  // A request's line and headers together, in bytes and in lines (the request line and the
  // blank line included). Signed API requests carry a few KiB in a dozen headers; URIs are
  // capped at 8 KiB by the library.
  size_t max_header_bytes = 64 << 10;
  size_t max_header_lines = 128;
  // Open connections per client (ClientKey: an IPv4 address, or an IPv6 /64).
  size_t max_connections_per_client = 64;
  // Called (at most once a second, with how many since the last call) when connections are
  // refused for the cap, cut at a deadline or over the header budget, for the log. Events
  // held back are reported by the next event a second or more later, or when the server is
  // destroyed.
  std::function<void(const std::string& event, const std::string& client, size_t count)> on_limit;
};

// The key a client's connections are counted under: an IPv4 address ("192.0.2.7", also for an
// IPv4-mapped IPv6 peer "::ffff:192.0.2.7"), or an IPv6 address's /64 ("2001:db8:1:2::/64":
// one host is usually given a whole /64 and can pick any address in it). Empty for another
// family. Pure; thread-safe.
std::string ClientKey(const sockaddr* addr, socklen_t len);

// Marks the connection of the request being handled on this thread to close after its
// response (the response says `Connection: close`). For handlers that answer without reading
// the whole body. No effect outside a GuardedServer's handler.
void CloseConnectionAfter();

// The connection handling shared by the plain and the TLS server.
class ConnectionGuard {
 public:
  explicit ConnectionGuard(HttpLimits limits) : limits_(std::move(limits)) {}
  // Reports the limit events not yet reported.
  ~ConnectionGuard();
  ConnectionGuard(const ConnectionGuard&) = delete;
  ConnectionGuard& operator=(const ConnectionGuard&) = delete;

  // What the server lends to Serve: its settings and its request parser.
  struct Server {
    std::function<bool()> running;
    std::function<bool(httplib::Stream&, bool close_connection, bool& connection_closed,
                       const std::function<void(httplib::Request&)>& setup_request)>
        process_request;
    size_t keep_alive_max_count;
    time_t keep_alive_timeout_sec;
    std::chrono::microseconds read_timeout;
    std::chrono::microseconds write_timeout;
  };
  // Serves the connection `sock` (TLS when ssl_ctx is set) until it ends, then closes it.
  bool Serve(int sock, SSL_CTX* ssl_ctx, const Server& server);

 private:
  bool Admit(const std::string& client);
  void Leave(const std::string& client);
  void Note(const char* event, const std::string& client);
  void Flush();  // reports what Note held back

  const HttpLimits limits_;
  std::mutex mu_;
  std::map<std::string, size_t> open_;  // GUARDED_BY(mu_): connections per client address
  std::map<std::string, size_t> noted_;  // GUARDED_BY(mu_): limit events not yet reported
  std::chrono::steady_clock::time_point last_note_{};  // GUARDED_BY(mu_)
};

// Base is httplib::Server or httplib::SSLServer; the constructor takes the limits, then
// Base's own arguments.
template <class Base>
class GuardedServer : public Base {
 public:
  template <class... Args>
  explicit GuardedServer(HttpLimits limits, Args&&... args)
      : Base(std::forward<Args>(args)...), guard_(std::move(limits)) {}

 private:
  // Overrides the library's (private virtual) per-connection entry point.
  bool process_and_close_socket(socket_t sock) override {
    ConnectionGuard::Server s{
        [this] { return this->svr_sock_ != INVALID_SOCKET; },
        [this](httplib::Stream& strm, bool close, bool& closed,
               const std::function<void(httplib::Request&)>& setup) {
          return this->process_request(strm, close, closed, setup);
        },
        this->keep_alive_max_count_,
        this->keep_alive_timeout_sec_,
        std::chrono::seconds(this->read_timeout_sec_) + std::chrono::microseconds(this->read_timeout_usec_),
        std::chrono::seconds(this->write_timeout_sec_) + std::chrono::microseconds(this->write_timeout_usec_)};
    return guard_.Serve(sock, TlsContext(), s);
  }

  SSL_CTX* TlsContext() const {
    if constexpr (std::is_base_of_v<httplib::SSLServer, Base>) {
      return this->ssl_context();
    } else {
      return nullptr;
    }
  }

  ConnectionGuard guard_;
};

}  // namespace snapvol
