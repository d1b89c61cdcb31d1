// Metrics: counters, gauges and histograms with label sets, and their exposition in the
// Prometheus text format 0.0.4. Debian has no C++ Prometheus client, so this is a small one.
//
// A Registry owns metric families (a name, help text, label names and one child per label-value
// tuple) and collectors: callbacks that add samples read at scrape time (values that live in
// the catalog are read when scraped, not duplicated in counters). Registry::Global() is the
// process's registry, which every layer records into and /metrics exposes; tests build their
// own. Every metric name snapvold exposes is declared once, in core/service_metrics.h.
//
// Cardinality is bounded: a family holds at most max_children label tuples; a new tuple past
// that lands in one overflow child whose every label value is "other", so a caller that labels
// by client input cannot grow memory or the scrape without bound.
//
// Thread-safety: everything may be used from many threads at once. Recording into a child is
// lock-free (atomics); looking a child up by labels takes the family's mutex, so a hot path
// looks its child up once and keeps the pointer (children live as long as the registry).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace snapvol::metrics {

enum class Type { kCounter, kGauge, kHistogram };

// Label name → value, in the order they are written.
using LabelPairs = std::vector<std::pair<std::string, std::string>>;

// True for a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*) or label name ([a-zA-Z_][a-zA-Z0-9_]*,
// not starting with "__", which Prometheus reserves).
bool IsValidMetricName(std::string_view name);
bool IsValidLabelName(std::string_view name);
// A sample value as the text format writes it: "+Inf", "-Inf", "NaN", integers without a
// decimal point or exponent, other numbers in the shortest form that reads back exactly.
std::string FormatValue(double v);
// A label value with \ " and newline escaped; a HELP text with \ and newline escaped.
std::string EscapeLabelValue(std::string_view v);
std::string EscapeHelp(std::string_view v);

// What one scrape writes: families by name, each with its samples. Collectors and the registry
// add to it; Render writes every family once, sorted by name, with HELP and TYPE first.
class Exposition {
 public:
  // Adds a sample of family `name` (created with type and help on first use). suffix is
  // "_bucket", "_sum" or "_count" for histogram series, else empty. A sample whose name or
  // label names are invalid, or whose family was first added with another type, is dropped
  // and counted in dropped().
  void Add(std::string_view name, Type type, std::string_view help, std::string_view suffix,
           const LabelPairs& labels, double value);
  void Gauge(std::string_view name, std::string_view help, const LabelPairs& labels, double value) {
    Add(name, Type::kGauge, help, "", labels, value);
  }
  void Counter(std::string_view name, std::string_view help, const LabelPairs& labels, double value) {
    Add(name, Type::kCounter, help, "", labels, value);
  }
  // Declares a family with no samples yet: it is written with HELP and TYPE only.
  void Declare(std::string_view name, Type type, std::string_view help);
  std::string Render() const;
  size_t dropped() const { return dropped_; }

 private:
  struct Sample {
    std::string suffix;
    LabelPairs labels;
    double value;
  };
  struct Family {
    Type type;
    std::string help;
    std::vector<Sample> samples;
  };
  Family* FamilyFor(std::string_view name, Type type, std::string_view help);
  std::map<std::string, Family, std::less<>> families_;
  size_t dropped_ = 0;
};

class Counter {
 public:
  // v < 0 or NaN is ignored: a counter only goes up.
  void Add(double v = 1) {
    if (v > 0) value_.fetch_add(v, std::memory_order_relaxed);
  }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double v) { value_.fetch_add(v, std::memory_order_relaxed); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  // bounds: the buckets' upper bounds, strictly increasing (the +Inf bucket is implicit).
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);
  // Cumulative counts per bound, then the +Inf bucket (== count); and the sum.
  std::vector<uint64_t> CumulativeCounts() const;
  double Sum() const { return sum_.load(std::memory_order_relaxed); }
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // per bucket, not cumulative; +Inf last
  std::atomic<double> sum_{0};
};

