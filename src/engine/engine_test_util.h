// Test-only helpers for the engine's tests: in-memory volumes (whole, or with holes where the
// test says), an in-memory restore target, and a forwarding ObjectStore a test overrides in part
// (to stage a concurrent GC between two calls of the engine).
// Thread-safety: SparseSource and MemoryTarget as the engine uses them (reads and writes of
// distinct ranges from many threads); ForwardingStore as its base.
#pragma once

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "engine/snapshot_engine.h"
#include "store/object_store.h"

namespace snapvol::testing_util {

// A volume held in memory whose data ranges are exactly `extents` ([from, to), sorted,
// disjoint); everything else is a hole (reads as zero, reported by NextData/NextHole).
class SparseSource : public BlockSource {
 public:
  SparseSource(std::vector<uint8_t> data, std::vector<std::pair<uint64_t, uint64_t>> extents)
      : data_(std::move(data)), extents_(std::move(extents)) {}
  uint64_t size() const override { return data_.size(); }
  // Reads the data ranges' bytes; a hole reads as zero whatever data_ holds there.
  Status ReadAt(uint64_t off, std::span<uint8_t> out) override {
    std::memset(out.data(), 0, out.size());
    const uint64_t end = off + out.size();
    for (auto [from, to] : extents_) {
      const uint64_t a = std::max(from, off), b = std::min(to, end);
      if (a < b) std::memcpy(out.data() + (a - off), data_.data() + a, b - a);
    }
    return OkStatus();
  }
  Result<uint64_t> NextData(uint64_t off) override {
    for (auto [from, to] : extents_)
      if (to > off) return std::max(from, off);
    return size();
  }
  Result<uint64_t> NextHole(uint64_t off) override {
    for (auto [from, to] : extents_)
      if (from <= off && off < to) return to;
    return off < size() ? off : size();
  }
  std::string Describe() const override { return "sparse memory volume"; }
  // The bytes a restore must produce: the data ranges, zero elsewhere.
  std::vector<uint8_t> Expected() const {
    std::vector<uint8_t> out(data_.size(), 0);
    for (auto [from, to] : extents_) std::copy(data_.begin() + from, data_.begin() + to, out.begin() + from);
    return out;
  }

 private:
  std::vector<uint8_t> data_;
  std::vector<std::pair<uint64_t, uint64_t>> extents_;
};

// A volume held in memory, every byte data (no holes); data() lets a test change it between
// snapshots.
class VectorSource : public BlockSource {
 public:
  explicit VectorSource(std::vector<uint8_t> data) : data_(std::move(data)) {}
  uint64_t size() const override { return data_.size(); }
  Status ReadAt(uint64_t off, std::span<uint8_t> out) override {
    size_t n = off < data_.size() ? std::min<uint64_t>(out.size(), data_.size() - off) : 0;
    if (n) std::memcpy(out.data(), data_.data() + off, n);
    std::memset(out.data() + n, 0, out.size() - n);
    return OkStatus();
  }
  std::string Describe() const override { return "memory"; }
  std::vector<uint8_t>& data() { return data_; }

 private:
  std::vector<uint8_t> data_;
};

class MemoryTarget : public BlockTarget {
 public:
  explicit MemoryTarget(uint64_t size) : data(size, 0xEE) {}
  uint64_t size() const override { return data.size(); }
  Status WriteAt(uint64_t off, std::span<const uint8_t> d) override {
    std::memcpy(data.data() + off, d.data(), d.size());
    return OkStatus();
  }
  Status Zero(uint64_t off, uint64_t len) override {
    std::memset(data.data() + off, 0, len);
    return OkStatus();
  }
  Status Commit() override {
    committed = true;
    return OkStatus();
  }
  std::string Describe() const override { return "memory target"; }
  std::vector<uint8_t> data;
  bool committed = false;
};

// Forwards every call to base; a test double overrides only what it needs.
class ForwardingStore : public ObjectStore {
 public:
  explicit ForwardingStore(ObjectStore* base) : base_(base) {}
  Status Put(const std::string& key, std::span<const uint8_t> data) override { return base_->Put(key, data); }
  Result<std::vector<uint8_t>> Get(const std::string& key) override { return base_->Get(key); }
  Result<bool> Exists(const std::string& key) override { return base_->Exists(key); }
  Status Delete(const std::string& key) override { return base_->Delete(key); }
  Result<std::vector<ObjectInfo>> List(const std::string& prefix) override { return base_->List(prefix); }
  Status Touch(const std::string& key) override { return base_->Touch(key); }
  size_t ParallelReads() const override { return base_->ParallelReads(); }
  std::string Describe() const override { return "forwarding(" + base_->Describe() + ")"; }
  ObjectStore* base() { return base_; }

 private:
  ObjectStore* base_;
};

}  // namespace snapvol::testing_util
