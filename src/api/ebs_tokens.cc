#include "api/ebs_tokens.h"

#include <openssl/evp.h>

#include <cctype>
#include <cstring>

namespace snapvol::api {

std::string Base64Encode(std::span<const uint8_t> in) {
  std::string out(4 * ((in.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), in.data(), static_cast<int>(in.size()));
  out.resize(n < 0 ? 0 : static_cast<size_t>(n));
  return out;
}

std::optional<std::vector<uint8_t>> Base64Decode(std::string_view in) {
  if (in.empty() || in.size() % 4 != 0) return std::nullopt;
  for (char ch : in)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '+' && ch != '/' && ch != '=') return std::nullopt;
  std::vector<uint8_t> out(in.size() / 4 * 3);
  int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  if (n < 0) return std::nullopt;
  size_t pad = in.ends_with("==") ? 2 : in.ends_with("=") ? 1 : 0;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

namespace {
constexpr size_t kMacBytes = 24;

void PutBe64(uint8_t* p, uint64_t v) {
  for (int i = 7; i >= 0; --i, v >>= 8) p[i] = static_cast<uint8_t>(v);
}
uint64_t GetBe64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

// 8 bytes of value, then the MAC's first kMacBytes.
std::string Pack(uint64_t value, const Digest& mac) {
  uint8_t raw[8 + kMacBytes];
  PutBe64(raw, value);
  std::memcpy(raw + 8, mac.data(), kMacBytes);
  return Base64Encode(raw);
}
std::optional<uint64_t> Unpack(std::string_view token, Digest* mac_prefix) {
  auto raw = Base64Decode(token);
  if (!raw || raw->size() != 8 + kMacBytes) return std::nullopt;
  std::memcpy(mac_prefix->data(), raw->data() + 8, kMacBytes);
  return GetBe64(raw->data());
}
}  // namespace

Digest EbsTokenCodec::Mac(std::string_view what) const {
  return HmacSha256(key_, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(what.data()), what.size()));
}

std::string EbsTokenCodec::Block(const std::string& snapshot_id, uint64_t index, int64_t expiry_ms) const {
  return Pack(static_cast<uint64_t>(expiry_ms),
              Mac("block|" + snapshot_id + "|" + std::to_string(index) + "|" + std::to_string(expiry_ms)));
}

bool EbsTokenCodec::CheckBlock(std::string_view token, const std::string& snapshot_id, uint64_t index,
                               int64_t now_ms) const {
  Digest got{};
  auto expiry = Unpack(token, &got);
  if (!expiry) return false;
  const int64_t expiry_ms = static_cast<int64_t>(*expiry);
  Digest want = Mac("block|" + snapshot_id + "|" + std::to_string(index) + "|" + std::to_string(expiry_ms));
  if (!ConstantTimeEqual(std::span(got.data(), kMacBytes), std::span(want.data(), kMacBytes))) return false;
  return now_ms < expiry_ms;
}

std::string EbsTokenCodec::Page(const std::string& listing, uint64_t next_index) const {
  return Pack(next_index, Mac("page|" + listing + "|" + std::to_string(next_index)));
}

std::optional<uint64_t> EbsTokenCodec::CheckPage(std::string_view token, const std::string& listing) const {
  Digest got{};
  auto next = Unpack(token, &got);
  if (!next) return std::nullopt;
  Digest want = Mac("page|" + listing + "|" + std::to_string(*next));
  if (!ConstantTimeEqual(std::span(got.data(), kMacBytes), std::span(want.data(), kMacBytes))) return std::nullopt;
  return next;
}

}  // namespace snapvol::api
