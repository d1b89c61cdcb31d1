#include "store/index_table.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "core/bytes.h"
#include "core/file_util.h"

namespace snapvol {

// A whole cache file mapped read-only; unmapped when the last array viewing it lets go.
class FileMapping {
 public:
  FileMapping(const uint8_t* base, size_t bytes) : base_(base), bytes_(bytes) {}
  ~FileMapping() {
    if (base_) ::munmap(const_cast<uint8_t*>(base_), bytes_);
  }
  FileMapping(const FileMapping&) = delete;
  FileMapping& operator=(const FileMapping&) = delete;
  const uint8_t* base() const { return base_; }

 private:
  const uint8_t* base_;
  size_t bytes_;
};

namespace {

bool Less(const IndexRecord& a, const IndexRecord& b) { return std::memcmp(a.id.data(), b.id.data(), 32) < 0; }

size_t PageRound(size_t bytes) {
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  return (bytes + page - 1) / page * page;
}

}  // namespace

// ---- RecordArray ---------------------------------------------------------------------------

RecordArray::~RecordArray() { Release(); }

RecordArray::RecordArray(RecordArray&& o) noexcept
    : data_(o.data_),
      size_(o.size_),
      mapped_bytes_(o.mapped_bytes_),
      file_(std::move(o.file_)),
      fence_(std::move(o.fence_)) {
  o.data_ = nullptr;
  o.size_ = o.mapped_bytes_ = 0;
}

RecordArray& RecordArray::operator=(RecordArray&& o) noexcept {
  if (this != &o) {
    Release();
    data_ = o.data_;
    size_ = o.size_;
    mapped_bytes_ = o.mapped_bytes_;
    file_ = std::move(o.file_);
    fence_ = std::move(o.fence_);
    o.data_ = nullptr;
    o.size_ = o.mapped_bytes_ = 0;
  }
  return *this;
}

void RecordArray::Release() {
  if (mapped_bytes_) ::munmap(data_, mapped_bytes_);
  data_ = nullptr;
  size_ = mapped_bytes_ = 0;
  file_.reset();
  fence_ = {};
}

void RecordArray::View(std::shared_ptr<const FileMapping> file, const IndexRecord* first, size_t n,
                       std::vector<Digest> fence) {
  Release();
  file_ = std::move(file);
  data_ = const_cast<IndexRecord*>(first);  // never written: Merge copies a view out first
  size_ = n;
  fence_ = std::move(fence);
}

uint64_t RecordArray::MappedBytes() const {
  return file_ ? size_ * sizeof(IndexRecord) + fence_.capacity() * sizeof(Digest) : mapped_bytes_;
}

const IndexRecord* RecordArray::Find(const Digest& id) const {
  // Ids are uniform: a binary search over them needs no interpolation to stay short
  // (21 steps for 2 M entries), and each step compares the full 32 bytes.
  size_t lo = 0, hi = size_;
  if (!fence_.empty()) {
    // The stride the id falls in, from the fence in memory; then only that stride's records.
    auto after = std::upper_bound(fence_.begin(), fence_.end(), id, [](const Digest& a, const Digest& b) {
      return std::memcmp(a.data(), b.data(), 32) < 0;
    });
    if (after == fence_.begin()) return nullptr;  // below the first id
    lo = static_cast<size_t>(after - fence_.begin() - 1) * kFenceStride;
    hi = std::min(size_, lo + kFenceStride);
  }
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = std::memcmp(data_[mid].id.data(), id.data(), 32);
    if (c == 0) return &data_[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return nullptr;
}

Status RecordArray::Grow(size_t n) {
  const size_t need = PageRound(n * sizeof(IndexRecord));
  if (file_ || mapped_bytes_ == 0) {
    // A view of a cache file (or nothing yet): copy into memory of our own, once.
    void* p = ::mmap(nullptr, need, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return std::unexpected(PosixError("allocating the store index", errno));
    if (file_) {
      // In slices, each unmapped from the view once copied: the file's pages do not all
      // count as this process's memory beside the copy (they stay in the page cache).
      const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE)), slice = 8u << 20;
      auto* from = reinterpret_cast<uint8_t*>(data_);
      const size_t total = size_ * sizeof(IndexRecord);
      for (size_t at = 0; at < total; at += slice) {
        const size_t len = std::min(slice, total - at);
        std::memcpy(static_cast<uint8_t*>(p) + at, from + at, len);
        auto first = (reinterpret_cast<uintptr_t>(from + at) + page - 1) / page * page;
        auto last = reinterpret_cast<uintptr_t>(from + at + len) / page * page;
        if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
      }
    } else if (size_) {
      std::memcpy(p, data_, size_ * sizeof(IndexRecord));
    }
    const size_t kept = size_;
    Release();
    data_ = static_cast<IndexRecord*>(p);
    size_ = kept;
    mapped_bytes_ = need;
  } else if (need > mapped_bytes_) {
    // Grown in place where the kernel can (no copy, no second array at the peak).
    void* p = ::mremap(data_, mapped_bytes_, need, MREMAP_MAYMOVE);
    if (p == MAP_FAILED) return std::unexpected(PosixError("growing the store index", errno));
    data_ = static_cast<IndexRecord*>(p);
    mapped_bytes_ = need;
  }
  return OkStatus();
}

Status RecordArray::Append(std::span<const IndexRecord> recs) {
  const size_t have = mapped_bytes_ / sizeof(IndexRecord);
  if (file_ || size_ + recs.size() > have)
    RETURN_IF_ERROR(Grow(std::max(size_ + recs.size(), have + have / 2)));  // pages untouched stay unused
  std::memcpy(data_ + size_, recs.data(), recs.size_bytes());
  size_ += recs.size();
  return OkStatus();
}

void RecordArray::SortKeepingFirst() {
  std::sort(data_, data_ + size_, [](const IndexRecord& a, const IndexRecord& b) {
    int c = std::memcmp(a.id.data(), b.id.data(), 32);
    if (c != 0) return c < 0;
    if (a.loc.pack != b.loc.pack) return a.loc.pack < b.loc.pack;
    return a.loc.offset < b.loc.offset;
  });
  size_ = static_cast<size_t>(
      std::unique(data_, data_ + size_, [](const IndexRecord& a, const IndexRecord& b) { return a.id == b.id; }) -
      data_);
  // Give back the slack the appends reserved.
  const size_t need = PageRound(std::max<size_t>(size_, 1) * sizeof(IndexRecord));
  if (mapped_bytes_ > need && ::mremap(data_, mapped_bytes_, need, 0) != MAP_FAILED) mapped_bytes_ = need;
}

Status RecordArray::Merge(std::span<const IndexRecord> sorted) {
  if (sorted.empty()) return OkStatus();
  const size_t total = size_ + sorted.size();
  RETURN_IF_ERROR(Grow(total));
  // Merge from the back, in place: the slots past size_ are free.
  size_t i = size_, j = sorted.size(), k = total;
  while (j > 0) {
    if (i > 0 && Less(sorted[j - 1], data_[i - 1])) data_[--k] = data_[--i];
    else data_[--k] = sorted[--j];
  }
  size_ = total;
  return OkStatus();
}

// ---- DeltaTable ----------------------------------------------------------------------------

namespace {
size_t SlotOf(const Digest& id, size_t mask) { return DigestHash{}(id) & mask; }
}  // namespace

void DeltaTable::Reserve(size_t n) {
  recs_.reserve(n);
  size_t want = 16;
  while (want < 2 * n) want *= 2;
  if (want > slots_.size()) Rehash(want);
}

void DeltaTable::Rehash(size_t slots) {
  slots_.assign(slots, 0);
  slots_.shrink_to_fit();
  const size_t mask = slots - 1;
  for (size_t i = 0; i < recs_.size(); ++i) {
    size_t at = SlotOf(recs_[i].id, mask);
    while (slots_[at]) at = (at + 1) & mask;
    slots_[at] = static_cast<uint32_t>(i + 1);
  }
}

const IndexRecord* DeltaTable::Find(const Digest& id) const {
  if (slots_.empty()) return nullptr;
  const size_t mask = slots_.size() - 1;
  for (size_t at = SlotOf(id, mask); slots_[at]; at = (at + 1) & mask)
    if (recs_[slots_[at] - 1].id == id) return &recs_[slots_[at] - 1];
  return nullptr;
}

bool DeltaTable::Insert(const IndexRecord& r) {
  if (Find(r.id)) return false;
  if (2 * (recs_.size() + 1) > slots_.size()) Rehash(std::max<size_t>(16, slots_.size() * 2));
  recs_.push_back(r);
  const size_t mask = slots_.size() - 1;
  size_t at = SlotOf(r.id, mask);
  while (slots_[at]) at = (at + 1) & mask;
  slots_[at] = static_cast<uint32_t>(recs_.size());
  return true;
}

std::vector<IndexRecord> DeltaTable::Take() {
  std::vector<IndexRecord> out = std::move(recs_);
  recs_ = {};
  slots_ = {};
  return out;
}

// ---- IndexTable ----------------------------------------------------------------------------

void IndexTable::BeginBulk() { bulk_ = true; }

Status IndexTable::EndBulk() {
  bulk_ = false;
  for (auto& sorted : sorted_) sorted.SortKeepingFirst();
  return OkStatus();
}

Status IndexTable::AddPack(const Digest& pack, std::span<const PackEntry> entries) {
  const auto ordinal = static_cast<uint32_t>(packs_.size());
  packs_.push_back(pack);
  if (bulk_) {
    std::vector<IndexRecord> recs[2];
    for (const auto& e : entries) recs[Slot(e.kind)].push_back({e.id, IndexLoc{ordinal, e.offset, e.length}});
    for (int s = 0; s < 2; ++s) RETURN_IF_ERROR(sorted_[s].Append(recs[s]));
    return OkStatus();
  }
  for (const auto& e : entries) {
    const int s = Slot(e.kind);
    if (sorted_[s].Find(e.id)) continue;  // the first copy wins
    const size_t limit = std::max(kIndexDeltaMin, sorted_[s].size() / kIndexDeltaDivisor);
    if (delta_[s].size() == 0) delta_[s].Reserve(limit + 1);  // its size for this round, at once
    delta_[s].Insert({e.id, IndexLoc{ordinal, e.offset, e.length}});
    if (delta_[s].size() > limit) RETURN_IF_ERROR(MergeDelta(s));
  }
  return OkStatus();
}

Status IndexTable::MergeDelta(int slot) {
  auto& delta = delta_[slot];
  if (delta.empty()) return OkStatus();
  // Sorted where it is (no second copy); the next round reserves for its own, larger, limit.
  std::vector<IndexRecord> recs = delta.Take();
  std::sort(recs.begin(), recs.end(), Less);
  return sorted_[slot].Merge(recs);
}

Status IndexTable::Compact() {
  for (int s = 0; s < 2; ++s) RETURN_IF_ERROR(MergeDelta(s));
  return OkStatus();
}

std::optional<IndexLoc> IndexTable::Find(ObjectKind kind, const Digest& id) const {
  const int s = Slot(kind);
  if (const IndexRecord* r = sorted_[s].Find(id)) return r->loc;
  if (const IndexRecord* r = delta_[s].Find(id)) return r->loc;
  return std::nullopt;
}

size_t IndexTable::size(ObjectKind kind) const { return sorted_[Slot(kind)].size() + delta_[Slot(kind)].size(); }

void IndexTable::ForEach(ObjectKind kind, const std::function<void(const Digest&, const IndexLoc&)>& fn) const {
  const int s = Slot(kind);
  for (const auto& r : sorted_[s].records()) fn(r.id, r.loc);
  for (const auto& r : delta_[s].records()) fn(r.id, r.loc);
}

uint64_t IndexTable::MemoryBytes() const {
  uint64_t bytes = packs_.capacity() * sizeof(Digest);
  for (int s = 0; s < 2; ++s) bytes += sorted_[s].MappedBytes() + delta_[s].MemoryBytes();
  return bytes;
}

// ---- the cache file ------------------------------------------------------------------------
//
// All integers little endian (the records as this machine lays them out; the byte-order mark
// refuses a file from a machine that lays them out otherwise):
//   0  magic "SVIXCAC1"           8  XXH3-64 of bytes [16, end)
//  16  u32 header bytes H (the records start there; a multiple of 4)
//  20  u32 byte-order mark 0x01020304     24 u64 chunk records   32 u64 page records
//  40  u32 packs   44 u32 keys   48 u32 store id length, then the store id,
//      the pack ids (32 bytes each, by ordinal), the keys (u32 length, bytes each), zero padding
//   H  the chunk records, then the page records (44 bytes each, sorted by id, unique)

namespace {

constexpr char kCacheMagic[] = "SVIXCAC1";
constexpr uint32_t kByteOrderMark = 0x01020304;
constexpr size_t kFixedHeader = 52;

void PutString(std::vector<uint8_t>* out, const std::string& s) {
  size_t at = out->size();
  out->resize(at + 4 + s.size());
  PutU32(out->data() + at, static_cast<uint32_t>(s.size()));
  std::memcpy(out->data() + at + 4, s.data(), s.size());
}

}  // namespace

Status IndexTable::Save(const std::string& path, const std::string& store_id,
                        const std::set<std::string>& keys) const {
  if (!delta_[0].empty() || !delta_[1].empty()) return Internal("the index is saved compacted");
  std::vector<uint8_t> head(kFixedHeader - 4);
  std::memcpy(head.data(), kCacheMagic, 8);
  uint32_t bom = kByteOrderMark;
  std::memcpy(head.data() + 20, &bom, 4);
  PutU64(head.data() + 24, sorted_[0].size());
  PutU64(head.data() + 32, sorted_[1].size());
  PutU32(head.data() + 40, static_cast<uint32_t>(packs_.size()));
  PutU32(head.data() + 44, static_cast<uint32_t>(keys.size()));
  PutString(&head, store_id);
  for (const auto& p : packs_) head.insert(head.end(), p.begin(), p.end());
  for (const auto& k : keys) PutString(&head, k);
  head.resize((head.size() + 3) / 4 * 4, 0);
  PutU32(head.data() + 16, static_cast<uint32_t>(head.size()));

  XXH3_state_t* hs = XXH3_createState();
  if (!hs) return std::unexpected(PosixError("hashing the index cache", ENOMEM));
  XXH3_64bits_reset(hs);
  XXH3_64bits_update(hs, head.data() + 16, head.size() - 16);
  for (int s = 0; s < 2; ++s)
    XXH3_64bits_update(hs, sorted_[s].records().data(), sorted_[s].size() * sizeof(IndexRecord));
  PutU64(head.data() + 8, XXH3_64bits_digest(hs));
  XXH3_freeState(hs);

  std::array<uint8_t, 6> rnd{};
  RETURN_IF_ERROR(RandomBytes(rnd));
  const std::string tmp = path + ".tmp-" + ToHex(rnd);
  {
    ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600));
    Status st = WriteFull(fd.get(), head);
    for (int s = 0; s < 2 && st; ++s) {
      auto recs = sorted_[s].records();
      st = WriteFull(fd.get(), std::span(reinterpret_cast<const uint8_t*>(recs.data()), recs.size_bytes()));
    }
    if (st) st = FsyncFd(fd.get(), tmp);
    // Out of the page cache now that it is on disk: written, it sits in large folios, and a
    // mapping's fault maps a whole folio (up to 2 MiB), so 40 lookups made 50 MiB of the file
    // resident; Load reads it back in small ones.
    if (st) (void)::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED);
    if (!st) {
      ::unlink(tmp.c_str());
      return st;
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return std::unexpected(PosixError("renaming the index cache to " + path, err));
  }
  return OkStatus();
}

