#include "nbd/nbd_server.h"

#include <arpa/inet.h>
#include <endian.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>

#include "core/file_util.h"

namespace snapvol::nbd {
namespace {

// ---- protocol constants (the NBD protocol document, "fixed newstyle") ----
constexpr uint64_t kNbdMagic = 0x4e42444d41474943ull;  // "NBDMAGIC"
constexpr uint64_t kOptMagic = 0x49484156454F5054ull;  // "IHAVEOPT"
constexpr uint64_t kOptReplyMagic = 0x3e889045565a9ull;
constexpr uint32_t kRequestMagic = 0x25609513;
constexpr uint32_t kSimpleReplyMagic = 0x67446698;
constexpr uint32_t kStructuredReplyMagic = 0x668e33ef;

constexpr uint16_t kFlagFixedNewstyle = 1 << 0;
constexpr uint16_t kFlagNoZeroes = 1 << 1;
constexpr uint32_t kClientFixedNewstyle = 1 << 0;
constexpr uint32_t kClientNoZeroes = 1 << 1;

enum Opt : uint32_t {
  kOptExportName = 1,
  kOptAbort = 2,
  kOptList = 3,
  kOptStartTls = 5,
  kOptInfo = 6,
  kOptGo = 7,
  kOptStructuredReply = 8,
  kOptListMetaContext = 9,
  kOptSetMetaContext = 10,
};
enum Rep : uint32_t {
  kRepAck = 1,
  kRepServer = 2,
  kRepInfo = 3,
  kRepMetaContext = 4,
  kRepErrUnsup = 0x80000001,
  kRepErrPolicy = 0x80000002,
  kRepErrInvalid = 0x80000003,
  kRepErrUnknown = 0x80000006,
  kRepErrTooBig = 0x80000009,
};
constexpr uint16_t kInfoExport = 0;
constexpr uint16_t kInfoBlockSize = 3;

constexpr uint16_t kTransHasFlags = 1 << 0;
constexpr uint16_t kTransSendFlush = 1 << 2;
constexpr uint16_t kTransSendFua = 1 << 3;
constexpr uint16_t kTransSendTrim = 1 << 5;
constexpr uint16_t kTransSendWriteZeroes = 1 << 6;
constexpr uint16_t kTransCanMultiConn = 1 << 8;
constexpr uint16_t kTransmissionFlags =
    kTransHasFlags | kTransSendFlush | kTransSendFua | kTransSendTrim | kTransSendWriteZeroes | kTransCanMultiConn;

enum Cmd : uint16_t {
  kCmdRead = 0,
  kCmdWrite = 1,
  kCmdDisc = 2,
  kCmdFlush = 3,
  kCmdTrim = 4,
  kCmdWriteZeroes = 6,
  kCmdBlockStatus = 7,
};
constexpr uint16_t kCmdFlagFua = 1 << 0;
constexpr uint16_t kCmdFlagNoHole = 1 << 1;
constexpr uint16_t kCmdFlagDf = 1 << 2;
constexpr uint16_t kCmdFlagReqOne = 1 << 3;

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

constexpr uint16_t kReplyFlagDone = 1 << 0;
constexpr uint16_t kReplyTypeOffsetData = 1;
constexpr uint16_t kReplyTypeBlockStatus = 5;
constexpr uint16_t kReplyTypeError = 0x8001;

constexpr uint32_t kEperm = 1, kEio = 5, kEinval = 22, kEnospc = 28, kEnotsup = 95;
constexpr uint32_t kBaseAllocationId = 1;  // our id for the base:allocation meta context
constexpr uint32_t kMaxOptionBytes = 64 << 10;
constexpr uint32_t kMaxExtents = 2048;

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

// A connection's socket: whole reads and writes, and big-endian fields.
class Wire {
 public:
  explicit Wire(int fd) : fd_(fd) {}
  bool Read(void* buf, size_t n) {
    auto* p = static_cast<uint8_t*>(buf);
    while (n > 0) {
      ssize_t got = ::recv(fd_, p, n, 0);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return false;
      p += got;
      n -= static_cast<size_t>(got);
    }
    return true;
  }
  bool Discard(uint64_t n) {
    uint8_t sink[4096];
    while (n > 0) {
      size_t step = std::min<uint64_t>(n, sizeof sink);
      if (!Read(sink, step)) return false;
      n -= step;
    }
    return true;
  }
  template <typename T>
  bool ReadBe(T* v) {
    T raw;
    if (!Read(&raw, sizeof raw)) return false;
    if constexpr (sizeof(T) == 2) *v = be16toh(raw);
    if constexpr (sizeof(T) == 4) *v = be32toh(raw);
    if constexpr (sizeof(T) == 8) *v = be64toh(raw);
    return true;
  }
  // Output is gathered and sent by Flush(), so a reply leaves in one or few send() calls.
  void Put(const void* p, size_t n) { out_.append(static_cast<const char*>(p), n); }
  void Put16(uint16_t v) {
    v = htobe16(v);
    Put(&v, 2);
  }
  void Put32(uint32_t v) {
    v = htobe32(v);
    Put(&v, 4);
  }
  void Put64(uint64_t v) {
    v = htobe64(v);
    Put(&v, 8);
  }
  bool Flush() {
    size_t off = 0;
    while (off < out_.size()) {
      ssize_t n = ::send(fd_, out_.data() + off, out_.size() - off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    out_.clear();
    return true;
  }

 private:
  int fd_;
  std::string out_;
};

void OptionReply(Wire& w, uint32_t option, uint32_t type, std::string_view data = {}) {
  w.Put64(kOptReplyMagic);
  w.Put32(option);
  w.Put32(type);
  w.Put32(static_cast<uint32_t>(data.size()));
  w.Put(data.data(), data.size());
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

// ---- FileExport ----

Result<std::shared_ptr<FileExport>> FileExport::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return MakeError(ErrorCode::kIoError, "cannot open " + path + ": " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return InvalidArgument(path + " is not a regular file");
  }
  return std::shared_ptr<FileExport>(new FileExport(fd, static_cast<uint64_t>(st.st_size), path));
}

FileExport::~FileExport() { ::close(fd_); }

Status FileExport::Read(uint64_t offset, std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return MakeError(ErrorCode::kIoError, "read " + path_ + ": " + std::strerror(errno));
    if (n == 0) {  // past the end of a file shorter than its export: zeroes
      std::fill(out.begin() + static_cast<std::ptrdiff_t>(done), out.end(), 0);
      break;
    }
    done += static_cast<size_t>(n);
  }
  return OkStatus();
}

Status FileExport::Write(uint64_t offset, std::span<const uint8_t> data, bool fua) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::pwrite(fd_, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return MakeError(errno == ENOSPC ? ErrorCode::kNoSpace : ErrorCode::kIoError,
                       "write " + path_ + ": " + std::strerror(errno));
    done += static_cast<size_t>(n);
  }
  return fua ? Flush() : OkStatus();
}

Status FileExport::Flush() {
  if (::fdatasync(fd_) != 0) return MakeError(ErrorCode::kIoError, "flush " + path_ + ": " + std::strerror(errno));
  return OkStatus();
}

Status FileExport::Trim(uint64_t offset, uint64_t length) { return WriteZeroes(offset, length, true); }

Status FileExport::WriteZeroes(uint64_t offset, uint64_t length, bool may_punch) {
  int mode = may_punch ? (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) : (FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE);
  if (::fallocate(fd_, mode, static_cast<off_t>(offset), static_cast<off_t>(length)) == 0) return OkStatus();
  if (errno != EOPNOTSUPP && errno != ENOSYS)
    return MakeError(errno == ENOSPC ? ErrorCode::kNoSpace : ErrorCode::kIoError,
                     "zero " + path_ + ": " + std::strerror(errno));
  // The file system cannot: write the zeroes.
  std::vector<uint8_t> zeros(std::min<uint64_t>(length, 1 << 20), 0);
  for (uint64_t done = 0; done < length;) {
    size_t step = static_cast<size_t>(std::min<uint64_t>(length - done, zeros.size()));
    RETURN_IF_ERROR(Write(offset + done, std::span(zeros.data(), step), false));
    done += step;
  }
  return OkStatus();
}

Result<uint64_t> FileExport::NextData(uint64_t offset) { return SeekData(fd_, offset, size_, path_); }
Result<uint64_t> FileExport::NextHole(uint64_t offset) { return SeekHole(fd_, offset, size_, path_); }

Result<std::vector<Extent>> FileExport::BlockStatus(uint64_t offset, uint64_t length) {
  std::vector<Extent> out;
  const uint64_t end = offset + length;
  for (uint64_t pos = offset; pos < end && out.size() < kMaxExtents;) {
    ASSIGN_OR_RETURN(uint64_t data, NextData(pos));
    if (data > pos) {  // a hole up to the next data
      uint64_t to = std::min(data, end);
      out.push_back({to - pos, kStateHole | kStateZero});
      pos = to;
      continue;
    }
    ASSIGN_OR_RETURN(uint64_t hole, NextHole(pos));
    uint64_t to = std::min(std::max(hole, pos + 1), end);
    out.push_back({to - pos, 0});
    pos = to;
  }
  return out;
}

// ---- the server ----

NbdServer::NbdServer(ExportLookup lookup, ExportList list, ServerOptions options)
    : lookup_(std::move(lookup)), list_(std::move(list)), options_(std::move(options)) {}

NbdServer::~NbdServer() { Stop(); }

Status NbdServer::Start() {
  if (!options_.unix_socket.empty()) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (options_.unix_socket.size() >= sizeof addr.sun_path)
      return InvalidArgument("NBD socket path is too long: " + options_.unix_socket);
    std::strcpy(addr.sun_path, options_.unix_socket.c_str());
    ::unlink(options_.unix_socket.c_str());  // a socket file left by a previous run
    unix_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (unix_fd_ < 0 || ::bind(unix_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::chmod(options_.unix_socket.c_str(), 0660) != 0 || ::listen(unix_fd_, 64) != 0)
      return MakeError(ErrorCode::kIoError, "cannot listen on " + options_.unix_socket + ": " + std::strerror(errno));
  }
  if (!options_.tcp_listen.empty()) {
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
  for (int fd : {unix_fd_, tcp_fd_})
    if (fd >= 0) acceptors_.emplace_back([this, fd] { AcceptLoop(fd); });
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
    for (int fd : client_fds_) ::shutdown(fd, SHUT_RDWR);  // their threads see EOF and end
    threads.swap(connections_);
  }
  for (auto& c : threads) c.thread.join();
}

void NbdServer::Claim(int fd, const std::string& name) {
  std::lock_guard lock(mu_);
  export_of_[fd] = name;
}

Result<size_t> NbdServer::Disconnect(const std::string& name, int wait_ms) {
  std::unique_lock lock(mu_);
  std::vector<std::shared_ptr<std::atomic<bool>>> ending;
  for (const auto& c : connections_) {
    auto it = export_of_.find(c.fd);
    if (c.done->load() || it == export_of_.end() || it->second != name) continue;
    ::shutdown(c.fd, SHUT_RDWR);  // its thread sees EOF or a failed send and ends
    ending.push_back(c.done);
  }
  bool all = ended_cv_.wait_for(lock, std::chrono::milliseconds(wait_ms), [&] {
    return std::all_of(ending.begin(), ending.end(), [](const auto& d) { return d->load(); });
  });
  if (!all)
    return MakeError(ErrorCode::kConflict, "NBD connections to " + name + " did not end within " +
                                               std::to_string(wait_ms) + " ms");
  return ending.size();
}

void NbdServer::AcceptLoop(int listen_fd) {
  while (!stopping_) {
    int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // shut down
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // fails harmlessly on Unix sockets
    std::lock_guard lock(mu_);
    if (stopping_) {
      ::close(fd);
      return;
    }
    // Join the threads of connections that have ended, so a client that reconnects in a loop
    // does not pile them up; refuse connections beyond the cap.
    for (auto it = connections_.begin(); it != connections_.end();) {
      if (it->done->load()) {
        it->thread.join();
        it = connections_.erase(it);
      } else {
        ++it;
      }
    }
    if (connections_.size() >= kMaxConnections) {
      ::close(fd);
      continue;
    }
    client_fds_.insert(fd);
    auto done = std::make_shared<std::atomic<bool>>(false);
    connections_.push_back({std::thread([this, fd, done] {
                              Serve(fd);
                              std::lock_guard finished(mu_);
                              client_fds_.erase(fd);
                              export_of_.erase(fd);
                              ::close(fd);
                              done->store(true);
                              ended_cv_.notify_all();
                            }),
                            done, fd});
  }
}

void NbdServer::Serve(int fd) {
  Wire w(fd);
  // ---- handshake ----
  w.Put64(kNbdMagic);
  w.Put64(kOptMagic);
  w.Put16(kFlagFixedNewstyle | kFlagNoZeroes);
  if (!w.Flush()) return;
  uint32_t client_flags;
  if (!w.ReadBe(&client_flags)) return;
  if ((client_flags & ~(kClientFixedNewstyle | kClientNoZeroes)) != 0) return;  // unknown flags: end
  const bool no_zeroes = client_flags & kClientNoZeroes;
  bool structured = false, base_allocation = false;
  std::shared_ptr<Export> exp;
  while (!exp) {
    uint64_t magic;
    uint32_t option, length;
    if (!w.ReadBe(&magic) || magic != kOptMagic || !w.ReadBe(&option) || !w.ReadBe(&length)) return;
    if (length > kMaxOptionBytes) {
      if (!w.Discard(length)) return;
      OptionReply(w, option, kRepErrTooBig);
      if (!w.Flush()) return;
      continue;
    }
    std::string data(length, '\0');
    if (!w.Read(data.data(), length)) return;
    auto invalid = [&] {
      OptionReply(w, option, kRepErrInvalid);
      return w.Flush();
    };
    switch (option) {
      case kOptExportName: {
        Claim(fd, data);  // before the lookup: a Disconnect from now on ends this connection
        auto found = lookup_(data);
        if (!found) return;  // the protocol has no error reply here: the connection ends
        exp = *found;
        w.Put64(exp->size());
        w.Put16(kTransmissionFlags);
        if (!no_zeroes) w.Put(std::string(124, '\0').data(), 124);
        if (!w.Flush()) return;
        break;
      }
      case kOptAbort:
        OptionReply(w, option, kRepAck);
        (void)w.Flush();
        return;
      case kOptList: {
        if (length != 0) {
          if (!invalid()) return;
          break;
        }
        for (const auto& name : list_()) OptionReply(w, option, kRepServer, Be32(static_cast<uint32_t>(name.size())) + name);
        OptionReply(w, option, kRepAck);
        if (!w.Flush()) return;
        break;
      }
      case kOptStartTls:
        OptionReply(w, option, kRepErrPolicy, "TLS is not offered: use the Unix socket or loopback");
        if (!w.Flush()) return;
        break;
      case kOptInfo:
      case kOptGo: {
        size_t pos = 0;
        std::string name;
        if (!TakeString(data, &pos, &name) || data.size() - pos < 2) {
          if (!invalid()) return;
          break;
        }
        uint16_t nreq;
        std::memcpy(&nreq, data.data() + pos, 2);
        nreq = be16toh(nreq);
        if (data.size() - pos - 2 != size_t{nreq} * 2) {
          if (!invalid()) return;
          break;
        }
        if (option == kOptGo) Claim(fd, name);
        auto found = lookup_(name);
        if (!found) {
          OptionReply(w, option, kRepErrUnknown, "no such export: " + name + " (is the volume attached?)");
          if (!w.Flush()) return;
          break;
        }
        OptionReply(w, option, kRepInfo, Be16(kInfoExport) + Be64((*found)->size()) + Be16(kTransmissionFlags));
        // Block sizes: 1-byte minimum, 4 KiB preferred, the request cap as the maximum.
        OptionReply(w, option, kRepInfo,
                    Be16(kInfoBlockSize) + Be32(1) + Be32(4096) + Be32(options_.max_request_bytes));
        OptionReply(w, option, kRepAck);
        if (!w.Flush()) return;
        if (option == kOptGo) exp = *found;
        break;
      }
      case kOptStructuredReply:
        if (length != 0) {
          if (!invalid()) return;
          break;
        }
        structured = true;
        OptionReply(w, option, kRepAck);
        if (!w.Flush()) return;
        break;
      case kOptListMetaContext:
      case kOptSetMetaContext: {
        size_t pos = 0;
        std::string name;
        if (!TakeString(data, &pos, &name) || data.size() - pos < 4 ||
            (option == kOptSetMetaContext && !structured)) {
          if (!invalid()) return;
          break;
        }
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
        if (!ok || pos != data.size()) {
          if (!invalid()) return;
          break;
        }
        if (!lookup_(name)) {
          OptionReply(w, option, kRepErrUnknown, "no such export: " + name);
          if (!w.Flush()) return;
          break;
        }
        bool want = (option == kOptListMetaContext && queries.empty()) ||
                    std::any_of(queries.begin(), queries.end(),
                                [](const std::string& q) { return q == "base:allocation" || q == "base:"; });
        if (want) OptionReply(w, option, kRepMetaContext, Be32(kBaseAllocationId) + "base:allocation");
        if (option == kOptSetMetaContext) base_allocation = want;
        OptionReply(w, option, kRepAck);
        if (!w.Flush()) return;
        break;
      }
      default:
        OptionReply(w, option, kRepErrUnsup);
        if (!w.Flush()) return;
    }
  }

  // ---- transmission ----
  const uint64_t size = exp->size();
  std::vector<uint8_t> buf;
  auto simple_reply = [&](uint64_t handle, uint32_t error) {
    w.Put32(kSimpleReplyMagic);
    w.Put32(error);
    w.Put64(handle);
  };
  auto structured_error = [&](uint64_t handle, uint32_t error, const std::string& msg) {
    w.Put32(kStructuredReplyMagic);
    w.Put16(kReplyFlagDone);
    w.Put16(kReplyTypeError);
    w.Put64(handle);
    w.Put32(static_cast<uint32_t>(4 + 2 + msg.size()));
    w.Put32(error);
    w.Put16(static_cast<uint16_t>(msg.size()));
    w.Put(msg.data(), msg.size());
  };
  auto reply_error = [&](uint64_t handle, uint32_t error, const std::string& msg) {
    if (structured) {
      structured_error(handle, error, msg.substr(0, 1024));
    } else {
      simple_reply(handle, error);
    }
  };
  for (;;) {
    uint32_t magic, length;
    uint16_t flags, type;
    uint64_t handle, offset;
    if (!w.ReadBe(&magic) || magic != kRequestMagic) return;  // bad magic: the stream is lost
    if (!w.ReadBe(&flags) || !w.ReadBe(&type) || !w.ReadBe(&handle) || !w.ReadBe(&offset) || !w.ReadBe(&length))
      return;
    const bool in_range = offset <= size && length <= size - offset;
    const uint16_t bad_flags = flags & ~AllowedFlags(type);
    if (type == kCmdWrite) {
      if (length > options_.max_request_bytes) return;  // too big to take in: end the connection
      buf.resize(length);
      if (!w.Read(buf.data(), length)) return;  // cut off mid-payload: nothing is written
      if (bad_flags) {
        reply_error(handle, kEinval, "flags " + std::to_string(bad_flags) + " are not valid on a write");
        if (!w.Flush()) return;
        continue;
      }
      Status st = in_range ? exp->Write(offset, buf, flags & kCmdFlagFua)
                           : MakeError(ErrorCode::kNoSpace, "write beyond the end of the export");
      if (st) {
        simple_reply(handle, 0);
      } else {
        reply_error(handle, in_range ? ErrnoFor(st.error()) : kEnospc, st.error().message());
      }
    } else if (bad_flags && type != kCmdDisc) {
      // Nothing is done: a flag this server does not know may change what the client expects.
      reply_error(handle, kEinval, "flags " + std::to_string(bad_flags) + " are not valid on command " + std::to_string(type));
    } else if (type == kCmdRead) {
      if (!in_range || length == 0 || length > options_.max_request_bytes) {
        reply_error(handle, kEinval, "read outside the export or too large");
      } else {
        buf.resize(length);
        Status st = exp->Read(offset, buf);
        if (!st) {
          reply_error(handle, ErrnoFor(st.error()), st.error().message());
        } else if (structured) {
          w.Put32(kStructuredReplyMagic);
          w.Put16(kReplyFlagDone);
          w.Put16(kReplyTypeOffsetData);
          w.Put64(handle);
          w.Put32(length + 8);
          w.Put64(offset);
          w.Put(buf.data(), length);
        } else {
          simple_reply(handle, 0);
          w.Put(buf.data(), length);
        }
      }
    } else if (type == kCmdDisc) {
      (void)exp->Flush();
      return;
    } else if (type == kCmdFlush) {
      Status st = exp->Flush();
      if (st) simple_reply(handle, 0);
      else reply_error(handle, ErrnoFor(st.error()), st.error().message());
    } else if (type == kCmdTrim || type == kCmdWriteZeroes) {
      Status st = !in_range ? MakeError(ErrorCode::kNoSpace, "beyond the end of the export")
                  : type == kCmdTrim ? exp->Trim(offset, length)
                                     : exp->WriteZeroes(offset, length, !(flags & kCmdFlagNoHole));
      if (st && (flags & kCmdFlagFua)) st = exp->Flush();
      if (st) simple_reply(handle, 0);
      else reply_error(handle, in_range ? ErrnoFor(st.error()) : kEnospc, st.error().message());
    } else if (type == kCmdBlockStatus) {
      if (!structured || !base_allocation) {
        reply_error(handle, kEinval, "no meta context was negotiated");
      } else if (!in_range || length == 0) {
        reply_error(handle, kEinval, "block status outside the export");
      } else {
        auto extents = exp->BlockStatus(offset, length);
        if (!extents) {
          reply_error(handle, ErrnoFor(extents.error()), extents.error().message());
        } else {
          if (flags & kCmdFlagReqOne) extents->resize(1);
          w.Put32(kStructuredReplyMagic);
          w.Put16(kReplyFlagDone);
          w.Put16(kReplyTypeBlockStatus);
          w.Put64(handle);
          w.Put32(static_cast<uint32_t>(4 + 8 * extents->size()));
          w.Put32(kBaseAllocationId);
          for (const auto& e : *extents) {
            w.Put32(static_cast<uint32_t>(e.length));  // ≤ the request's 32-bit length
            w.Put32(e.flags);
          }
        }
      }
    } else {
      reply_error(handle, kEinval, "unknown command " + std::to_string(type));
    }
    if (!w.Flush()) return;
  }
}

}  // namespace snapvol::nbd
