// One NBD connection: the option haggling (identity first), then the commands.
#include "nbd/nbd_server.h"

#include <endian.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "core/service_metrics.h"
#include "nbd/nbd_protocol.h"
#include "nbd/nbd_wire.h"

namespace snapvol::nbd {
using namespace proto;

namespace {

constexpr uint32_t kBaseAllocationId = 1;  // our id for the base:allocation meta context
constexpr uint32_t kMaxOptionBytes = 64 << 10;
constexpr size_t kPayloadPiece = 128 << 10;  // a WRITE's payload is taken in pieces of this

// The flags a command may carry. FUA is accepted on every command (it only means something on
// writes); DF on reads (a read is always answered in one chunk); anything else is EINVAL.
uint16_t AllowedFlags(uint16_t type) {
  switch (type) {
    case kCmdRead:
      return kCmdFlagFua | kCmdFlagDf;
    case kCmdWriteZeroes:
      return kCmdFlagFua | kCmdFlagNoHole;
    case kCmdBlockStatus:
      return kCmdFlagFua | kCmdFlagReqOne;
    default:
      return kCmdFlagFua;
  }
}

uint32_t ErrnoFor(const Error& e) {
  switch (e.code()) {
    case ErrorCode::kNoSpace:
      return kEnospc;
    case ErrorCode::kInvalidArgument:
      return kEinval;
    case ErrorCode::kUnsupported:
      return kEnotsup;
    case ErrorCode::kUnauthorized:
      return kEperm;
    default:
      return kEio;
  }
}

std::string Be16(uint16_t v) {
  v = htobe16(v);
  return std::string(reinterpret_cast<const char*>(&v), 2);
}
std::string Be32(uint32_t v) {
  v = htobe32(v);
  return std::string(reinterpret_cast<const char*>(&v), 4);
}
std::string Be64(uint64_t v) {
  v = htobe64(v);
  return std::string(reinterpret_cast<const char*>(&v), 8);
}

// Reads a 32-bit length-prefixed string from an option payload at *pos.
bool TakeString(std::string_view data, size_t* pos, std::string* out, uint32_t max = 4096) {
  if (data.size() - *pos < 4) return false;
  uint32_t n;
  std::memcpy(&n, data.data() + *pos, 4);
  n = be32toh(n);
  *pos += 4;
  if (n > max || data.size() - *pos < n) return false;
  out->assign(data.substr(*pos, n));
  *pos += n;
  return true;
}

// What the PSK callback needs and finds, per TLS handshake.
struct TlsAuth {
  const PskLookup* lookup;
  std::optional<Peer> peer;
};

int PskCallback(gnutls_session_t session, const char* identity, gnutls_datum_t* key) {
  auto* auth = static_cast<TlsAuth*>(gnutls_session_get_ptr(session));
  if (!auth || !identity) return -1;
  auto found = (*auth->lookup)(identity);
  if (!found || found->key.empty() || !found->peer.authenticated()) return -1;  // unknown identity
  key->data = static_cast<unsigned char*>(gnutls_malloc(found->key.size()));
  if (!key->data) return -1;
  std::memcpy(key->data, found->key.data(), found->key.size());
  key->size = static_cast<unsigned int>(found->key.size());
  auth->peer = std::move(found->peer);
  return 0;
}

std::string NoSuchExport(const std::string& name) {
  return "no such export: " + name + " (is the volume attached, and yours?)";
}

std::chrono::steady_clock::time_point In(int ms) {
  return ms > 0 ? std::chrono::steady_clock::now() + std::chrono::milliseconds(ms)
                : std::chrono::steady_clock::time_point::max();
}

}  // namespace

// One connection: the option haggling, then the commands.
class NbdServer::Session {
 public:
  Session(NbdServer* server, int fd, Peer peer) : s_(*server), fd_(fd), w_(fd), peer_(std::move(peer)) {}
  void Run() {
    if (Handshake()) Transmission();
    w_.Close();
  }

