#include "store/s3_store.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <condition_variable>
#include <mutex>
#include <optional>

#include "core/clock.h"
#include "store/s3_xml.h"

namespace snapvol {
namespace {

// RFC 3986 encoding of a query value as SigV4 wants it (libcurl signs the query as given).
std::string UriEncode(std::string_view s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string_view AsText(const std::vector<uint8_t>& b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// The bytes a batch's uploads may hold at once: two 32 MiB packs (five of 16 MiB). Format 1's
// 512 KiB chunks stay bounded by the request count (parallel_uploads) long before this.
constexpr uint64_t kMaxUploadBytesInFlight = 80ull << 20;

class S3Batch : public WriteBatch {
 public:
  S3Batch(S3Store* store, int max_in_flight) : store_(store), max_in_flight_(std::max(1, max_in_flight)) {}
  ~S3Batch() override {
    // The uploads point into this object: they must end first.
    std::unique_lock lock(mu_);
    idle_cv_.wait(lock, [&] { return in_flight_ == 0; });
  }

  Status Add(const std::string& key, std::span<const uint8_t> data) override {
    return Upload(key, data.size(), [&] {
      auto copy = std::make_shared<std::vector<uint8_t>>(data.begin(), data.end());
      return Held{copy, *copy};
    });
  }
  Status Add(const std::string& key, std::unique_ptr<uint8_t[]> bytes, size_t size) override {
    return Upload(key, size, [&] {
      std::span<const uint8_t> data(bytes.get(), size);
      return Held{std::shared_ptr<const uint8_t[]>(std::move(bytes)), data};
    });
  }

  Status Commit() override {
    std::unique_lock lock(mu_);
    idle_cv_.wait(lock, [&] { return in_flight_ == 0; });
    pending_bytes_ = 0;
    if (first_error_) {
      Error e = *first_error_;
      first_error_.reset();
      return std::unexpected(e);
    }
    return OkStatus();
  }

  uint64_t PendingBytes() const override {
    std::lock_guard lock(mu_);
    return pending_bytes_;
  }

 private:
  // An upload's bytes and what keeps them alive until it ends.
  struct Held {
    std::shared_ptr<const void> owner;
    std::span<const uint8_t> bytes;
  };
  // Waits for room (requests and bytes in flight), then takes the bytes (hold) and uploads
  // them on the store's upload threads.
  template <typename Hold>
  Status Upload(const std::string& key, size_t size, Hold&& hold) {
    if (!IsValidObjectKey(key)) return InvalidArgument("invalid object key '" + key + "'");
    {
      std::unique_lock lock(mu_);
      // A failed upload fails the batch: stop feeding it instead of finding out at Commit.
      if (first_error_) return std::unexpected(*first_error_);
      // Each upload holds its object in memory: bound the bytes as well as the requests, or
      // 32 packs in flight would hold 32 x 16 MiB. One object always goes, whatever its size.
      idle_cv_.wait(lock, [&] {
        return in_flight_ < max_in_flight_ &&
               (in_flight_ == 0 || in_flight_bytes_ + size <= kMaxUploadBytesInFlight);
      });
      ++in_flight_;
      in_flight_bytes_ += size;
      pending_bytes_ += size;
    }
    Held held = hold();
    store_->SubmitUpload([this, key, held = std::move(held), size]() mutable {
      Status st = store_->Put(key, held.bytes);
      held = {};  // freed before the next upload may start
      std::lock_guard lock(mu_);
      if (!st && !first_error_) first_error_ = st.error();
      --in_flight_;
      in_flight_bytes_ -= size;
      idle_cv_.notify_all();
    });
    return OkStatus();
  }

  S3Store* store_;
  const int max_in_flight_;
  mutable std::mutex mu_;
  std::condition_variable idle_cv_;  // in_flight_ went down
  int in_flight_ = 0;                // guarded by mu_
  uint64_t in_flight_bytes_ = 0;     // guarded by mu_: the bytes the uploads hold
  uint64_t pending_bytes_ = 0;       // guarded by mu_
  std::optional<Error> first_error_;  // guarded by mu_
};

}  // namespace

S3Store::S3Store(std::unique_ptr<S3Client> client, size_t upload_threads)
    : client_(std::move(client)), uploads_(std::make_unique<ThreadPool>(upload_threads)) {}

Result<std::unique_ptr<S3Store>> S3Store::Open(const S3Config& config) {
  if (config.max_parallel_uploads < 1 || config.max_parallel_uploads > 256)
    return InvalidArgument("S3 parallel uploads must be between 1 and 256");
  if (config.retry_window_ms < 0) return InvalidArgument("S3 retry window must not be negative");
  ASSIGN_OR_RETURN(auto client, S3Client::Create(config));
  return std::unique_ptr<S3Store>(new S3Store(std::move(client), static_cast<size_t>(config.max_parallel_uploads)));
}

std::string S3Store::FullKey(const std::string& key) const {
  const std::string& p = client_->config().prefix;
  return p.empty() ? key : p + "/" + key;
}

Status S3Store::CheckKey(const std::string& key) const {
  if (!IsValidObjectKey(key)) return InvalidArgument("invalid object key '" + key + "'");
  return OkStatus();
}

Status S3Store::Put(const std::string& key, std::span<const uint8_t> data) {
  RETURN_IF_ERROR(CheckKey(key));
  S3Request req{.method = "PUT", .key = FullKey(key), .body = data, .what = "PUT " + key};
  ASSIGN_OR_RETURN(S3Response resp, client_->Send(req));
  if (resp.status != 200) return std::unexpected(client_->ErrorFor(req, resp));
  return OkStatus();
}

Result<std::vector<uint8_t>> S3Store::Get(const std::string& key) {
  RETURN_IF_ERROR(CheckKey(key));
  S3Request req{.method = "GET", .key = FullKey(key), .what = "GET " + key};
  ASSIGN_OR_RETURN(S3Response resp, client_->Send(req));
  if (resp.status == 404) {
    Error e = client_->ErrorFor(req, resp);
    // Keep the message of a missing bucket; a missing object reads like the local store's.
    if (e.message().rfind("bucket", 0) == 0) return std::unexpected(e);
    return NotFound("object " + key + " not found in " + Describe());
  }
  if (resp.status != 200) return std::unexpected(client_->ErrorFor(req, resp));
  return std::move(resp.body);
}

Result<std::vector<uint8_t>> S3Store::GetRange(const std::string& key, uint64_t offset, uint64_t length) {
  RETURN_IF_ERROR(CheckKey(key));
  if (length == 0) return std::vector<uint8_t>{};
  S3Request req{.method = "GET", .key = FullKey(key),
                .headers = {"Range: bytes=" + std::to_string(offset) + "-" + std::to_string(offset + length - 1)},
                .what = "GET " + key + " (bytes " + std::to_string(offset) + "+" + std::to_string(length) + ")"};
  ASSIGN_OR_RETURN(S3Response resp, client_->Send(req));
  if (resp.status == 404) {
    Error e = client_->ErrorFor(req, resp);
    if (e.message().rfind("bucket", 0) == 0) return std::unexpected(e);
    return NotFound("object " + key + " not found in " + Describe());
  }
  if (resp.status == 416)
    return Corruption("object " + key + " ends before the range " + std::to_string(offset) + "+" + std::to_string(length));
  // 206 is the range; a server that ignores Range sends the whole object with 200.
  if (resp.status == 200) return SliceRange(key, resp.body, offset, length);
  if (resp.status != 206) return std::unexpected(client_->ErrorFor(req, resp));
  if (resp.body.size() != length)
    return Corruption("object " + key + " gave " + std::to_string(resp.body.size()) + " bytes for a range of " +
                      std::to_string(length));
  return std::move(resp.body);
}

Result<bool> S3Store::Exists(const std::string& key) {
  RETURN_IF_ERROR(CheckKey(key));
  S3Request req{.method = "HEAD", .key = FullKey(key), .what = "HEAD " + key};
  ASSIGN_OR_RETURN(S3Response resp, client_->Send(req));
  if (resp.status == 200) return true;
  if (resp.status == 404) return false;
  return std::unexpected(client_->ErrorFor(req, resp));
}

Result<uint64_t> S3Store::Size(const std::string& key) {
  RETURN_IF_ERROR(CheckKey(key));
  S3Request req{.method = "HEAD", .key = FullKey(key), .what = "HEAD " + key};
  ASSIGN_OR_RETURN(S3Response resp, client_->Send(req));
  if (resp.status == 404) return NotFound("object " + key + " not found in " + Describe());
  if (resp.status != 200) return std::unexpected(client_->ErrorFor(req, resp));
  if (!resp.content_length) return MakeError(ErrorCode::kIoError, "HEAD " + key + ": the reply has no Content-Length", true);
  return *resp.content_length;
}

Status S3Store::Delete(const std::string& key) {
  RETURN_IF_ERROR(CheckKey(key));
  S3Request req{.method = "DELETE", .key = FullKey(key), .what = "DELETE " + key};
  ASSIGN_OR_RETURN(S3Response resp, client_->Send(req));
  if (resp.status == 204 || resp.status == 200) return OkStatus();
  if (resp.status == 404) {
    Error e = client_->ErrorFor(req, resp);
    if (e.message().rfind("bucket", 0) == 0) return std::unexpected(e);
    return OkStatus();  // deleting an absent key succeeds
  }
  return std::unexpected(client_->ErrorFor(req, resp));
}

Status S3Store::DeleteMany(const std::vector<std::string>& keys) {
  for (const auto& key : keys) RETURN_IF_ERROR(CheckKey(key));
  const size_t max_in_flight = std::max<size_t>(1, static_cast<size_t>(client_->config().max_parallel_uploads));
  std::mutex mu;
  std::condition_variable cv;
  size_t in_flight = 0;             // guarded by mu
  std::optional<Error> first_error;  // guarded by mu
  for (const auto& key : keys) {
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return in_flight < max_in_flight; });
      if (first_error) break;  // stop sending; what is in flight finishes below
      ++in_flight;
    }
    SubmitUpload([&, key] {
      Status st = Delete(key);
      std::lock_guard lock(mu);
      if (!st && !first_error) first_error = st.error();
      --in_flight;
      cv.notify_all();
    });
  }
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return in_flight == 0; });  // the tasks use this frame's locals
  if (first_error) return std::unexpected(*first_error);
  return OkStatus();
}

