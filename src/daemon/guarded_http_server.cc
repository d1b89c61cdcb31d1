#include "daemon/guarded_http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace snapvol {
namespace {

using SteadyClock = std::chrono::steady_clock;

// How long, and how much, a connection closed after a refused body is still read from.
constexpr std::chrono::milliseconds kLingerTime{1000};
constexpr size_t kLingerBytes = 8 << 20;

// The connection whose request this worker thread is handling, for CloseConnectionAfter.
struct RequestState {
  httplib::Request* request = nullptr;  // set once the headers are parsed
  bool close_after = false;
};
thread_local RequestState* current_request = nullptr;

std::string NumericAddress(const sockaddr_storage& addr, socklen_t len, int* port) {
  std::array<char, NI_MAXHOST> host{};
  std::array<char, NI_MAXSERV> serv{};
  if (getnameinfo(reinterpret_cast<const sockaddr*>(&addr), len, host.data(), host.size(), serv.data(),
                  serv.size(), NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return "";
  }
  if (port) *port = std::atoi(serv.data());
  return host.data();
}

std::string PeerAddress(int sock, int* port = nullptr) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (getpeername(sock, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "";
  return NumericAddress(addr, len, port);
}

// What a client is told when its request line and headers exceed the budget. The library's own
// answer (400, for headers it could not read) is dropped.
constexpr char kHeadersTooLarge[] =
    "HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";

// A connection's byte stream for the library's parser: buffered reads and writes on a
// non-blocking socket (or TLS over it), each wait bounded by the library's per-call timeout
// and reads also by the current request's deadline and, until its headers are in, by the
// header budget.
class GuardedStream final : public httplib::Stream {
 public:
  // `running` says whether the server still runs: a stop ends a wait for headers at once (a
  // request whose headers are in runs to its end).
  GuardedStream(int sock, SSL* ssl, std::chrono::microseconds read_timeout, std::chrono::microseconds write_timeout,
                std::function<bool()> running)
      : sock_(sock), ssl_(ssl), read_timeout_(read_timeout), write_timeout_(write_timeout), running_(std::move(running)) {}

  // A request starts: its line and headers must arrive before `deadline`, in at most
  // `max_bytes` bytes and `max_lines` lines.
  void StartHeaders(SteadyClock::time_point deadline, size_t max_bytes, size_t max_lines) {
    deadline_ = deadline;
    in_headers_ = true;
    header_bytes_left_ = max_bytes;
    header_lines_left_ = max_lines;
  }
  // The headers are in: the body must arrive before `deadline` (its size is the handler's).
  void StartBody(SteadyClock::time_point deadline) {
    deadline_ = deadline;
    in_headers_ = false;
  }
  bool deadline_passed() const { return deadline_passed_; }
  bool stopped() const { return stopped_; }
  bool headers_too_large() const { return headers_too_large_; }
  bool HasBufferedInput() const { return pos_ < len_ || (ssl_ && SSL_pending(ssl_) > 0); }

  bool is_readable() const override { return HasBufferedInput() || Wait(POLLIN, read_timeout_, true); }
  bool is_writable() const override { return Wait(POLLOUT, write_timeout_, false); }

  ssize_t read(char* ptr, size_t size) override {
    if (headers_too_large_) return -1;
    if (in_headers_) {
      if (header_bytes_left_ == 0 || header_lines_left_ == 0) return RefuseHeaders();
      size = std::min(size, header_bytes_left_);
    }
    if (pos_ == len_) {
      ssize_t n = Fill();
      if (n <= 0) return n;
    }
    size_t n = std::min(size, len_ - pos_);
    std::memcpy(ptr, buf_.data() + pos_, n);
    pos_ += n;
    if (in_headers_) {
      header_bytes_left_ -= n;
      size_t lines = static_cast<size_t>(std::count(ptr, ptr + n, '\n'));
      header_lines_left_ -= std::min(lines, header_lines_left_);
    }
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    if (headers_too_large_) return static_cast<ssize_t>(size);  // the 431 has been sent instead
    return WriteSome(ptr, size);
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override { ip = PeerAddress(sock_, &port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    if (getsockname(sock_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) ip = NumericAddress(addr, len, &port);
  }
  socket_t socket() const override { return sock_; }

 private:
  // Answers 431 and fails this read and every later one.
  ssize_t RefuseHeaders() {
    headers_too_large_ = true;
    for (size_t sent = 0; sent < sizeof kHeadersTooLarge - 1;) {
      ssize_t n = WriteSome(kHeadersTooLarge + sent, sizeof kHeadersTooLarge - 1 - sent);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
    return -1;
  }

  ssize_t WriteSome(const char* ptr, size_t size) {
    if (size == 0) return 0;
    while (true) {
      short want = POLLOUT;
      if (ssl_) {
        ERR_clear_error();
        int n = SSL_write(ssl_, ptr, static_cast<int>(std::min<size_t>(size, INT_MAX)));
        if (n > 0) return n;
        int err = SSL_get_error(ssl_, n);
        if (err == SSL_ERROR_WANT_READ) want = POLLIN;
        else if (err != SSL_ERROR_WANT_WRITE) return -1;
      } else {
        ssize_t n = ::send(sock_, ptr, size, MSG_NOSIGNAL);
        if (n >= 0) return n;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
      }
      if (!Wait(want, write_timeout_, false)) return -1;
    }
  }

  // Reads what has arrived into the buffer: > 0 bytes, 0 at the end of the stream, -1 on an
  // error or once the deadline has passed (checked first: a client that keeps the socket
  // full never makes a read wait).
  ssize_t Fill() {
    pos_ = len_ = 0;
    if (SteadyClock::now() >= deadline_) {
      deadline_passed_ = true;
      return -1;
    }
    while (true) {
      short want = POLLIN;
      if (ssl_) {
        ERR_clear_error();
        int n = SSL_read(ssl_, buf_.data(), static_cast<int>(buf_.size()));
        if (n > 0) {
          len_ = static_cast<size_t>(n);
          return n;
        }
        int err = SSL_get_error(ssl_, n);
        if (err == SSL_ERROR_ZERO_RETURN) return 0;
        if (err == SSL_ERROR_WANT_WRITE) want = POLLOUT;
        else if (err != SSL_ERROR_WANT_READ) return -1;
      } else {
        ssize_t n = ::recv(sock_, buf_.data(), buf_.size(), 0);
        if (n >= 0) {
          len_ = static_cast<size_t>(n);
          return n;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
      }
      if (!Wait(want, read_timeout_, true)) return -1;
    }
  }

  // Waits until the socket is ready for `events`, for at most `timeout` and, with
  // use_deadline, not past the request's deadline (remembered when it is what ran out).
  bool Wait(short events, std::chrono::microseconds timeout, bool use_deadline) const {
    auto until = SteadyClock::now() + timeout;
    if (use_deadline && deadline_ < until) until = deadline_;
    // Waiting for headers, the stop is looked at every slice.
    const bool watch_stop = in_headers_ && running_;
    while (true) {
      if (watch_stop && !running_()) {
        stopped_ = true;
        return false;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - SteadyClock::now());
      if (left.count() <= 0) {
        if (use_deadline && SteadyClock::now() >= deadline_) deadline_passed_ = true;
        return false;
      }
      int64_t slice = watch_stop ? std::min<int64_t>(left.count() + 1, kStopSliceMs) : left.count() + 1;
      pollfd p{sock_, events, 0};
      int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(slice, INT_MAX)));
      if (r > 0) return true;  // ready, hung up or failed: the next call says which
      if (r < 0 && errno != EINTR) return false;
    }
  }

  const int sock_;
  SSL* const ssl_;
  const std::chrono::microseconds read_timeout_, write_timeout_;
  SteadyClock::time_point deadline_ = SteadyClock::time_point::max();
  static constexpr int64_t kStopSliceMs = 100;
  const std::function<bool()> running_;
  mutable bool deadline_passed_ = false;
  mutable bool stopped_ = false;
  bool in_headers_ = false;
  bool headers_too_large_ = false;
  size_t header_bytes_left_ = 0, header_lines_left_ = 0;
  std::array<char, 4096> buf_{};
  size_t pos_ = 0, len_ = 0;
};

// Completes the TLS handshake on a non-blocking socket before the deadline.
bool AcceptTls(SSL* ssl, int sock, SteadyClock::time_point deadline) {
  while (true) {
    ERR_clear_error();
    int r = SSL_accept(ssl);
    if (r == 1) return true;
    int err = SSL_get_error(ssl, r);
    short want;
    if (err == SSL_ERROR_WANT_READ) want = POLLIN;
    else if (err == SSL_ERROR_WANT_WRITE) want = POLLOUT;
    else return false;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now()).count();
    if (left <= 0) return false;
    pollfd p{sock, want, 0};
    if (::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, INT_MAX))) < 0 && errno != EINTR) return false;
  }
}

// Runs a function when the scope ends, however it ends.
template <class F>
class ScopeExit {
 public:
  explicit ScopeExit(F f) : f_(std::move(f)) {}
  ~ScopeExit() { f_(); }
  ScopeExit(const ScopeExit&) = delete;
  ScopeExit& operator=(const ScopeExit&) = delete;

 private:
  F f_;
};

// Closing with unread input makes the kernel send a reset, which can destroy the response
// before the client reads it: says we are done, then reads and drops what the client still
// sends, for a short while.
void Linger(int sock) {
  ::shutdown(sock, SHUT_WR);
  auto until = SteadyClock::now() + kLingerTime;
  std::array<char, 16384> sink;
  for (size_t drained = 0; drained < kLingerBytes;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - SteadyClock::now()).count();
    pollfd p{sock, POLLIN, 0};
    if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) break;
    ssize_t n = ::recv(sock, sink.data(), sink.size(), 0);
    if (n <= 0 && !(n < 0 && (errno == EINTR || errno == EAGAIN))) break;
    if (n > 0) drained += static_cast<size_t>(n);
  }
}

}  // namespace

