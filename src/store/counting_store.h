// CountingStore: an ObjectStore that forwards every call to another and counts the calls that
// fail in snapvol_store_errors_total{op,kind} (core/service_metrics.h). NotFound is an answer,
// not a failure, and is not counted. The daemon and the CLI open their store through it.
//
// Thread-safety: as the wrapped store (the counters are thread-safe).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "store/object_store.h"

namespace snapvol {

std::unique_ptr<ObjectStore> NewCountingStore(std::unique_ptr<ObjectStore> inner);

// Counts a failed store operation `op` (e.g. "get", "read_chunk") unless it is NotFound.
void CountStoreError(const char* op, const Error& error);

}  // namespace snapvol
