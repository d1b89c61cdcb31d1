// Wire constants of the NBD protocol ("fixed newstyle" negotiation, simple and structured
// replies), as the NBD protocol document names them. Shared by the server and its tests.
#pragma once

#include <cstdint>

namespace snapvol::nbd::proto {

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
  kRepErrTlsReqd = 0x80000005,
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

constexpr uint16_t kReplyFlagDone = 1 << 0;
constexpr uint16_t kReplyTypeOffsetData = 1;
constexpr uint16_t kReplyTypeBlockStatus = 5;
constexpr uint16_t kReplyTypeError = 0x8001;

constexpr uint32_t kEperm = 1, kEio = 5, kEinval = 22, kEnospc = 28, kEnotsup = 95;

}  // namespace snapvol::nbd::proto
