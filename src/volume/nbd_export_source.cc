#include "volume/nbd_export_source.h"

#include <libnbd.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <mutex>

namespace snapvol {

namespace {

std::unexpected<Error> NbdError(const std::string& what) {
  const char* e = nbd_get_error();
  return MakeError(ErrorCode::kIoError, what + ": " + (e ? e : "unknown libnbd error"), true);
}

// QEMU's NBD server answers reads of at most 32 MiB.
constexpr uint64_t kMaxRead = 4 << 20;
// A block status request covers at most 4 GiB - 1.
constexpr uint64_t kMaxStatus = uint64_t{1} << 31;

struct DirtyWalk {
  const char* context;
  uint32_t block_size;
  std::vector<uint8_t>* bits;
  uint64_t next = 0;  // the end of the last extent of our context
};

int OnExtent(void* user, const char* metacontext, uint64_t offset, uint32_t* entries, size_t n, int* /*error*/) {
  auto* w = static_cast<DirtyWalk*>(user);
  if (std::strcmp(metacontext, w->context) != 0) return 0;
  uint64_t at = offset;
  for (size_t i = 0; i + 1 < n; i += 2) {
    uint64_t len = entries[i];
    if ((entries[i + 1] & 1) != 0 && len > 0) {  // bit 0: dirty
      uint64_t first = at / w->block_size, last = (at + len - 1) / w->block_size;
      for (uint64_t b = first; b <= last && b < w->bits->size(); ++b) (*w->bits)[b] = 1;
    }
    at += len;
  }
  w->next = std::max(w->next, at);
  return 0;
}

}  // namespace

Result<std::unique_ptr<NbdExportSource>> NbdExportSource::Open(const std::string& socket_path,
                                                               const std::string& export_name,
                                                               const std::string& dirty_bitmap, std::string describe,
                                                               std::chrono::milliseconds answer_timeout) {
  nbd_handle* h = nbd_create();
  if (!h) return NbdError("nbd_create");
  std::unique_ptr<NbdExportSource> guard(new NbdExportSource(h, 0, "", std::move(describe), answer_timeout));
  const std::string context = dirty_bitmap.empty() ? "" : "qemu:dirty-bitmap:" + dirty_bitmap;
  if (!context.empty() && nbd_add_meta_context(h, context.c_str()) == -1) return NbdError("add meta context " + context);
  if (nbd_set_export_name(h, export_name.c_str()) == -1) return NbdError("export name " + export_name);
  if (nbd_connect_unix(h, socket_path.c_str()) == -1)
    return NbdError("connect to NBD export " + export_name + " on " + socket_path);
  int64_t size = nbd_get_size(h);
  if (size < 0) return NbdError("size of NBD export " + export_name);
  if (!context.empty() && nbd_can_meta_context(h, context.c_str()) != 1)
    return NotFound("NBD export " + export_name + " does not offer " + context);
  guard->size_ = static_cast<uint64_t>(size);
  guard->context_ = context;
  const int fd = nbd_aio_get_fd(h);
  if (fd < 0) return NbdError("socket of NBD export " + export_name);
  guard->watchdog_ = std::thread([src = guard.get(), fd] { src->Watch(fd); });
  return guard;
}

NbdExportSource::~NbdExportSource() { Close(); }

void NbdExportSource::Close() {
  std::unique_lock lock(mu_);  // after the reads in flight: the watchdog ends a hung one
  {
    std::lock_guard w(watch_mu_);
    stop_watch_ = true;
  }
  watch_cv_.notify_all();
  if (watchdog_.joinable()) watchdog_.join();
  if (!h_) return;
  nbd_shutdown(h_, 0);
  nbd_close(h_);
  h_ = nullptr;
}

void NbdExportSource::Begin() {
  std::lock_guard w(watch_mu_);
  if (in_flight_++ == 0) last_answer_ = std::chrono::steady_clock::now();
}

void NbdExportSource::End() {
  std::lock_guard w(watch_mu_);
  --in_flight_;
  last_answer_ = std::chrono::steady_clock::now();
}

void NbdExportSource::Watch(int fd) {
  std::unique_lock w(watch_mu_);
  const auto tick = std::max<std::chrono::milliseconds>(answer_timeout_ / 4, std::chrono::milliseconds(10));
  while (!stop_watch_) {
    watch_cv_.wait_for(w, tick, [this] { return stop_watch_; });
    if (stop_watch_ || in_flight_ == 0 || std::chrono::steady_clock::now() - last_answer_ < answer_timeout_) continue;
    // Nothing answered for too long: end the connection. The blocked request returns an
    // error, and so does every later one (the handle is dead).
    timed_out_ = true;
    ::shutdown(fd, SHUT_RDWR);
    return;
  }
}

std::unexpected<Error> NbdExportSource::Failed(const std::string& what) const {
  if (timed_out_)
    return MakeError(ErrorCode::kIoError,
                     what + ": the NBD export did not answer within " +
                         (answer_timeout_.count() % 1000 == 0 ? std::to_string(answer_timeout_.count() / 1000) + " s"
                                                              : std::to_string(answer_timeout_.count()) + " ms") +
                         ", so the connection was ended (is QEMU hung or stopped?)",
                     true);
  return NbdError(what);
}

Status NbdExportSource::ReadAt(uint64_t offset, std::span<uint8_t> out) {
  std::shared_lock lock(mu_);
  if (!h_) return MakeError(ErrorCode::kIoError, describe_ + ": the NBD export is closed");
  size_t done = 0;
  while (done < out.size()) {
    const uint64_t at = offset + done;
    size_t n = static_cast<size_t>(std::min<uint64_t>(out.size() - done, kMaxRead));
    if (at >= size_) {
      std::memset(out.data() + done, 0, out.size() - done);
      break;
    }
    n = static_cast<size_t>(std::min<uint64_t>(n, size_ - at));
    Begin();
    const int rc = nbd_pread(h_, out.data() + done, n, at, 0);
    End();
    if (rc == -1) return Failed("read " + describe_);
    done += n;
  }
  return OkStatus();
}

Result<std::vector<uint8_t>> NbdExportSource::DirtyBlocks(uint32_t block_size) {
  if (context_.empty()) return Internal("DirtyBlocks without a dirty bitmap");
  std::shared_lock lock(mu_);
  if (!h_) return MakeError(ErrorCode::kIoError, describe_ + ": the NBD export is closed");
  std::vector<uint8_t> bits((size_ + block_size - 1) / block_size, 0);
  DirtyWalk walk{context_.c_str(), block_size, &bits};
  uint64_t at = 0;
  while (at < size_) {
    walk.next = at;
    uint64_t count = std::min(kMaxStatus, size_ - at);
    nbd_extent_callback cb{OnExtent, &walk, nullptr};
    Begin();
    const int rc = nbd_block_status(h_, count, at, cb, 0);
    End();
    if (rc == -1) return Failed("block status of " + describe_);
    if (walk.next <= at) return MakeError(ErrorCode::kIoError, describe_ + ": block status made no progress at " + std::to_string(at));
    at = walk.next;
  }
  return bits;
}

}  // namespace snapvol
