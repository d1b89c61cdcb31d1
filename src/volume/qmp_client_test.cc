// QmpClient against a fake QEMU on a unix socket: each test scripts what the fake answers.
#include "volume/qmp_client.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <thread>

#include "core/ids.h"

namespace snapvol {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

const char kGreeting[] =
    R"({"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}})"
    "\n";

// Listens on a unix socket; the first client is served by script(fd) in a thread.
class FakeQemu {
 public:
  explicit FakeQemu(std::function<void(FakeQemu&, int)> script) : script_(std::move(script)) {
    path_ = testing::TempDir() + "/qmp-" + NewVolumeId().substr(4, 8) + ".sock";
    listen_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path_.c_str(), sizeof(a.sun_path) - 1);
    ::unlink(path_.c_str());
    EXPECT_EQ(::bind(listen_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    EXPECT_EQ(::listen(listen_, 1), 0);
    thread_ = std::thread([this] {
      int fd = ::accept(listen_, nullptr, nullptr);
      if (fd < 0) return;
      script_(*this, fd);
      ::close(fd);
    });
  }
  ~FakeQemu() {
    ::shutdown(listen_, SHUT_RDWR);
    thread_.join();
    ::close(listen_);
    ::unlink(path_.c_str());
  }
  const std::string& path() const { return path_; }

  static void Send(int fd, const std::string& s) { ASSERT_EQ(::send(fd, s.data(), s.size(), MSG_NOSIGNAL), ssize_t(s.size())); }
  // The next command the client sent (null when it hung up).
  json Receive(int fd) {
    for (;;) {
      size_t nl = buf_.find('\n');
      if (nl != std::string::npos) {
        json j = json::parse(buf_.substr(0, nl));
        buf_.erase(0, nl + 1);
        return j;
      }
      char b[4096];
      ssize_t n = ::recv(fd, b, sizeof(b), 0);
      if (n <= 0) return nullptr;
      buf_.append(b, size_t(n));
    }
  }
  // Greets and accepts qmp_capabilities.
  void Handshake(int fd) {
    Send(fd, kGreeting);
    json c = Receive(fd);
    ASSERT_EQ(c["execute"], "qmp_capabilities");
    Send(fd, json({{"return", json::object()}, {"id", c["id"]}}).dump() + "\n");
  }

 private:
  std::function<void(FakeQemu&, int)> script_;
  std::string path_, buf_;
  int listen_ = -1;
  std::thread thread_;
};

TEST(QmpClient, SkipsEventsAndStaleAnswersAndReadsSplitLines) {
  FakeQemu fake([](FakeQemu& f, int fd) {
    f.Handshake(fd);
    json c = f.Receive(fd);
    EXPECT_EQ(c["execute"], "query-named-block-nodes");
    EXPECT_EQ(c["arguments"], json({{"flat", true}}));
    FakeQemu::Send(fd, R"({"event": "JOB_STATUS_CHANGE", "data": {"status": "running", "id": "j"}})" "\n");
    FakeQemu::Send(fd, json({{"return", "stale"}, {"id", 999}}).dump() + "\n");
    std::string answer = json({{"return", json::array({{{"node-name", "disk"}}})}, {"id", c["id"]}}).dump() + "\n";
    FakeQemu::Send(fd, answer.substr(0, 10));
    std::this_thread::sleep_for(50ms);
    FakeQemu::Send(fd, answer.substr(10));
  });
  auto q = QmpClient::Connect(fake.path(), 5s);
  ASSERT_TRUE(q) << q.error().ToString();
  EXPECT_EQ((*q)->version(), "7.2.22");
  auto r = (*q)->Execute("query-named-block-nodes", {{"flat", true}});
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ((*r)[0]["node-name"], "disk");
}

TEST(QmpClient, ErrorAnswersCarryQemusClassAndDescription) {
  FakeQemu fake([](FakeQemu& f, int fd) {
    f.Handshake(fd);
    const std::pair<const char*, const char*> errors[] = {{"GenericError", "NBD server already running"},
                                                          {"DeviceNotFound", "Cannot find device='nope'"},
                                                          {"CommandNotFound", "The command frob has not been found"}};
    for (const auto& [cls, desc] : errors) {
      json c = f.Receive(fd);
      FakeQemu::Send(fd, json({{"error", {{"class", cls}, {"desc", desc}}}, {"id", c["id"]}}).dump() + "\n");
    }
  });
  auto q = QmpClient::Connect(fake.path(), 5s);
  ASSERT_TRUE(q) << q.error().ToString();
  auto a = (*q)->Execute("nbd-server-start");
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code(), ErrorCode::kConflict);
  EXPECT_EQ(a.error().message(), "QMP nbd-server-start: GenericError: NBD server already running");
  auto b = (*q)->Execute("block-job-cancel", {{"device", "nope"}});
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code(), ErrorCode::kNotFound);
  auto c = (*q)->Execute("frob");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code(), ErrorCode::kUnsupported);
}

