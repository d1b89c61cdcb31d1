// One NBD connection's byte stream: whole reads and gathered writes of big-endian fields, over
// the plain socket or, after STARTTLS, over a GnuTLS session (TLS with pre-shared keys).
//
// Every read waits at most until the deadline the server set (the handshake's, the idle
// timeout's, a request's); a peer that stalls past it is treated as gone. Sends are bounded by
// the socket's SO_SNDTIMEO, which the server sets.
// Thread-safety: one thread at a time (a connection's own).
#pragma once

#include <gnutls/gnutls.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace snapvol::nbd {

class Wire {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  explicit Wire(int fd) : fd_(fd) {}
  ~Wire();
  Wire(const Wire&) = delete;
  Wire& operator=(const Wire&) = delete;

  // Reads from now on fail once `deadline` has passed; TimePoint::max(): no deadline.
  void SetDeadline(TimePoint deadline) { deadline_ = deadline; }
  bool Read(void* buf, size_t n);
  bool Discard(uint64_t n);
  template <typename T>
  bool ReadBe(T* v) {
    T raw;
    if (!Read(&raw, sizeof raw)) return false;
    *v = FromBe(raw);
    return true;
  }

  // Output is gathered and sent by Flush(), so a reply leaves in one or few sends.
  void Put(const void* p, size_t n) { out_.append(static_cast<const char*>(p), n); }
  void Put(std::string_view s) { out_.append(s); }
  void Put16(uint16_t v);
  void Put32(uint32_t v);
  void Put64(uint64_t v);
  bool Flush();

  // Runs a TLS server handshake with pre-shared keys (the credentials' callback finds the
  // key); `user` is what gnutls_session_get_ptr returns inside that callback. Afterwards every
  // read and write is encrypted. Unauthenticated on an unknown identity or a wrong key.
  Status StartTls(gnutls_psk_server_credentials_t creds, void* user);
  bool tls() const { return session_ != nullptr; }
  // Sends TLS close_notify where TLS is on (best effort, bounded by the send timeout).
  void Close();

 private:
  static uint16_t FromBe(uint16_t v);
  static uint32_t FromBe(uint32_t v);
  static uint64_t FromBe(uint64_t v);
  // Waits until the socket is readable or the deadline passes (false).
  bool WaitReadable(int max_ms = -1);
  long RecvSome(void* buf, size_t n);
  bool SendAll(const char* p, size_t n);
  static ssize_t Pull(gnutls_transport_ptr_t self, void* buf, size_t n);
  static ssize_t Push(gnutls_transport_ptr_t self, const void* buf, size_t n);
  static int PullTimeout(gnutls_transport_ptr_t self, unsigned int ms);

  int fd_;
  TimePoint deadline_ = TimePoint::max();
  gnutls_session_t session_ = nullptr;
  std::string out_;
};

}  // namespace snapvol::nbd
