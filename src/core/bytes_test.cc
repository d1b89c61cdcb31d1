// IsAllZero decides which blocks are stored as holes: a block it wrongly calls zero restores
// as zeros (silent data loss), so one nonzero byte must count wherever it sits: in any of the
// four words of a 32-byte stride, in the byte tail, at any alignment.
#include "core/bytes.h"

#include <gtest/gtest.h>

#include <vector>

namespace snapvol {
namespace {

// Every position of every length that exercises the stride, the tail and both together.
TEST(ZeroDetection, OneNonZeroByteAnywhereIsData) {
  for (size_t n : {1, 7, 8, 24, 25, 31, 32, 33, 63, 64, 65, 96, 100, 4096, 4099}) {
    std::vector<uint8_t> b(n, 0);
    ASSERT_TRUE(IsAllZero(b.data(), n)) << n;
    for (size_t i = 0; i < n; ++i) {
      for (uint8_t v : {uint8_t{0x01}, uint8_t{0x80}}) {
        b[i] = v;
        if (IsAllZero(b.data(), n)) ADD_FAILURE() << "length " << n << ": byte " << i << " = " << int(v) << " missed";
        b[i] = 0;
      }
    }
  }
}

// Each of the four words of the stride, named, in the first and in a later stride.
TEST(ZeroDetection, EachWordOfTheStrideCounts) {
  for (size_t word = 0; word < 4; ++word) {
    for (size_t stride : {size_t{0}, size_t{5}}) {
      for (size_t byte = 0; byte < 8; ++byte) {
        std::vector<uint8_t> b(512, 0);
        const size_t at = stride * 32 + word * 8 + byte;
        b[at] = 0x10;
        EXPECT_FALSE(IsAllZero(b.data(), b.size())) << "word " << word << " byte " << at;
      }
    }
  }
}

// The words are read with memcpy: an unaligned start sees the same bytes.
TEST(ZeroDetection, UnalignedStartsSeeEveryByte) {
  std::vector<uint8_t> buf(200, 0);
  for (size_t shift = 1; shift < 8; ++shift) {
    const uint8_t* p = buf.data() + shift;
    const size_t n = 150;
    EXPECT_TRUE(IsAllZero(p, n));
    for (size_t i = 0; i < n; ++i) {
      buf[shift + i] = 1;
      if (IsAllZero(p, n)) ADD_FAILURE() << "shift " << shift << ": byte " << i << " missed";
      buf[shift + i] = 0;
    }
    // Bytes just outside [p, p+n) are not part of the range.
    buf[shift - 1] = 1;
    buf[shift + n] = 1;
    EXPECT_TRUE(IsAllZero(p, n)) << shift;
    buf[shift - 1] = 0;
    buf[shift + n] = 0;
  }
}

TEST(ZeroDetection, EmptyRangeIsZero) { EXPECT_TRUE(IsAllZero(nullptr, 0)); }

}  // namespace
}  // namespace snapvol
