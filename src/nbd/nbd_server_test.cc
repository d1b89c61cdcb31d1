// The NBD server without a daemon: one connection over a socketpair, driven byte by byte.
// Identity (TLS-PSK, root, nobody), option limits, every command's bounds and flags, and the
// deadlines.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "core/service_metrics.h"
#include "nbd/nbd_psk.h"
#include "nbd/nbd_test_client.h"

namespace snapvol::nbd {
namespace {

using namespace proto;
using testing::Harness;
using testing::OptReply;
using testing::RawClient;

constexpr uint64_t kSize = 1 << 20;

const std::vector<uint8_t> kTeam1Key = PskForSecret("team-1 secret");

ServerOptions WithPsk() {
  ServerOptions o;
  o.psk = [](const std::string& identity) -> std::optional<PskKey> {
    if (identity == "AKIATEAM1") return PskKey{kTeam1Key, Peer{"111111111111", false, identity}};
    if (identity == "AKIAADMIN") return PskKey{PskForSecret("admin secret"), Peer{"999999999999", true, identity}};
    return std::nullopt;
  };
  return o;
}

// Connects as root on the socket and opens `name` with NBD_OPT_GO.
std::unique_ptr<RawClient> Opened(Harness& h, const std::string& name = "vol-a", bool structured = false) {
  auto c = h.Connect(Harness::Root());
  EXPECT_TRUE(c->Hello());
  OptReply r;
  if (structured) {
    EXPECT_TRUE(c->Option(kOptStructuredReply, "", &r) && r.type == kRepAck);
  }
  std::vector<OptReply> info;
  EXPECT_TRUE(c->OptionAll(kOptGo, RawClient::GoData(name), &info, &r));
  EXPECT_EQ(r.type, kRepAck) << r.data;
  return c;
}

std::vector<std::string> Listed(RawClient& c, uint32_t* final_type) {
  std::vector<OptReply> servers;
  OptReply last;
  EXPECT_TRUE(c.OptionAll(kOptList, "", &servers, &last));
  *final_type = last.type;
  std::vector<std::string> names;
  for (const auto& s : servers) names.push_back(s.data.substr(4));
  return names;
}

TEST(NbdIdentity, NobodySeesNothingUntilTls) {
  Harness h(WithPsk());
  auto c = h.Connect(Peer{});
  ASSERT_TRUE(c->Hello());
  OptReply r;
  for (uint32_t opt : {kOptList, kOptInfo, kOptGo, kOptStructuredReply, kOptListMetaContext}) {
    std::string data = opt == kOptList || opt == kOptStructuredReply ? "" : RawClient::GoData("vol-a");
    ASSERT_TRUE(c->Option(opt, data, &r)) << opt;
    EXPECT_EQ(r.type, kRepErrTlsReqd) << opt;
  }
  // EXPORT_NAME has no error reply: the connection ends, and nothing reached the export.
  ASSERT_TRUE(c->Send(RawClient::Be64(kOptMagic) + RawClient::Be32(kOptExportName) + RawClient::Be32(5) + "vol-a"));
  EXPECT_TRUE(c->Closed());
  EXPECT_EQ(h.Disk("vol-a").writes, 0);
}

TEST(NbdIdentity, WithoutTlsOnlyRootIsServed) {
  Harness h;  // no PSK lookup: TLS is not offered
  auto c = h.Connect(Peer{});
  ASSERT_TRUE(c->Hello());
  OptReply r;
  ASSERT_TRUE(c->Option(kOptList, "", &r));
  EXPECT_EQ(r.type, kRepErrPolicy);
  ASSERT_TRUE(c->Option(kOptStartTls, "", &r));
  EXPECT_EQ(r.type, kRepErrPolicy);
  auto root = h.Connect(Harness::Root());
  ASSERT_TRUE(root->Hello());
  uint32_t last = 0;
  EXPECT_EQ(Listed(*root, &last), (std::vector<std::string>{"vol-a", "vol-b"}));
  EXPECT_EQ(last, kRepAck);
}

TEST(NbdIdentity, TeamKeySeesAndOpensOnlyItsOwnExports) {
  Harness h(WithPsk());
  auto c = h.Connect(Peer{});
  ASSERT_TRUE(c->Hello());
  ASSERT_TRUE(c->StartTls("AKIATEAM1", kTeam1Key));
  uint32_t last = 0;
  EXPECT_EQ(Listed(*c, &last), std::vector<std::string>{"vol-a"});
  std::vector<OptReply> info;
  OptReply r;
  ASSERT_TRUE(c->OptionAll(kOptInfo, RawClient::GoData("vol-b"), &info, &r));
  EXPECT_EQ(r.type, kRepErrUnknown);  // another team's: the same answer as a missing one
  ASSERT_TRUE(c->OptionAll(kOptGo, RawClient::GoData("vol-b"), &info, &r));
  EXPECT_EQ(r.type, kRepErrUnknown);
  ASSERT_TRUE(c->OptionAll(kOptGo, RawClient::GoData("vol-a"), &info, &r));
  ASSERT_EQ(r.type, kRepAck);
  ASSERT_FALSE(info.empty());
  EXPECT_EQ(RawClient::U64(info[0].data, 2), kSize);
  std::string back;
  EXPECT_EQ(c->Request(0, kCmdWrite, 1, 4096, 5, "hello"), 0);
  EXPECT_EQ(c->Request(0, kCmdRead, 2, 4096, 5, "", &back), 0);
  EXPECT_EQ(back, "hello");
}

TEST(NbdMetrics, ConnectionsAndBytesAreCountedByTheAccount) {
  auto& m = ServiceMetrics();
  metrics::Gauge* open = m.nbd_open.With({"111111111111"});
  metrics::Counter* conns = m.nbd_connections.With({"111111111111"});
  metrics::Counter* read = m.nbd_read_bytes.With({"111111111111"});
  metrics::Counter* written = m.nbd_written_bytes.With({"111111111111"});
  const double open0 = open->Value(), conns0 = conns->Value(), read0 = read->Value(), written0 = written->Value();
  Harness h(WithPsk());
  {
    auto c = h.Connect(Peer{});
    ASSERT_TRUE(c->Hello());
    ASSERT_TRUE(c->StartTls("AKIATEAM1", kTeam1Key));
    std::vector<OptReply> info;
    OptReply r;
    ASSERT_TRUE(c->OptionAll(kOptGo, RawClient::GoData("vol-a"), &info, &r));
    ASSERT_EQ(r.type, kRepAck);
    std::string back;
    ASSERT_EQ(c->Request(0, kCmdWrite, 1, 4096, 5, "hello"), 0);
    ASSERT_EQ(c->Request(0, kCmdWrite, 2, 0, 3, "abc"), 0);
    ASSERT_EQ(c->Request(0, kCmdRead, 3, 4096, 5, "", &back), 0);
    ASSERT_EQ(c->Request(0, kCmdWrite, 4, kSize, 1, "x"), kEnospc);  // refused: not counted
    EXPECT_EQ(open->Value(), open0 + 1);
    EXPECT_EQ(conns->Value(), conns0 + 1);
    EXPECT_EQ(written->Value(), written0 + 8);
    EXPECT_EQ(read->Value(), read0 + 5);
  }
  // The server's thread notices the close on its own time: wait for it (bounded).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (open->Value() != open0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(open->Value(), open0);
}

TEST(NbdIdentity, WrongKeyOrUnknownIdentityFailsTheHandshake) {
  Harness h(WithPsk());
  for (auto [identity, key] : {std::pair<std::string, std::vector<uint8_t>>{"AKIATEAM1", PskForSecret("guess")},
                               {"AKIANOBODY", kTeam1Key}}) {
    auto c = h.Connect(Peer{});
    ASSERT_TRUE(c->Hello());
    EXPECT_FALSE(c->StartTls(identity, key)) << identity;
  }
}

TEST(NbdIdentity, AdministratorKeySeesEveryExport) {
  Harness h(WithPsk());
  auto c = h.Connect(Peer{});
  ASSERT_TRUE(c->Hello());
  ASSERT_TRUE(c->StartTls("AKIAADMIN", PskForSecret("admin secret")));
  uint32_t last = 0;
  EXPECT_EQ(Listed(*c, &last), (std::vector<std::string>{"vol-a", "vol-b"}));
}

TEST(NbdIdentity, OpenExportsPerPeerAreCapped) {
  ServerOptions o = WithPsk();
  o.max_exports_per_peer = 1;
  Harness h(o);
  auto open = [&](OptReply* r) {
    auto c = h.Connect(Peer{});
    EXPECT_TRUE(c->Hello());
    EXPECT_TRUE(c->StartTls("AKIATEAM1", kTeam1Key));
    std::vector<OptReply> info;
    EXPECT_TRUE(c->OptionAll(kOptGo, RawClient::GoData("vol-a"), &info, r));
    return c;
  };
  OptReply r1, r2;
  auto first = open(&r1);
  EXPECT_EQ(r1.type, kRepAck);
  auto second = open(&r2);
  EXPECT_EQ(r2.type, kRepErrPolicy);
  EXPECT_NE(r2.data.find("cap"), std::string::npos) << r2.data;
  // Root on the socket is not capped.
  auto root = Opened(h);
  EXPECT_EQ(root->Request(0, kCmdFlush, 1, 0, 0), 0);
}

TEST(NbdHandshake, OversizedOptionIsTooBigAndTheStreamStaysInStep) {
  Harness h;
  auto c = h.Connect(Harness::Root());
  ASSERT_TRUE(c->Hello());
  OptReply r;
  ASSERT_TRUE(c->Option(kOptList, std::string((64 << 10) + 1, 'x'), &r));
  EXPECT_EQ(r.type, kRepErrTooBig);
  uint32_t last = 0;
  EXPECT_EQ(Listed(*c, &last).size(), 2u);
}

TEST(NbdHandshake, MalformedOptionsAreInvalidAndChangeNothing) {
  Harness h;
  auto c = h.Connect(Harness::Root());
  ASSERT_TRUE(c->Hello());
  OptReply r;
  std::vector<OptReply> info;
  // A name longer than the data; a request count that does not match; trailing bytes.
  ASSERT_TRUE(c->Option(kOptGo, RawClient::Be32(100) + "vol-a", &r));
  EXPECT_EQ(r.type, kRepErrInvalid);
  ASSERT_TRUE(c->Option(kOptGo, RawClient::Be32(5) + "vol-a" + RawClient::Be16(3) + RawClient::Be16(0), &r));
  EXPECT_EQ(r.type, kRepErrInvalid);
  ASSERT_TRUE(c->Option(kOptList, "x", &r));
  EXPECT_EQ(r.type, kRepErrInvalid);
  ASSERT_TRUE(c->Option(kOptStructuredReply, "x", &r));
  EXPECT_EQ(r.type, kRepErrInvalid);
  ASSERT_TRUE(c->Option(kOptSetMetaContext, RawClient::Be32(5) + "vol-a" + RawClient::Be32(0), &r));
  EXPECT_EQ(r.type, kRepErrInvalid);  // before STRUCTURED_REPLY
  ASSERT_TRUE(c->Option(kOptStartTls, "x", &r));
  EXPECT_EQ(r.type, kRepErrInvalid);
  ASSERT_TRUE(c->Option(77, "", &r));
  EXPECT_EQ(r.type, kRepErrUnsup);
  ASSERT_TRUE(c->OptionAll(kOptGo, RawClient::GoData("vol-zz"), &info, &r));
  EXPECT_EQ(r.type, kRepErrUnknown);
  ASSERT_TRUE(c->OptionAll(kOptGo, RawClient::GoData("vol-a"), &info, &r));
  EXPECT_EQ(r.type, kRepAck);
}

TEST(NbdHandshake, BadMagicOrUnknownClientFlagsEndTheConnection) {
  Harness h;
  auto c = h.Connect(Harness::Root());
  std::string hello;
  ASSERT_TRUE(c->Recv(18, &hello));
  ASSERT_TRUE(c->Send(RawClient::Be32(1 << 7)));
  EXPECT_TRUE(c->Closed());
  auto d = h.Connect(Harness::Root());
  ASSERT_TRUE(d->Hello());
  ASSERT_TRUE(d->Send(RawClient::Be64(0x1234) + RawClient::Be32(kOptList) + RawClient::Be32(0)));
  EXPECT_TRUE(d->Closed());
}

TEST(NbdHandshake, ADeadlineEndsAClientThatStalls) {
  ServerOptions o;
  o.handshake_timeout_ms = 200;
  Harness h(o);
  auto c = h.Connect(Harness::Root());
  std::string hello;
  ASSERT_TRUE(c->Recv(18, &hello));
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(c->Closed());  // nothing sent: the server gives up
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(30));
}

TEST(NbdTransmission, AnIdleConnectionIsClosedAfterTheIdleTimeout) {
  ServerOptions o;
  o.idle_timeout_ms = 200;
  Harness h(o);
  auto c = Opened(h);
  EXPECT_EQ(c->Request(0, kCmdFlush, 1, 0, 0), 0);
  EXPECT_TRUE(c->Closed());
}

TEST(NbdTransmission, EveryCommandIsBoundedByTheExport) {
  Harness h;
  auto c = Opened(h);
  std::string page(4096, 'p'), back;
  // Beyond the end, starting past it (offset > size: size - offset would wrap), or crossing it.
  for (uint64_t offset : {kSize + 4096, kSize - 2048, uint64_t{1} << 63}) {
    EXPECT_EQ(c->Request(0, kCmdWrite, 1, offset, 4096, page), kEnospc) << offset;
    EXPECT_EQ(c->Request(0, kCmdRead, 2, offset, 4096, "", &back), kEinval) << offset;
    EXPECT_EQ(c->Request(0, kCmdTrim, 3, offset, 4096), kEnospc) << offset;
    EXPECT_EQ(c->Request(0, kCmdWriteZeroes, 4, offset, 4096), kEnospc) << offset;
  }
  EXPECT_EQ(c->Request(0, kCmdRead, 5, 0, 0, "", &back), kEinval);  // an empty read
  // Exactly up to the end is fine.
  EXPECT_EQ(c->Request(0, kCmdWrite, 6, kSize - 4096, 4096, page), 0);
  EXPECT_EQ(c->Request(0, kCmdRead, 7, kSize - 4096, 4096, "", &back), 0);
  EXPECT_EQ(back, page);
  EXPECT_EQ(h.Disk("vol-a").out_of_range, 0);
}

TEST(NbdTransmission, FlagsACommandMayNotCarryAreRefusedAndNothingIsDone) {
  Harness h;
  auto c = Opened(h);
  std::string back;
  EXPECT_EQ(c->Request(kCmdFlagDf, kCmdWrite, 1, 0, 4096, std::string(4096, 'q')), kEinval);
  EXPECT_EQ(c->Request(1 << 9, kCmdRead, 2, 0, 4096, "", &back), kEinval);
  EXPECT_EQ(c->Request(kCmdFlagNoHole, kCmdTrim, 3, 0, 4096), kEinval);
  EXPECT_EQ(c->Request(0, 99, 4, 0, 4096), kEinval);  // an unknown command
  EXPECT_EQ(h.Disk("vol-a").writes, 0);
  EXPECT_EQ(c->Request(kCmdFlagFua, kCmdWrite, 5, 0, 3, "fua"), 0);
  EXPECT_TRUE(h.Disk("vol-a").last_fua);
  EXPECT_EQ(c->Request(0, kCmdRead, 6, 0, 3, "", &back), 0);
  EXPECT_EQ(back, "fua");
}

TEST(NbdTransmission, AWriteCutOffMidPayloadIsNotApplied) {
  Harness h;
  auto c = Opened(h);
  ASSERT_TRUE(c->Send(RawClient::Be32(kRequestMagic) + RawClient::Be16(0) + RawClient::Be16(kCmdWrite) +
                      RawClient::Be64(1) + RawClient::Be64(0) + RawClient::Be32(8192) + std::string(4000, 'z')));
  c->ShutdownWrite();
  EXPECT_TRUE(c->Closed());
  c.reset();
  auto d = Opened(h);
  std::string back;
  EXPECT_EQ(d->Request(0, kCmdRead, 2, 0, 4000, "", &back), 0);
  EXPECT_EQ(back, std::string(4000, '\0'));
  EXPECT_EQ(h.Disk("vol-a").writes, 0);
}

TEST(NbdTransmission, ARequestLargerThanTheCapEndsTheConnection) {
  ServerOptions o;
  o.max_request_bytes = 64 << 10;
  Harness h(o);
  auto c = Opened(h);
  std::string back;
  EXPECT_EQ(c->Request(0, kCmdRead, 1, 0, (64 << 10) + 1, "", &back), kEinval);  // a read: refused
  // A write: the connection ends before its payload is taken, even when all of it is sent.
  EXPECT_EQ(c->Request(0, kCmdWrite, 2, 0, (64 << 10) + 1, std::string((64 << 10) + 1, 'x')), -1);
  EXPECT_EQ(h.Disk("vol-a").writes, 0);
}

TEST(NbdTransmission, StructuredRepliesAndBlockStatusNeedTheirNegotiation) {
  Harness h;
  auto c = Opened(h, "vol-a", /*structured=*/true);
  // BLOCK_STATUS without a meta context: an error chunk, EINVAL.
  ASSERT_TRUE(c->Send(RawClient::Be32(kRequestMagic) + RawClient::Be16(0) + RawClient::Be16(kCmdBlockStatus) +
                      RawClient::Be64(9) + RawClient::Be64(0) + RawClient::Be32(4096)));
  std::string head, body;
  ASSERT_TRUE(c->Recv(20, &head));
  EXPECT_EQ(RawClient::U32(head, 0), kStructuredReplyMagic);
  EXPECT_EQ(RawClient::U16(head, 6), kReplyTypeError);
  ASSERT_TRUE(c->Recv(RawClient::U32(head, 16), &body));
  EXPECT_EQ(RawClient::U32(body, 0), kEinval);
  // A read comes back as one OFFSET_DATA chunk.
  ASSERT_TRUE(c->Send(RawClient::Be32(kRequestMagic) + RawClient::Be16(0) + RawClient::Be16(kCmdRead) +
                      RawClient::Be64(10) + RawClient::Be64(512) + RawClient::Be32(16)));
  ASSERT_TRUE(c->Recv(20, &head));
  EXPECT_EQ(RawClient::U16(head, 6), kReplyTypeOffsetData);
  ASSERT_TRUE(c->Recv(RawClient::U32(head, 16), &body));
  EXPECT_EQ(RawClient::U64(body, 0), 512u);
  EXPECT_EQ(body.size(), 8u + 16u);
}

TEST(NbdTransmission, BlockStatusIsBoundedByTheExportToo) {
  Harness h;
  auto c = h.Connect(Harness::Root());
  ASSERT_TRUE(c->Hello());
  OptReply r;
  std::vector<OptReply> info;
  ASSERT_TRUE(c->Option(kOptStructuredReply, "", &r) && r.type == kRepAck);
  std::string query = RawClient::Be32(15) + "base:allocation";
  ASSERT_TRUE(c->OptionAll(kOptSetMetaContext, RawClient::Be32(5) + "vol-a" + RawClient::Be32(1) + query, &info, &r));
  ASSERT_EQ(r.type, kRepAck);
  ASSERT_EQ(info.size(), 1u);  // the base:allocation context, with its id
  ASSERT_TRUE(c->OptionAll(kOptGo, RawClient::GoData("vol-a"), &info, &r));
  ASSERT_EQ(r.type, kRepAck);
  auto block_status = [&](uint64_t offset, uint32_t length, std::string* body) {
    EXPECT_TRUE(c->Send(RawClient::Be32(kRequestMagic) + RawClient::Be16(0) + RawClient::Be16(kCmdBlockStatus) +
                        RawClient::Be64(1) + RawClient::Be64(offset) + RawClient::Be32(length)));
    std::string head;
    EXPECT_TRUE(c->Recv(20, &head));
    EXPECT_TRUE(c->Recv(RawClient::U32(head, 16), body));
    return RawClient::U16(head, 6);
  };
  std::string body;
  for (uint64_t offset : {kSize + 4096, kSize - 2048, uint64_t{1} << 63}) {
    EXPECT_EQ(block_status(offset, 4096, &body), kReplyTypeError) << offset;
    EXPECT_EQ(RawClient::U32(body, 0), kEinval) << offset;
  }
  EXPECT_EQ(block_status(kSize - 4096, 4096, &body), kReplyTypeBlockStatus);
  EXPECT_EQ(RawClient::U32(body, 4), 4096u);  // one extent, the whole range
  EXPECT_EQ(h.Disk("vol-a").out_of_range, 0);
}

TEST(NbdPsk, KeyIsDerivedFromTheSecretAndWrittenAsPsktoolDoes) {
  auto a = PskForSecret("s1"), b = PskForSecret("s2");
  EXPECT_EQ(a.size(), 32u);
  EXPECT_NE(a, b);
  EXPECT_EQ(a, PskForSecret("s1"));
  std::string line = PskFileLine("AKIAX", a);
  EXPECT_EQ(line.substr(0, 6), "AKIAX:");
  EXPECT_EQ(line.size(), 6u + 64u + 1u);
  EXPECT_EQ(line.find("s1"), std::string::npos);
}

}  // namespace
}  // namespace snapvol::nbd