TEST(QmpClient, ASocketThatClosesFailsRetryably) {
  FakeQemu fake([](FakeQemu& f, int fd) {
    f.Handshake(fd);
    f.Receive(fd);  // and hang up without answering
  });
  auto q = QmpClient::Connect(fake.path(), 5s);
  ASSERT_TRUE(q) << q.error().ToString();
  auto r = (*q)->Execute("query-jobs");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kIoError);
  EXPECT_TRUE(r.error().retryable());
  EXPECT_NE(r.error().message().find("closed"), std::string::npos) << r.error().message();
}

TEST(QmpClient, AQemuThatDoesNotAnswerFailsAtTheDeadline) {
  std::atomic<bool> done{false};
  FakeQemu fake([&](FakeQemu& f, int fd) {
    f.Handshake(fd);
    f.Receive(fd);
    FakeQemu::Send(fd, R"({"event": "STILL_ALIVE"})" "\n");  // events do not extend the deadline
    while (!done) std::this_thread::sleep_for(10ms);
  });
  auto q = QmpClient::Connect(fake.path(), 300ms);
  ASSERT_TRUE(q) << q.error().ToString();
  auto start = std::chrono::steady_clock::now();
  auto r = (*q)->Execute("query-jobs");
  auto took = std::chrono::steady_clock::now() - start;
  done = true;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kIoError);
  EXPECT_NE(r.error().message().find("no answer within 300 ms"), std::string::npos) << r.error().message();
  EXPECT_GE(took, 290ms);
  EXPECT_LT(took, 3s);
}

TEST(QmpClient, AGreetingThatNeverComesOrIsNotQmpFails) {
  {
    std::atomic<bool> done{false};
    FakeQemu silent([&](FakeQemu&, int) {
      while (!done) std::this_thread::sleep_for(10ms);
    });
    auto q = QmpClient::Connect(silent.path(), 200ms);
    done = true;
    ASSERT_FALSE(q);
    EXPECT_EQ(q.error().code(), ErrorCode::kIoError);
  }
  FakeQemu http([](FakeQemu&, int fd) { FakeQemu::Send(fd, R"({"hello": "world"})" "\n"); });
  auto q = QmpClient::Connect(http.path(), 2s);
  ASSERT_FALSE(q);
  EXPECT_EQ(q.error().code(), ErrorCode::kInvalidArgument);
  auto none = QmpClient::Connect(testing::TempDir() + "/no-such.sock", 1s);
  ASSERT_FALSE(none);
}

TEST(QmpClient, ALineThatIsNotJsonFails) {
  FakeQemu fake([](FakeQemu& f, int fd) {
    f.Handshake(fd);
    f.Receive(fd);
    FakeQemu::Send(fd, "{not json\n");
  });
  auto q = QmpClient::Connect(fake.path(), 2s);
  ASSERT_TRUE(q);
  auto r = (*q)->Execute("query-jobs");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kIoError);
}

}  // namespace
}  // namespace snapvol
