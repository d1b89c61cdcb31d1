#include "core/allocator.h"

#include <malloc.h>

namespace snapvol {

void KeepLargeBuffersInHeap() {
  // Failure leaves glibc's defaults: slower, never wrong, so it is not reported.
  (void)::mallopt(M_MMAP_THRESHOLD, 64 << 20);
  (void)::mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

}  // namespace snapvol