Result<IndexTable::Loaded> IndexTable::Load(const std::string& path, const std::string& store_id) {
  ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_RDONLY | O_CLOEXEC));
  // No readahead: what this reads into the page cache goes in small folios (64 KiB for the
  // check's 1 MiB reads), and a lookup's fault in the mapping maps one of them, not 2 MiB.
  (void)::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_RANDOM);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return std::unexpected(PosixError("stat " + path, errno));
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  auto bad = [&](const std::string& why) { return Corruption("index cache " + path + ": " + why); };
  std::vector<uint8_t> fixed(kFixedHeader);
  ASSIGN_OR_RETURN(size_t got, PreadFull(fd.get(), fixed, 0));
  if (got < kFixedHeader || std::memcmp(fixed.data(), kCacheMagic, 8) != 0) return bad("not an index cache");
  uint32_t bom;
  std::memcpy(&bom, fixed.data() + 20, 4);
  if (bom != kByteOrderMark) return bad("written by a machine of another byte order");
  const uint64_t want_sum = GetU64(fixed.data() + 8);
  const uint32_t header = GetU32(fixed.data() + 16);
  const uint64_t counts[2] = {GetU64(fixed.data() + 24), GetU64(fixed.data() + 32)};
  const uint32_t npacks = GetU32(fixed.data() + 40), nkeys = GetU32(fixed.data() + 44);
  if (header % 4 || header < kFixedHeader || header > size || counts[0] > size || counts[1] > size ||
      size - header != (counts[0] + counts[1]) * sizeof(IndexRecord))
    return bad("its sizes do not add up");

  // One pass over the file through the page cache (not mapped, so it does not count as this
  // process's memory): the checksum, the header, and every record's order and pack ordinal.
  std::vector<uint8_t> head(header);
  ASSIGN_OR_RETURN(got, PreadFull(fd.get(), head, 0));
  if (got != header) return bad("truncated");
  XXH3_state_t* hs = XXH3_createState();
  if (!hs) return std::unexpected(PosixError("hashing the index cache", ENOMEM));
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> hs_owner(hs, XXH3_freeState);
  XXH3_64bits_reset(hs);
  XXH3_64bits_update(hs, head.data() + 16, head.size() - 16);
  std::vector<uint8_t> buf(sizeof(IndexRecord) * 24 * 1024);
  uint64_t at = header;
  std::vector<Digest> fences[2];
  for (int s = 0; s < 2; ++s) {
    uint64_t left = counts[s];
    Digest prev{};
    bool first = true;
    uint64_t index = 0;
    fences[s].reserve(static_cast<size_t>(counts[s] / RecordArray::kFenceStride + 1));
    while (left > 0) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(left, buf.size() / sizeof(IndexRecord)));
      std::span<uint8_t> part(buf.data(), n * sizeof(IndexRecord));
      ASSIGN_OR_RETURN(got, PreadFull(fd.get(), part, at));
      if (got != part.size()) return bad("truncated");
      XXH3_64bits_update(hs, part.data(), part.size());
      for (size_t i = 0; i < n; ++i) {
        IndexRecord r;
        std::memcpy(&r, part.data() + i * sizeof(IndexRecord), sizeof r);
        if (r.loc.pack >= npacks) return bad("a record names a pack it does not list");
        if (!first && std::memcmp(prev.data(), r.id.data(), 32) >= 0) return bad("its records are out of order");
        prev = r.id;
        first = false;
        if (index++ % RecordArray::kFenceStride == 0) fences[s].push_back(r.id);
      }
      at += part.size();
      left -= n;
    }
  }
  if (XXH3_64bits_digest(hs) != want_sum) return bad("checksum mismatch");

  // The checksum held: the header parses as Save wrote it, checked all the same.
  size_t p = kFixedHeader;
  auto take_string = [&](std::string* out) -> bool {
    if (header - p < 4) return false;
    uint32_t len = GetU32(head.data() + p);
    if (header - p - 4 < len) return false;
    out->assign(reinterpret_cast<const char*>(head.data() + p + 4), len);
    p += 4 + size_t{len};
    return true;
  };
  std::string sid;
  p -= 4;  // the store id's length is the last field of the fixed part
  if (!take_string(&sid)) return bad("truncated header");
  if (sid != store_id)
    return MakeError(ErrorCode::kConflict, "index cache " + path + " belongs to store " + sid + ", not " + store_id);
  Loaded out;
  if ((header - p) / 32 < npacks) return bad("truncated pack table");
  out.table.packs_.resize(npacks);
  for (uint32_t i = 0; i < npacks; ++i) {
    std::memcpy(out.table.packs_[i].data(), head.data() + p, 32);
    p += 32;
  }
  for (uint32_t i = 0; i < nkeys; ++i) {
    std::string k;
    if (!take_string(&k)) return bad("truncated key list");
    out.keys.insert(std::move(k));
  }
  if (out.keys.size() != nkeys) return bad("a key is listed twice");
  if (!IsAllZero(head.data() + p, header - p)) return bad("bytes after its key list");
  if (counts[0] + counts[1] == 0) return out;

  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd.get(), 0);
  if (map == MAP_FAILED) return std::unexpected(PosixError("mapping " + path, errno));
  (void)::madvise(map, size, MADV_RANDOM);  // a fault on an evicted page reads that page alone
  auto file = std::make_shared<const FileMapping>(static_cast<const uint8_t*>(map), size);
  const auto* recs = reinterpret_cast<const IndexRecord*>(file->base() + header);
  out.table.sorted_[0].View(file, recs, counts[0], std::move(fences[0]));
  out.table.sorted_[1].View(file, recs + counts[0], counts[1], std::move(fences[1]));
  return out;
}

}  // namespace snapvol