std::string ClientKey(const sockaddr* addr, socklen_t len) {
  std::array<char, INET6_ADDRSTRLEN> text{};
  if (addr->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(addr);
    if (!::inet_ntop(AF_INET, &v4->sin_addr, text.data(), text.size())) return "";
    return text.data();
  }
  if (addr->sa_family != AF_INET6 || len < static_cast<socklen_t>(sizeof(sockaddr_in6))) return "";
  in6_addr a = reinterpret_cast<const sockaddr_in6*>(addr)->sin6_addr;
  if (IN6_IS_ADDR_V4MAPPED(&a)) {
    if (!::inet_ntop(AF_INET, &a.s6_addr[12], text.data(), text.size())) return "";
    return text.data();
  }
  std::memset(&a.s6_addr[8], 0, 8);
  if (!::inet_ntop(AF_INET6, &a, text.data(), text.size())) return "";
  return std::string(text.data()) + "/64";
}

void CloseConnectionAfter() {
  RequestState* s = current_request;
  if (!s) return;
  s->close_after = true;
  // The library writes `Connection: close` (and no Keep-Alive) when the request asked for it.
  // It reads the request's first Connection header, and set_header adds one: the client's
  // own (`keep-alive`) goes first.
  if (s->request) {
    s->request->headers.erase("Connection");
    s->request->set_header("Connection", "close");
  }
}