 private:
  bool Handshake();
  // An option reply, queued; Reply also sends what is queued.
  void Queue(uint32_t option, uint32_t type, std::string_view data = {}) {
    w_.Put64(kOptReplyMagic);
    w_.Put32(option);
    w_.Put32(type);
    w_.Put32(static_cast<uint32_t>(data.size()));
    w_.Put(data);
  }
  bool Reply(uint32_t option, uint32_t type, std::string_view data = {}) {
    Queue(option, type, data);
    return w_.Flush();
  }
  // STARTTLS: the TLS handshake; the peer becomes the PSK identity's.
  bool StartTls(uint32_t length);
  // INFO and GO. false: the connection ends.
  bool InfoOrGo(uint32_t option, std::string_view data);
  bool MetaContext(uint32_t option, std::string_view data);
  // The export for `name`, counted against the peer's cap; nullptr with the option reply's
  // error type and message set when refused.
  std::shared_ptr<Export> Open(const std::string& name, uint32_t* rep, std::string* why);
  void Transmission();
  void ReplyError(uint64_t handle, uint32_t error, const std::string& msg);
  void SimpleReply(uint64_t handle, uint32_t error) {
    w_.Put32(kSimpleReplyMagic);
    w_.Put32(error);
    w_.Put64(handle);
  }

