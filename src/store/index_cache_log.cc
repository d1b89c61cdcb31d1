#include "store/index_cache_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "core/bytes.h"
#include "core/hash.h"
#include "store/chunk_codec.h"

namespace snapvol {

// The log (all integers little endian):
//   0  magic "SVIXLOG1"   8  u64 XXH3-64 of bytes [16, 20+n)   16  u32 store id length n, the id
// then sections, back to back:
//   0  u64 XXH3-64 of the section's bytes [8, end)   8  u32 key length k   12  u32 plaintext
//   length m   16  the key (a packindex/ key)   16+k  the plaintext (as the store's object holds)

namespace {

constexpr char kLogMagic[] = "SVIXLOG1";
constexpr size_t kSectionHeader = 16;
constexpr uint32_t kMaxKeyBytes = 1024;

std::vector<uint8_t> LogHeader(const std::string& store_id) {
  std::vector<uint8_t> head(20 + store_id.size());
  std::memcpy(head.data(), kLogMagic, 8);
  PutU32(head.data() + 16, static_cast<uint32_t>(store_id.size()));
  std::memcpy(head.data() + 20, store_id.data(), store_id.size());
  PutU64(head.data() + 8, XXH3_64bits(head.data() + 16, head.size() - 16));
  return head;
}

}  // namespace

std::string IndexCacheLogPath(const std::string& cache_path) { return cache_path + ".log"; }

Status ResetIndexCacheLog(const std::string& path, const std::string& store_id) {
  // Not fsynced: a log lost or torn by a crash is refused by its checks and costs a re-read.
  std::array<uint8_t, 6> rnd{};
  RETURN_IF_ERROR(RandomBytes(rnd));
  const std::string tmp = path + ".tmp-" + ToHex(rnd);
  {
    ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600));
    if (auto st = WriteFull(fd.get(), LogHeader(store_id)); !st) {
      ::unlink(tmp.c_str());
      return st;
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return std::unexpected(PosixError("renaming the index cache log to " + path, err));
  }
  return OkStatus();
}