bool ConnectionGuard::Admit(const std::string& client) {
  std::lock_guard lock(mu_);
  size_t& n = open_[client];
  if (n >= limits_.max_connections_per_client) {
    if (n == 0) open_.erase(client);
    return false;
  }
  ++n;
  return true;
}

void ConnectionGuard::Leave(const std::string& client) {
  std::lock_guard lock(mu_);
  auto it = open_.find(client);
  if (it != open_.end() && --it->second == 0) open_.erase(it);
}

ConnectionGuard::~ConnectionGuard() { Flush(); }

void ConnectionGuard::Note(const char* event, const std::string& client) {
  if (!limits_.on_limit) return;
  {
    std::lock_guard lock(mu_);
    ++noted_[std::string(event) + " " + client];
    if (SteadyClock::now() - last_note_ < std::chrono::seconds(1)) return;  // reported by a later call
  }
  Flush();
}

void ConnectionGuard::Flush() {
  if (!limits_.on_limit) return;
  std::map<std::string, size_t> report;
  {
    std::lock_guard lock(mu_);
    last_note_ = SteadyClock::now();
    report.swap(noted_);
  }
  for (const auto& [key, count] : report) {
    auto space = key.find(' ');
    limits_.on_limit(key.substr(0, space), key.substr(space + 1), count);
  }
}

