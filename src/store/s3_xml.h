// The few S3 response documents the S3 store reads (ListObjectsV2 pages, error documents) and
// the two time formats S3 uses, parsed with expat. Anything malformed is an IoError, not
// Corruption: a bad response is the server's fault, not damage to stored data.
// Thread-safety: free functions; safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace snapvol {

struct S3ListEntry {
  std::string key;
  uint64_t size = 0;
  int64_t mtime_ms = 0;
};

struct S3ListPage {
  std::vector<S3ListEntry> entries;
  bool truncated = false;
  std::string next_token;  // NextContinuationToken when truncated
};

struct S3ErrorDoc {
  std::string code, message;
};

// A ListObjectsV2 result. IoError for a document that is not one.
Result<S3ListPage> ParseS3ListPage(std::string_view xml);

// <Error><Code/><Message/></Error>; empty fields when xml is not an error document.
S3ErrorDoc ParseS3Error(std::string_view xml);

// "2026-11-26T13:23:40.347Z" → epoch ms. A time without milliseconds is taken as the last
// millisecond of its second: callers use it as an object's age, and an object must never
// look older than it is (GC would take it too early).
Result<int64_t> ParseIso8601Millis(std::string_view s);

// RFC 7231 "Thu, 26 Nov 2026 13:23:40 GMT" → epoch ms (start of the second).
Result<int64_t> ParseHttpDateMillis(std::string_view s);

}  // namespace snapvol
