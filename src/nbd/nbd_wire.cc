#include "nbd/nbd_wire.h"

#include <endian.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <climits>

namespace snapvol::nbd {

Wire::~Wire() {
  if (session_) gnutls_deinit(session_);
}

uint16_t Wire::FromBe(uint16_t v) { return be16toh(v); }
uint32_t Wire::FromBe(uint32_t v) { return be32toh(v); }
uint64_t Wire::FromBe(uint64_t v) { return be64toh(v); }

void Wire::Put16(uint16_t v) {
  v = htobe16(v);
  Put(&v, 2);
}
void Wire::Put32(uint32_t v) {
  v = htobe32(v);
  Put(&v, 4);
}
void Wire::Put64(uint64_t v) {
  v = htobe64(v);
  Put(&v, 8);
}

bool Wire::WaitReadable(int max_ms) {
  for (;;) {
    int ms = max_ms;
    if (deadline_ != TimePoint::max()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - std::chrono::steady_clock::now());
      int64_t left_ms = std::max<int64_t>(0, left.count() + 1);
      ms = max_ms < 0 ? static_cast<int>(std::min<int64_t>(left_ms, INT_MAX))
                      : static_cast<int>(std::min<int64_t>(left_ms, max_ms));
    }
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, ms);
    if (r > 0) return true;  // readable, or an error/hangup the next recv reports
    if (r == 0) return false;
    if (errno != EINTR) return false;
  }
}

long Wire::RecvSome(void* buf, size_t n) {
  if (session_) {
    for (;;) {
      ssize_t got = gnutls_record_recv(session_, buf, n);
      if (got == GNUTLS_E_AGAIN || got == GNUTLS_E_INTERRUPTED) continue;
      return got < 0 ? -1 : got;
    }
  }
  for (;;) {
    if (!WaitReadable()) return -1;
    ssize_t got = ::recv(fd_, buf, n, 0);
    if (got < 0 && errno == EINTR) continue;
    return got;
  }
}

bool Wire::Read(void* buf, size_t n) {
  auto* p = static_cast<uint8_t*>(buf);
  while (n > 0) {
    long got = RecvSome(p, n);
    if (got <= 0) return false;
    p += got;
    n -= static_cast<size_t>(got);
  }
  return true;
}

bool Wire::Discard(uint64_t n) {
  uint8_t sink[4096];
  while (n > 0) {
    size_t step = std::min<uint64_t>(n, sizeof sink);
    if (!Read(sink, step)) return false;
    n -= step;
  }
  return true;
}

bool Wire::SendAll(const char* p, size_t n) {
  while (n > 0) {
    ssize_t sent = ::send(fd_, p, n, MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent <= 0) return false;  // includes SO_SNDTIMEO expiring (EAGAIN)
    p += sent;
    n -= static_cast<size_t>(sent);
  }
  return true;
}

bool Wire::Flush() {
  bool ok = true;
  if (session_) {
    size_t off = 0;
    while (ok && off < out_.size()) {
      ssize_t sent = gnutls_record_send(session_, out_.data() + off, out_.size() - off);
      if (sent == GNUTLS_E_AGAIN || sent == GNUTLS_E_INTERRUPTED) continue;
      if (sent <= 0) ok = false;
      else off += static_cast<size_t>(sent);
    }
  } else {
    ok = SendAll(out_.data(), out_.size());
  }
  out_.clear();
  return ok;
}

ssize_t Wire::Pull(gnutls_transport_ptr_t self, void* buf, size_t n) {
  auto* w = static_cast<Wire*>(self);
  for (;;) {
    if (!w->WaitReadable()) {
      gnutls_transport_set_errno(w->session_, ETIMEDOUT);
      return -1;
    }
    ssize_t got = ::recv(w->fd_, buf, n, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) gnutls_transport_set_errno(w->session_, errno == EAGAIN ? ETIMEDOUT : errno);
    return got;
  }
}

ssize_t Wire::Push(gnutls_transport_ptr_t self, const void* buf, size_t n) {
  auto* w = static_cast<Wire*>(self);
  for (;;) {
    ssize_t sent = ::send(w->fd_, buf, n, MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0) gnutls_transport_set_errno(w->session_, errno == EAGAIN ? ETIMEDOUT : errno);
    return sent;
  }
}

int Wire::PullTimeout(gnutls_transport_ptr_t self, unsigned int ms) {
  auto* w = static_cast<Wire*>(self);
  int max_ms = ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : static_cast<int>(std::min<unsigned>(ms, INT_MAX));
  return w->WaitReadable(max_ms) ? 1 : 0;
}

Status Wire::StartTls(gnutls_psk_server_credentials_t creds, void* user) {
  if (session_) return InvalidArgument("TLS is already on");
  if (int rc = gnutls_init(&session_, GNUTLS_SERVER); rc != GNUTLS_E_SUCCESS) {
    session_ = nullptr;
    return MakeError(ErrorCode::kIoError, std::string("gnutls_init: ") + gnutls_strerror(rc));
  }
  // PSK key exchanges only (with ephemeral (EC)DH first, for forward secrecy); TLS 1.2 and 1.3.
  const char* err = nullptr;
  int rc = gnutls_priority_set_direct(
      session_, "NORMAL:-VERS-TLS1.0:-VERS-TLS1.1:-KX-ALL:+ECDHE-PSK:+DHE-PSK:+PSK", &err);
  if (rc == GNUTLS_E_SUCCESS) rc = gnutls_credentials_set(session_, GNUTLS_CRD_PSK, creds);
  if (rc != GNUTLS_E_SUCCESS)
    return MakeError(ErrorCode::kIoError, std::string("TLS setup: ") + gnutls_strerror(rc));
  gnutls_session_set_ptr(session_, user);
  gnutls_transport_set_ptr(session_, this);
  gnutls_transport_set_pull_function(session_, &Wire::Pull);
  gnutls_transport_set_push_function(session_, &Wire::Push);
  gnutls_transport_set_pull_timeout_function(session_, &Wire::PullTimeout);
  do {
    rc = gnutls_handshake(session_);
  } while (rc < 0 && !gnutls_error_is_fatal(rc));
  if (rc < 0) return MakeError(ErrorCode::kUnauthorized, std::string("TLS handshake: ") + gnutls_strerror(rc));
  return OkStatus();
}

void Wire::Close() {
  if (session_) (void)gnutls_bye(session_, GNUTLS_SHUT_WR);
}

}  // namespace snapvol::nbd
