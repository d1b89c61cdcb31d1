#include "volume/qmp_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace snapvol {

namespace {

std::unexpected<Error> IoFailure(std::string m) { return MakeError(ErrorCode::kIoError, std::move(m), true); }

// QMP answers are small; a peer that sends megabytes without a newline is not QEMU.
constexpr size_t kMaxLine = 64 << 20;

}  // namespace

Result<std::unique_ptr<QmpClient>> QmpClient::Connect(const std::string& socket_path,
                                                       std::chrono::milliseconds timeout) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path))
    return InvalidArgument("QMP socket path " + socket_path + " is longer than a unix socket path may be");
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return std::unexpected(PosixError("socket", errno));
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    if (err == ECONNREFUSED)
      return IoFailure("QMP socket " + socket_path + " refused the connection (QEMU not running, or its monitor busy)");
    return std::unexpected(PosixError("connect to QMP socket " + socket_path, err));
  }
  std::unique_ptr<QmpClient> c(new QmpClient(socket_path, std::move(fd), timeout));
  auto greeting = c->ReadMessage(std::chrono::steady_clock::now() + timeout);
  if (!greeting) return std::unexpected(greeting.error().WithContext("QMP greeting"));
  if (!greeting->is_object() || !greeting->contains("QMP"))
    return MakeError(ErrorCode::kInvalidArgument, socket_path + " is not a QMP socket (no greeting)");
  try {
    const auto& v = (*greeting)["QMP"]["version"]["qemu"];
    c->version_ = std::to_string(v["major"].get<int>()) + "." + std::to_string(v["minor"].get<int>()) + "." +
                  std::to_string(v["micro"].get<int>());
  } catch (const nlohmann::json::exception&) {
    c->version_ = "unknown";
  }
  RETURN_IF_ERROR(c->Execute("qmp_capabilities"));
  return c;
}

Status QmpClient::WriteAll(const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::send(fd_.get(), data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EPIPE || errno == ECONNRESET) return IoFailure("QMP socket " + path_ + " closed");
      return std::unexpected(PosixError("write to QMP socket " + path_, errno));
    }
    done += static_cast<size_t>(n);
  }
  return OkStatus();
}

Result<nlohmann::json> QmpClient::ReadMessage(std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    size_t nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      auto parsed = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (parsed.is_discarded()) return MakeError(ErrorCode::kIoError, "QMP socket " + path_ + " sent a line that is not JSON");
      return parsed;
    }
    if (buffer_.size() > kMaxLine) return MakeError(ErrorCode::kIoError, "QMP socket " + path_ + " sent an endless line");
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      return IoFailure("QMP socket " + path_ + ": no answer within " + std::to_string(timeout_.count()) + " ms");
    pollfd p{fd_.get(), POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(PosixError("poll QMP socket " + path_, errno));
    }
    if (r == 0) continue;  // the deadline check above ends it
    char buf[65536];
    ssize_t n = ::recv(fd_.get(), buf, sizeof(buf), 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      if (errno == ECONNRESET) return IoFailure("QMP socket " + path_ + " closed");
      return std::unexpected(PosixError("read QMP socket " + path_, errno));
    }
    if (n == 0) return IoFailure("QMP socket " + path_ + " closed");
    buffer_.append(buf, static_cast<size_t>(n));
  }
}

Result<nlohmann::json> QmpClient::Execute(const std::string& command, const nlohmann::json& arguments) {
  const uint64_t id = next_id_++;
  nlohmann::json msg = {{"execute", command}, {"id", id}};
  if (!arguments.is_null()) msg["arguments"] = arguments;
  if (auto w = WriteAll(msg.dump() + "\n"); !w) return std::unexpected(w.error().WithContext("QMP " + command));
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  for (;;) {
    auto m = ReadMessage(deadline);
    if (!m) return std::unexpected(m.error().WithContext("QMP " + command));
    if (!m->is_object() || m->contains("event")) continue;
    // An answer to an earlier command whose wait timed out: not ours.
    if (!m->contains("id") || (*m)["id"] != id) continue;
    if (m->contains("return")) return (*m)["return"];
    if (m->contains("error")) {
      const auto& e = (*m)["error"];
      std::string cls, desc = e.dump();
      if (e.is_object() && e.contains("class") && e["class"].is_string()) cls = e["class"].get<std::string>();
      if (e.is_object() && e.contains("desc") && e["desc"].is_string()) desc = e["desc"].get<std::string>();
      std::string text = "QMP " + command + ": " + (cls.empty() ? "" : cls + ": ") + desc;
      if (cls == "DeviceNotFound") return NotFound(text);
      if (cls == "CommandNotFound") return MakeError(ErrorCode::kUnsupported, text);
      return Conflict(text);
    }
    return MakeError(ErrorCode::kIoError, "QMP " + command + ": an answer with neither return nor error");
  }
}

}  // namespace snapvol