Result<std::vector<ObjectInfo>> S3Store::List(const std::string& prefix) {
  const std::string& store_prefix = client_->config().prefix;
  const std::string strip = store_prefix.empty() ? "" : store_prefix + "/";
  const std::string full = strip + prefix;
  std::vector<ObjectInfo> out;
  std::string token;
  for (;;) {
    // Parameters sorted by name: that is the canonical order SigV4 signs.
    std::string query;
    if (!token.empty()) query += "continuation-token=" + UriEncode(token) + "&";
    query += "list-type=2&max-keys=" + std::to_string(list_page_size_);
    if (!full.empty()) query += "&prefix=" + UriEncode(full);
    S3Request req{.method = "GET", .key = "", .query = query, .what = "LIST " + prefix};
    ASSIGN_OR_RETURN(S3Response resp, client_->Send(req));
    if (resp.status != 200) return std::unexpected(client_->ErrorFor(req, resp));
    auto page = ParseS3ListPage(AsText(resp.body));
    if (!page) return std::unexpected(page.error().WithContext("listing " + Describe()));
    for (auto& e : page->entries) {
      if (e.key.compare(0, strip.size(), strip) != 0) continue;
      std::string key = e.key.substr(strip.size());
      // Objects that are not ours (written by other tools into the bucket) are not listed.
      if (!IsValidObjectKey(key)) continue;
      out.push_back({std::move(key), e.size, e.mtime_ms});
    }
    if (!page->truncated) break;
    if (page->next_token == token)
      return MakeError(ErrorCode::kIoError, "listing " + Describe() + ": S3 repeated a continuation token");
    token = page->next_token;
  }
  return out;
}