Result<uint64_t> AppendIndexCacheLog(const std::string& path, const std::string& store_id, const std::string& key,
                                     std::span<const uint8_t> plain) {
  if (key.size() > kMaxKeyBytes || plain.size() > kMaxPlaintextBytes)
    return Internal("index cache log: section too large for " + key);
  std::vector<uint8_t> sec(kSectionHeader + key.size() + plain.size());
  PutU32(sec.data() + 8, static_cast<uint32_t>(key.size()));
  PutU32(sec.data() + 12, static_cast<uint32_t>(plain.size()));
  std::memcpy(sec.data() + kSectionHeader, key.data(), key.size());
  if (!plain.empty()) std::memcpy(sec.data() + kSectionHeader + key.size(), plain.data(), plain.size());
  PutU64(sec.data(), XXH3_64bits(sec.data() + 8, sec.size() - 8));

  auto fd = OpenFile(path, O_WRONLY | O_APPEND);
  if (!fd && fd.error().code() == ErrorCode::kNotFound) {
    RETURN_IF_ERROR(ResetIndexCacheLog(path, store_id));
    fd = OpenFile(path, O_WRONLY | O_APPEND);
  }
  if (!fd) return std::unexpected(fd.error());
  // One write: with O_APPEND the kernel places it whole at the end, after any other writer's.
  ssize_t n;
  do {
    n = ::write(fd->get(), sec.data(), sec.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0) return std::unexpected(PosixError("appending to " + path, errno));
  if (static_cast<size_t>(n) != sec.size())  // disk full mid-write: the torn section is refused
    return MakeError(ErrorCode::kIoError, "appending to " + path + ": short write");
  struct stat st {};
  if (::fstat(fd->get(), &st) != 0) return std::unexpected(PosixError("stat " + path, errno));
  return static_cast<uint64_t>(st.st_size);
}

Result<IndexCacheLog> IndexCacheLog::Open(const std::string& path, const std::string& store_id) {
  IndexCacheLog log;
  log.path_ = path;
  ASSIGN_OR_RETURN(log.fd_, OpenFile(path, O_RDONLY));
  struct stat st {};
  if (::fstat(log.fd_.get(), &st) != 0) return std::unexpected(PosixError("stat " + path, errno));
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  auto bad = [&](const std::string& why) { return Corruption("index cache log " + path + ": " + why); };
  std::vector<uint8_t> buf(20);
  ASSIGN_OR_RETURN(size_t got, PreadFull(log.fd_.get(), buf, 0));
  if (got < 20 || std::memcmp(buf.data(), kLogMagic, 8) != 0) return bad("not an index cache log");
  const uint32_t id_len = GetU32(buf.data() + 16);
  if (id_len > kMaxKeyBytes || size - 20 < id_len) return bad("truncated header");
  buf.resize(20 + id_len);
  ASSIGN_OR_RETURN(got, PreadFull(log.fd_.get(), buf, 0));
  if (got != buf.size()) return bad("truncated header");
  if (XXH3_64bits(buf.data() + 16, buf.size() - 16) != GetU64(buf.data() + 8)) return bad("header checksum mismatch");
  const std::string sid(reinterpret_cast<const char*>(buf.data() + 20), id_len);
  if (sid != store_id)
    return MakeError(ErrorCode::kConflict, "index cache log " + path + " belongs to store " + sid + ", not " + store_id);

  uint64_t at = buf.size();
  while (at < size) {
    uint8_t head[kSectionHeader];
    if (size - at < kSectionHeader) return bad("truncated section at byte " + std::to_string(at));
    ASSIGN_OR_RETURN(got, PreadFull(log.fd_.get(), head, at));
    if (got != kSectionHeader) return bad("truncated section at byte " + std::to_string(at));
    Section s{at, GetU32(head + 8), GetU32(head + 12)};
    if (s.key_bytes > kMaxKeyBytes || s.plain_bytes > kMaxPlaintextBytes ||
        size - at - kSectionHeader < uint64_t{s.key_bytes} + s.plain_bytes)
      return bad("truncated section at byte " + std::to_string(at));
    RETURN_IF_ERROR(log.ReadSection(s, &buf));
    log.keys_.emplace_back(reinterpret_cast<const char*>(buf.data() + kSectionHeader), s.key_bytes);
    log.sections_.push_back(s);
    at += kSectionHeader + s.key_bytes + s.plain_bytes;
  }
  log.bytes_ = at;
  return log;
}

Status IndexCacheLog::ReadSection(const Section& s, std::vector<uint8_t>* buf) const {
  buf->resize(kSectionHeader + size_t{s.key_bytes} + s.plain_bytes);
  ASSIGN_OR_RETURN(size_t got, PreadFull(fd_.get(), *buf, s.offset));
  if (got != buf->size() || GetU32(buf->data() + 8) != s.key_bytes || GetU32(buf->data() + 12) != s.plain_bytes ||
      XXH3_64bits(buf->data() + 8, buf->size() - 8) != GetU64(buf->data()))
    return Corruption("index cache log " + path_ + ": checksum mismatch in the section at byte " +
                      std::to_string(s.offset));
  return OkStatus();
}

Status IndexCacheLog::ForEach(
    const std::function<Status(const std::string& key, std::span<const uint8_t> plain)>& fn) const {
  std::vector<uint8_t> buf;
  for (size_t i = 0; i < sections_.size(); ++i) {
    RETURN_IF_ERROR(ReadSection(sections_[i], &buf));
    RETURN_IF_ERROR(fn(keys_[i], std::span<const uint8_t>(buf).subspan(kSectionHeader + sections_[i].key_bytes)));
  }
  return OkStatus();
}

}  // namespace snapvol