bool ConnectionGuard::Serve(int sock, SSL_CTX* ssl_ctx, const Server& server) {
  auto started = SteadyClock::now();
  // Released in the reverse order, however Serve returns: the TLS session, the socket, then
  // the connection's place in its client's count.
  std::string client;
  {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    if (getpeername(sock, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
      client = ClientKey(reinterpret_cast<const sockaddr*>(&addr), len);
  }
  const bool admitted = Admit(client);
  ScopeExit leave([&] {
    if (admitted) Leave(client);
  });
  ScopeExit close_socket([sock] {
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
  });
  if (!admitted) {
    if (!ssl_ctx) {
      static constexpr char kBusy[] =
          "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\nRetry-After: 1\r\n\r\n";
      (void)::send(sock, kBusy, sizeof kBusy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    Note("http_connection_refused", client);
    return false;
  }
  int flags = ::fcntl(sock, F_GETFL);
  if (flags >= 0) ::fcntl(sock, F_SETFL, flags | O_NONBLOCK);
  int one = 1;
  ::setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

  bool ok = true;
  bool cut = false;
  bool stopped = false;  // the server stopped while this connection's headers were awaited
  bool too_large = false;
  bool linger = false;
  std::unique_ptr<SSL, void (*)(SSL*)> ssl(ssl_ctx ? SSL_new(ssl_ctx) : nullptr, [](SSL* s) { SSL_free(s); });
  ScopeExit end_tls([&] {
    if (ssl && ok && !cut && !stopped) SSL_shutdown(ssl.get());
  });
  if (ssl_ctx) ok = ssl && SSL_set_fd(ssl.get(), sock) == 1 && AcceptTls(ssl.get(), sock, started + limits_.header_timeout);
  if (ok) {
    GuardedStream strm(sock, ssl.get(), server.read_timeout, server.write_timeout, server.running);
    RequestState state;
    current_request = &state;
    ScopeExit forget_request([] { current_request = nullptr; });
    size_t left = server.keep_alive_max_count;
    bool first = true;
    while (server.running() && left > 0) {
      if (!strm.HasBufferedInput()) {
        // An idle keep-alive connection waits for its next request this long at most.
        pollfd p{sock, POLLIN, 0};
        int r;
        do {
          r = ::poll(&p, 1, static_cast<int>(server.keep_alive_timeout_sec * 1000));
        } while (r < 0 && errno == EINTR);
        if (r <= 0) break;
      }
      // The first request's deadline counts from the connection's start; a later one's from
      // its first byte.
      auto request_start = first ? started : SteadyClock::now();
      first = false;
      --left;
      state = RequestState{};
      strm.StartHeaders(request_start + limits_.header_timeout, limits_.max_header_bytes, limits_.max_header_lines);
      bool closed = false;
      ok = server.process_request(strm, left == 0, closed, [&](httplib::Request& req) {
        state.request = &req;
        strm.StartBody(SteadyClock::now() + limits_.body_timeout);
      });
      cut = strm.deadline_passed();
      stopped = strm.stopped();
      too_large = strm.headers_too_large();
      // A request whose headers did not parse or did not come in time leaves the stream
      // in doubt: what follows is not a request boundary.
      linger = ((ok && state.close_after) || too_large) && !ssl && !cut && !stopped;
      if (!ok || closed || state.close_after || !state.request || cut || stopped || too_large) break;
    }
  }
  if (linger) Linger(sock);
  if (cut) Note("http_deadline_cut", client);
  if (too_large) Note("http_headers_too_large", client);
  return ok;
}

}  // namespace snapvol
