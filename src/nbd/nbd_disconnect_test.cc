// NbdServer::Disconnect and DisconnectStale on a real listener (TCP on loopback, TLS-PSK): which
// connections end, which stay, and that a failed current() ends nothing.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <mutex>

#include "nbd/nbd_psk.h"
#include "nbd/nbd_test_client.h"

namespace snapvol::nbd {
namespace {

using namespace proto;
using testing::MemExport;
using testing::OptReply;
using testing::RawClient;

const std::vector<uint8_t> kKey = PskForSecret("team-1 secret");

// The one disk "vol-a", opened under whatever generation the test has set when the lookup runs.
class Tagged : public Export {
 public:
  Tagged(std::shared_ptr<MemExport> disk, std::string generation) : disk_(std::move(disk)), gen_(std::move(generation)) {}
  uint64_t size() const override { return disk_->size(); }
  Status Read(uint64_t offset, std::span<uint8_t> out) override { return disk_->Read(offset, out); }
  Status Write(uint64_t offset, std::span<const uint8_t> data, bool fua) override { return disk_->Write(offset, data, fua); }
  Status Flush() override { return disk_->Flush(); }
  Status Trim(uint64_t offset, uint64_t length) override { return disk_->Trim(offset, length); }
  Status WriteZeroes(uint64_t offset, uint64_t length, bool may_punch) override {
    return disk_->WriteZeroes(offset, length, may_punch);
  }
  Result<std::vector<Extent>> BlockStatus(uint64_t offset, uint64_t length) override {
    return disk_->BlockStatus(offset, length);
  }
  std::string identity() const override { return "vol-a"; }
  std::string generation() const override { return gen_; }

 private:
  std::shared_ptr<MemExport> disk_;
  std::string gen_;
};

class DisconnectTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions o;
    o.tcp_listen = "127.0.0.1:0";
    o.psk = [](const std::string& identity) -> std::optional<PskKey> {
      if (identity == "AKIATEAM1") return PskKey{kKey, Peer{"111111111111", false, identity}};
      return std::nullopt;
    };
    server_ = std::make_unique<NbdServer>(
        [this](const Peer&, const std::string& name) -> Result<std::shared_ptr<Export>> {
          if (name != "vol-a") return NotFound(name);
          std::lock_guard lock(mu_);
          return std::shared_ptr<Export>(std::make_shared<Tagged>(disk_, generation_));
        },
        [](const Peer&) { return std::vector<std::string>{"vol-a"}; }, std::move(o));
    ASSERT_TRUE(server_->Start().has_value());
  }
  void TearDown() override { server_->Stop(); }

  void SetGeneration(const std::string& g) {
    std::lock_guard lock(mu_);
    generation_ = g;
  }
  // A client that opened vol-a under the generation set now.
  std::unique_ptr<RawClient> Open() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(server_->tcp_port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    auto c = std::make_unique<RawClient>(fd);
    EXPECT_TRUE(c->Hello());
    EXPECT_TRUE(c->StartTls("AKIATEAM1", kKey));
    std::vector<OptReply> info;
    OptReply r;
    EXPECT_TRUE(c->OptionAll(kOptGo, RawClient::GoData("vol-a"), &info, &r));
    EXPECT_EQ(r.type, kRepAck) << r.data;
    return c;
  }
  // The client still gets an answer to a read.
  static bool Served(RawClient& c, uint64_t handle) {
    std::string back;
    return c.Request(0, kCmdRead, handle, 0, 4096, "", &back) == 0 && back.size() == 4096;
  }

  std::mutex mu_;
  std::string generation_ = "i-1@100";  // guarded by mu_
  std::shared_ptr<MemExport> disk_ = std::make_shared<MemExport>(1 << 20);
  std::unique_ptr<NbdServer> server_;
};

TEST_F(DisconnectTest, OnlyTheConnectionsOfAnOlderGenerationEnd) {
  auto old_one = Open();
  SetGeneration("i-1@200");  // detached and attached again
  auto new_one = Open();
  const auto open = server_->OpenExports();
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(open.at("vol-a"), (std::set<std::string>{"i-1@100", "i-1@200"}));

  int calls = 0;
  auto ended = server_->DisconnectStale("vol-a", [&]() -> Result<std::optional<std::string>> {
    ++calls;
    return std::optional<std::string>("i-1@200");
  });
  ASSERT_TRUE(ended.has_value()) << ended.error().message();
  EXPECT_EQ(*ended, 1u);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(old_one->Closed());
  EXPECT_TRUE(Served(*new_one, 1));
  EXPECT_EQ(server_->OpenExports().at("vol-a"), (std::set<std::string>{"i-1@200"}));
}

TEST_F(DisconnectTest, AFailedReadOfTheCurrentGenerationEndsNothing) {
  auto c = Open();
  auto ended = server_->DisconnectStale(
      "vol-a", []() -> Result<std::optional<std::string>> { return MakeError(ErrorCode::kIoError, "catalog unreachable"); });
  ASSERT_FALSE(ended.has_value());
  EXPECT_EQ(ended.error().message(), "catalog unreachable");
  EXPECT_TRUE(Served(*c, 1));
}

TEST_F(DisconnectTest, NoCurrentGenerationOrAPlainDisconnectEndsThemAll) {
  auto a = Open();
  SetGeneration("i-2@300");
  auto b = Open();
  auto ended = server_->DisconnectStale("vol-a", []() -> Result<std::optional<std::string>> { return std::nullopt; });
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(*ended, 2u);
  EXPECT_TRUE(a->Closed());
  EXPECT_TRUE(b->Closed());
  auto c = Open();
  ended = server_->Disconnect("vol-a");
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(*ended, 1u);
  EXPECT_TRUE(c->Closed());
  EXPECT_TRUE(server_->OpenExports().empty());
}

}  // namespace
}  // namespace snapvol::nbd