// The family machinery shared by the three kinds.
class FamilyBase {
 public:
  FamilyBase(std::string name, std::string help, std::vector<std::string> label_names, size_t max_children)
      : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)),
        max_children_(max_children) {}
  virtual ~FamilyBase() = default;
  FamilyBase(const FamilyBase&) = delete;
  FamilyBase& operator=(const FamilyBase&) = delete;
  virtual void Collect(Exposition* out) const = 0;
  const std::string& name() const { return name_; }

 protected:
  LabelPairs Pairs(const std::vector<std::string>& values) const;
  // The key a child is stored under: values (padded or cut to the label names), or all
  // "other" when the tuple is new and the family holds max_children already.
  // REQUIRES mu_; `size` is the number of children held, `known` whether values is one of them.
  std::vector<std::string> KeyLocked(std::vector<std::string> values, size_t size,
                                     const std::function<bool(const std::vector<std::string>&)>& known) const;

  const std::string name_, help_;
  const std::vector<std::string> label_names_;
  const size_t max_children_;
  mutable std::mutex mu_;
};

template <typename T>
class Family : public FamilyBase {
 public:
  using FamilyBase::FamilyBase;
  // The child for these label values (one per label name, in order; missing ones are "",
  // extra ones dropped). Never null; stable for the registry's lifetime.
  T* With(std::vector<std::string> values = {}) {
    std::lock_guard lock(mu_);
    auto key = KeyLocked(std::move(values), children_.size(),
                         [this](const std::vector<std::string>& k) { return children_.count(k) > 0; });
    auto it = children_.find(key);
    if (it == children_.end()) it = children_.emplace(std::move(key), MakeChild()).first;
    return it->second.get();
  }
  void Collect(Exposition* out) const override;

 private:
  std::unique_ptr<T> MakeChild() const {
    if constexpr (std::is_same_v<T, Histogram>) {
      return std::make_unique<Histogram>(bounds_);
    } else {
      return std::make_unique<T>();
    }
  }
  std::map<std::vector<std::string>, std::unique_ptr<T>> children_;  // guarded by mu_
  friend class Registry;
  std::vector<double> bounds_;  // histograms only; set before the first child
};

extern template class Family<Counter>;
extern template class Family<Gauge>;
extern template class Family<Histogram>;
using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

class Registry {
 public:
  static constexpr size_t kDefaultMaxChildren = 500;
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The process's registry (never destroyed, so recording from any thread at exit is safe).
  static Registry& Global();

  // Registers a family; the same name registered again returns the existing family when its
  // kind and labels match. A malformed name, label name or bucket list, or a name reused with
  // another kind or labels, is a programming error: the process aborts with the name.
  CounterFamily& AddCounter(const std::string& name, const std::string& help,
                            std::vector<std::string> labels = {}, size_t max_children = kDefaultMaxChildren);
  GaugeFamily& AddGauge(const std::string& name, const std::string& help,
                        std::vector<std::string> labels = {}, size_t max_children = kDefaultMaxChildren);
  HistogramFamily& AddHistogram(const std::string& name, const std::string& help, std::vector<double> bounds,
                                std::vector<std::string> labels = {}, size_t max_children = kDefaultMaxChildren);

  // fn adds samples read at scrape time. Returns an id for RemoveCollector. fn runs on the
  // scraping thread, one scrape at a time; it must not call back into this registry's Add*.
  using Collector = std::function<void(Exposition*)>;
  int AddCollector(Collector fn);
  void RemoveCollector(int id);

  // Every family and collector, in the text format.
  std::string Scrape() const;

 private:
  template <typename F>
  F& AddFamily(const std::string& name, const std::string& help, std::vector<std::string> labels,
               size_t max_children, Type type, std::vector<double> bounds);

  mutable std::mutex mu_;         // guards families_, collectors_ and next_collector_
  mutable std::mutex scrape_mu_;  // one scrape at a time; RemoveCollector waits for it
  struct Entry {
    Type type;
    std::vector<std::string> labels;
    std::vector<double> bounds;
    std::unique_ptr<FamilyBase> family;
  };
  std::map<std::string, Entry> families_;
  std::map<int, Collector> collectors_;
  int next_collector_ = 1;
};

}  // namespace snapvol::metrics