  NbdServer& s_;
  int fd_;
  Wire w_;
  Peer peer_;
  bool no_zeroes_ = false, structured_ = false, base_allocation_ = false;
  std::shared_ptr<Export> exp_;
};

bool NbdServer::Session::Handshake() {
  w_.SetDeadline(In(s_.options_.handshake_timeout_ms));
  w_.Put64(kNbdMagic);
  w_.Put64(kOptMagic);
  w_.Put16(kFlagFixedNewstyle | kFlagNoZeroes);
  if (!w_.Flush()) return false;
  uint32_t client_flags;
  if (!w_.ReadBe(&client_flags)) return false;
  if ((client_flags & ~(kClientFixedNewstyle | kClientNoZeroes)) != 0) return false;  // unknown flags: end
  no_zeroes_ = client_flags & kClientNoZeroes;
  while (!exp_) {
    uint64_t magic;
    uint32_t option, length;
    if (!w_.ReadBe(&magic) || magic != kOptMagic || !w_.ReadBe(&option) || !w_.ReadBe(&length)) return false;
    if (option == kOptExportName && !peer_.authenticated()) return false;  // no error reply exists here
    if (length > kMaxOptionBytes) {
      if (!w_.Discard(length) || !Reply(option, kRepErrTooBig)) return false;
      continue;
    }
    std::string data(length, '\0');
    if (!w_.Read(data.data(), length)) return false;
    if (!peer_.authenticated() && option != kOptStartTls && option != kOptAbort) {
      bool ok = s_.psk_creds_ ? Reply(option, kRepErrTlsReqd, "TLS with a pre-shared key is required (NBD_OPT_STARTTLS)")
                              : Reply(option, kRepErrPolicy, "only root may use this server");
      if (!ok) return false;
      continue;
    }
    bool ok = true;
    switch (option) {
      case kOptExportName: {
        uint32_t rep;
        std::string why;
        exp_ = Open(data, &rep, &why);
        if (!exp_) return false;  // the protocol has no error reply here: the connection ends
        w_.Put64(exp_->size());
        w_.Put16(kTransmissionFlags);
        if (!no_zeroes_) w_.Put(std::string(124, '\0'));
        ok = w_.Flush();
        break;
      }
      case kOptAbort:
        (void)Reply(option, kRepAck);
        return false;
      case kOptList:
        if (length != 0) {
          ok = Reply(option, kRepErrInvalid);
          break;
        }
        for (const auto& name : s_.list_(peer_)) Queue(option, kRepServer, Be32(static_cast<uint32_t>(name.size())) + name);
        ok = Reply(option, kRepAck);
        break;
      case kOptStartTls:
        ok = StartTls(length);
        break;
      case kOptInfo:
      case kOptGo:
        ok = InfoOrGo(option, data);
        break;
      case kOptStructuredReply:
        if (length != 0) {
          ok = Reply(option, kRepErrInvalid);
          break;
        }
        structured_ = true;
        ok = Reply(option, kRepAck);
        break;
      case kOptListMetaContext:
      case kOptSetMetaContext:
        ok = MetaContext(option, data);
        break;
      default:
        ok = Reply(option, kRepErrUnsup);
    }
    if (!ok) return false;
  }
  s_.HandshakeDone(fd_);
  return true;
}

bool NbdServer::Session::StartTls(uint32_t length) {
  if (length != 0) return Reply(kOptStartTls, kRepErrInvalid);
  if (w_.tls()) return Reply(kOptStartTls, kRepErrInvalid, "TLS is already on");
  if (!s_.psk_creds_) return Reply(kOptStartTls, kRepErrPolicy, "TLS is not offered here");
  if (!Reply(kOptStartTls, kRepAck)) return false;
  TlsAuth auth{&s_.options_.psk, std::nullopt};
  if (!w_.StartTls(s_.psk_creds_, &auth) || !auth.peer) return false;
  peer_ = std::move(*auth.peer);
  // What was negotiated in the clear does not carry over (the protocol document's rule).
  structured_ = base_allocation_ = false;
  return true;
}

std::shared_ptr<Export> NbdServer::Session::Open(const std::string& name, uint32_t* rep, std::string* why) {
  std::shared_lock lookups(s_.lookup_mu_);  // a Disconnect waits for this lookup (nbd_server.h)
  s_.Claim(fd_, name);  // before the lookup: a Disconnect from now on ends this connection
  auto found = s_.lookup_(peer_, name);
  if (found) s_.Opened(fd_, **found);
  lookups.unlock();
  if (!found) {
    *rep = kRepErrUnknown;
    *why = NoSuchExport(name);
    return nullptr;
  }
  if (!s_.ClaimExportSlot(fd_, peer_)) {
    *rep = kRepErrPolicy;
    *why = peer_.identity + " has " + std::to_string(s_.options_.max_exports_per_peer) +
           " exports open already (the cap per account)";
    return nullptr;
  }
  return *found;
}

bool NbdServer::Session::InfoOrGo(uint32_t option, std::string_view data) {
  size_t pos = 0;
  std::string name;
  if (!TakeString(data, &pos, &name) || data.size() - pos < 2) return Reply(option, kRepErrInvalid);
  uint16_t nreq;
  std::memcpy(&nreq, data.data() + pos, 2);
  nreq = be16toh(nreq);
  if (data.size() - pos - 2 != size_t{nreq} * 2) return Reply(option, kRepErrInvalid);
  std::shared_ptr<Export> found;
  uint32_t rep = kRepErrUnknown;
  std::string why = NoSuchExport(name);
  if (option == kOptGo) {
    found = Open(name, &rep, &why);
  } else if (auto looked = s_.lookup_(peer_, name)) {
    found = *looked;
  }
  if (!found) return Reply(option, rep, why);
  Queue(option, kRepInfo, Be16(kInfoExport) + Be64(found->size()) + Be16(kTransmissionFlags));
  // Block sizes: 1-byte minimum, 4 KiB preferred, the request cap as the maximum.
  Queue(option, kRepInfo, Be16(kInfoBlockSize) + Be32(1) + Be32(4096) + Be32(s_.options_.max_request_bytes));
  if (!Reply(option, kRepAck)) return false;
  if (option == kOptGo) exp_ = found;
  return true;
}

bool NbdServer::Session::MetaContext(uint32_t option, std::string_view data) {
  size_t pos = 0;
  std::string name;
  if (!TakeString(data, &pos, &name) || data.size() - pos < 4 || (option == kOptSetMetaContext && !structured_))
    return Reply(option, kRepErrInvalid);
  uint32_t nq;
  std::memcpy(&nq, data.data() + pos, 4);
  nq = be32toh(nq);
  pos += 4;
  std::vector<std::string> queries;
  bool ok = nq <= 128;
  for (uint32_t i = 0; ok && i < nq; ++i) {
    std::string q;
    ok = TakeString(data, &pos, &q, 1024);
    queries.push_back(std::move(q));
  }
  if (!ok || pos != data.size()) return Reply(option, kRepErrInvalid);
  if (!s_.lookup_(peer_, name)) return Reply(option, kRepErrUnknown, NoSuchExport(name));
  bool want = (option == kOptListMetaContext && queries.empty()) ||
              std::any_of(queries.begin(), queries.end(),
                          [](const std::string& q) { return q == "base:allocation" || q == "base:"; });
  if (want) Queue(option, kRepMetaContext, Be32(kBaseAllocationId) + "base:allocation");
  if (option == kOptSetMetaContext) base_allocation_ = want;
  return Reply(option, kRepAck);
}

void NbdServer::Session::ReplyError(uint64_t handle, uint32_t error, const std::string& msg) {
  if (!structured_) return SimpleReply(handle, error);
  std::string m = msg.substr(0, 1024);
  w_.Put32(kStructuredReplyMagic);
  w_.Put16(kReplyFlagDone);
  w_.Put16(kReplyTypeError);
  w_.Put64(handle);
  w_.Put32(static_cast<uint32_t>(4 + 2 + m.size()));
  w_.Put32(error);
  w_.Put16(static_cast<uint16_t>(m.size()));
  w_.Put(m);
}

void NbdServer::Session::Transmission() {
  Export& exp = *exp_;
  // Counted by account for as long as the connection serves its export ("root": the operator
  // on the Unix socket). The children are looked up once: the loop below only adds to them.
  auto& m = ServiceMetrics();
  const std::string account = peer_.account.empty() ? "root" : peer_.account;
  metrics::Gauge* open = m.nbd_open.With({account});
  metrics::Counter* read_bytes = m.nbd_read_bytes.With({account});
  metrics::Counter* written_bytes = m.nbd_written_bytes.With({account});
  m.nbd_connections.With({account})->Add();
  open->Add(1);
  struct Closed {
    metrics::Gauge* open;
    ~Closed() { open->Add(-1); }
  } closed{open};
  const uint64_t size = exp.size();
  const uint32_t max_request = s_.options_.max_request_bytes;
  std::vector<uint8_t> buf;
  for (;;) {
    uint32_t magic, length;
    uint16_t flags, type;
    uint64_t handle, offset;
    w_.SetDeadline(In(s_.options_.idle_timeout_ms));
    if (!w_.ReadBe(&magic) || magic != kRequestMagic) return;  // idle too long, or bad magic: the stream is lost
    w_.SetDeadline(In(s_.options_.request_timeout_ms));
    if (!w_.ReadBe(&flags) || !w_.ReadBe(&type) || !w_.ReadBe(&handle) || !w_.ReadBe(&offset) || !w_.ReadBe(&length))
      return;
    const bool in_range = offset <= size && length <= size - offset;
    const uint16_t bad_flags = flags & ~AllowedFlags(type);
    if (type == kCmdWrite) {
      if (length > max_request) return;  // too big to take in: end the connection
      // Taken as it arrives: memory follows the bytes received, not the length announced.
      buf.clear();
      while (buf.size() < length) {
        size_t have = buf.size(), step = std::min<size_t>(length - have, kPayloadPiece);
        buf.resize(have + step);
        if (!w_.Read(buf.data() + have, step)) return;  // cut off mid-payload: nothing is written
      }
      if (bad_flags) {
        ReplyError(handle, kEinval, "flags " + std::to_string(bad_flags) + " are not valid on a write");
      } else {
        Status st = in_range ? exp.Write(offset, buf, flags & kCmdFlagFua)
                             : MakeError(ErrorCode::kNoSpace, "write beyond the end of the export");
        if (st) {
          written_bytes->Add(length);
          SimpleReply(handle, 0);
        } else {
          ReplyError(handle, in_range ? ErrnoFor(st.error()) : kEnospc, st.error().message());
        }
      }
    } else if (bad_flags && type != kCmdDisc) {
      // Nothing is done: a flag this server does not know may change what the client expects.
      ReplyError(handle, kEinval, "flags " + std::to_string(bad_flags) + " are not valid on command " + std::to_string(type));
    } else if (type == kCmdRead) {
      if (!in_range || length == 0 || length > max_request) {
        ReplyError(handle, kEinval, "read outside the export or too large");
      } else {
        buf.resize(length);
        Status st = exp.Read(offset, buf);
        if (st) read_bytes->Add(length);
        if (!st) {
          ReplyError(handle, ErrnoFor(st.error()), st.error().message());
        } else if (structured_) {
          w_.Put32(kStructuredReplyMagic);
          w_.Put16(kReplyFlagDone);
          w_.Put16(kReplyTypeOffsetData);
          w_.Put64(handle);
          w_.Put32(length + 8);
          w_.Put64(offset);
          w_.Put(buf.data(), length);
        } else {
          SimpleReply(handle, 0);
          w_.Put(buf.data(), length);
        }
      }
    } else if (type == kCmdDisc) {
      (void)exp.Flush();
      return;
    } else if (type == kCmdFlush) {
      Status st = exp.Flush();
      if (st) SimpleReply(handle, 0);
      else ReplyError(handle, ErrnoFor(st.error()), st.error().message());
    } else if (type == kCmdTrim || type == kCmdWriteZeroes) {
      Status st = !in_range ? MakeError(ErrorCode::kNoSpace, "beyond the end of the export")
                  : type == kCmdTrim ? exp.Trim(offset, length)
                                     : exp.WriteZeroes(offset, length, !(flags & kCmdFlagNoHole));
      if (st && (flags & kCmdFlagFua)) st = exp.Flush();
      if (st) SimpleReply(handle, 0);
      else ReplyError(handle, in_range ? ErrnoFor(st.error()) : kEnospc, st.error().message());
    } else if (type == kCmdBlockStatus) {
      if (!structured_ || !base_allocation_) {
        ReplyError(handle, kEinval, "no meta context was negotiated");
      } else if (!in_range || length == 0) {
        ReplyError(handle, kEinval, "block status outside the export");
      } else {
        auto extents = exp.BlockStatus(offset, length);
        if (!extents) {
          ReplyError(handle, ErrnoFor(extents.error()), extents.error().message());
        } else {
          if (flags & kCmdFlagReqOne) extents->resize(1);
          w_.Put32(kStructuredReplyMagic);
          w_.Put16(kReplyFlagDone);
          w_.Put16(kReplyTypeBlockStatus);
          w_.Put64(handle);
          w_.Put32(static_cast<uint32_t>(4 + 8 * extents->size()));
          w_.Put32(kBaseAllocationId);
          for (const auto& e : *extents) {
            w_.Put32(static_cast<uint32_t>(e.length));  // ≤ the request's 32-bit length
            w_.Put32(e.flags);
          }
        }
      }
    } else {
      ReplyError(handle, kEinval, "unknown command " + std::to_string(type));
    }
    if (buf.capacity() > max_request) std::vector<uint8_t>().swap(buf);
    if (!w_.Flush()) return;
  }
}

void NbdServer::ServeConnection(int fd, const Peer& unix_peer) {
  timeval tv{options_.request_timeout_ms / 1000, (options_.request_timeout_ms % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);  // a client that stops reading
  {
    std::lock_guard lock(mu_);
    conns_.try_emplace(fd);  // the listener registered it already; tests did not
  }
  Session(this, fd, unix_peer).Run();
  Unregister(fd);
}

void NbdServer::SetUpTls() {
  if (!options_.psk || psk_creds_) return;
  if (gnutls_psk_allocate_server_credentials(&psk_creds_) != GNUTLS_E_SUCCESS) {
    psk_creds_ = nullptr;
    return;
  }
  gnutls_psk_set_server_credentials_function(psk_creds_, &PskCallback);
  gnutls_psk_set_server_known_dh_params(psk_creds_, GNUTLS_SEC_PARAM_MEDIUM);  // for DHE-PSK
}

}  // namespace snapvol::nbd
