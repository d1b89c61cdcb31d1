// S3Store: an ObjectStore in an S3 bucket (AWS S3, Ceph RGW, MinIO), under an optional key
// prefix, for when one machine's disk is not enough or several hosts share one store.
//
// Put is one PUT: S3 makes an object visible whole or not at all, so there are no temporary
// names to clean up. A WriteBatch starts each upload as it is added (up to
// config.max_parallel_uploads in flight per batch) and Commit waits for all of them and
// reports the first failure. Unlike the local store, an added object may become visible
// before Commit; that is harmless for what batches carry (content-addressed chunks and index
// pages, each complete when visible), and the write order of the store is kept because
// manifests are published with Put only after Commit.
// Object ages come from the server's LastModified; Touch refreshes it with a copy of the
// object onto itself (metadata directive REPLACE).
// Thread-safety: safe from many threads.
#pragma once

#include <memory>
#include <string>

#include "core/thread_pool.h"
#include "store/object_store.h"
#include "store/s3_client.h"

namespace snapvol {

struct S3ProbeResult {
  int64_t skew_ms = 0;  // server clock minus this machine's clock (from the Date header)
  int64_t round_trip_ms = 0;
};

class S3Store : public ObjectStore {
 public:
  // Checks the configuration; does not contact the server (see Probe).
  static Result<std::unique_ptr<S3Store>> Open(const S3Config& config);

  Status Put(const std::string& key, std::span<const uint8_t> data) override;
  Result<std::vector<uint8_t>> Get(const std::string& key) override;
  Result<std::vector<uint8_t>> GetRange(const std::string& key, uint64_t offset, uint64_t length) override;
  Result<bool> Exists(const std::string& key) override;
  Result<uint64_t> Size(const std::string& key) override;
  Status Delete(const std::string& key) override;
  Result<std::vector<ObjectInfo>> List(const std::string& prefix) override;
  Status Touch(const std::string& key) override;
  // Up to max_parallel_uploads DELETEs in flight on the upload threads.
  Status DeleteMany(const std::vector<std::string>& keys) override;
  std::unique_ptr<WriteBatch> NewBatch() override;
  // Ranged GETs of packs in flight while restoring: enough to hide a round trip, few enough
  // that their buffers stay a small share of the memory budget.
  size_t ParallelReads() const override { return 8; }
  std::string Describe() const override { return client_->config().Describe(); }

  // One small listing of the store's prefix, retried for at most retry_window_ms: says
  // whether the endpoint answers, the keys are accepted and the bucket exists, each as its
  // own error (IoError / Unauthorized / NotFound); on success the server's clock skew.
  Result<S3ProbeResult> Probe(int64_t retry_window_ms);

  S3Client* client() { return client_.get(); }
  const S3Config& config() const { return client_->config(); }
  // Keys per ListObjectsV2 page (S3's maximum is 1000); small values exercise paging.
  void set_list_page_size(int n) { list_page_size_ = n; }

  // Internal, for the batch: runs task on the upload threads.
  void SubmitUpload(std::function<void()> task) { uploads_->Submit(std::move(task)); }

 private:
  S3Store(std::unique_ptr<S3Client> client, size_t upload_threads);
  std::string FullKey(const std::string& key) const;
  Status CheckKey(const std::string& key) const;

  std::unique_ptr<S3Client> client_;
  int list_page_size_ = 1000;
  std::unique_ptr<ThreadPool> uploads_;  // last: its threads stop before the client goes
};

}  // namespace snapvol