Status S3Store::Touch(const std::string& key) {
  RETURN_IF_ERROR(CheckKey(key));
  const std::string full = FullKey(key);
  S3Request req{.method = "PUT",
                .key = full,
                .headers = {"x-amz-copy-source: /" + client_->config().bucket + "/" + full,
                            "x-amz-metadata-directive: REPLACE"},
                .what = "TOUCH " + key};
  ASSIGN_OR_RETURN(S3Response resp, client_->Send(req));
  if (resp.status == 404) {
    Error e = client_->ErrorFor(req, resp);
    if (e.message().rfind("bucket", 0) == 0) return std::unexpected(e);
    return NotFound("object " + key + " not found in " + Describe());
  }
  if (resp.status != 200) return std::unexpected(client_->ErrorFor(req, resp));
  // S3 may answer a copy with 200 and an error document when it fails late.
  S3ErrorDoc doc = ParseS3Error(AsText(resp.body));
  if (!doc.code.empty()) {
    resp.status = doc.code == "NoSuchKey" ? 404 : 500;
    if (resp.status == 404) return NotFound("object " + key + " not found in " + Describe());
    return std::unexpected(client_->ErrorFor(req, resp));
  }
  return OkStatus();
}

std::unique_ptr<WriteBatch> S3Store::NewBatch() {
  return std::make_unique<S3Batch>(this, client_->config().max_parallel_uploads);
}

Result<S3ProbeResult> S3Store::Probe(int64_t retry_window_ms) {
  const std::string& p = client_->config().prefix;
  std::string query = "list-type=2&max-keys=1";
  if (!p.empty()) query += "&prefix=" + UriEncode(p + "/");
  S3Request req{.method = "GET", .key = "", .query = query, .what = "LIST"};
  int64_t before = Clock::Real()->NowMillis();
  ASSIGN_OR_RETURN(S3Response resp, client_->Send(req, retry_window_ms));
  int64_t after = Clock::Real()->NowMillis();
  if (resp.status != 200) return std::unexpected(client_->ErrorFor(req, resp));
  S3ProbeResult r;
  r.round_trip_ms = after - before;
  if (auto server = ParseHttpDateMillis(resp.date)) {
    // The Date header has whole seconds: compare with the middle of the request, and call
    // anything within the truncation and the round trip no skew at all.
    int64_t mid = before + (after - before) / 2;
    int64_t skew = *server + 500 - mid;
    r.skew_ms = std::abs(skew) <= 500 + r.round_trip_ms ? 0 : skew;
  }
  return r;
}

}  // namespace snapvol
