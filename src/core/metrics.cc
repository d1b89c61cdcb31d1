// Metrics registry and the Prometheus text format 0.0.4 writer (see metrics.h).
#include "core/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace snapvol::metrics {
namespace {

bool NameChar(char c, bool first, bool colon) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') return true;
  if (colon && c == ':') return true;
  return !first && c >= '0' && c <= '9';
}

bool ValidName(std::string_view name, bool colon) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i)
    if (!NameChar(name[i], i == 0, colon)) return false;
  return true;
}

[[noreturn]] void Misuse(const std::string& name, const char* why) {
  std::fprintf(stderr, "snapvol: metric %s: %s\n", name.c_str(), why);
  std::abort();
}

const char* TypeName(Type t) {
  switch (t) {
    case Type::kCounter:
      return "counter";
    case Type::kGauge:
      return "gauge";
    case Type::kHistogram:
      return "histogram";
  }
  return "untyped";
}

}  // namespace

bool IsValidMetricName(std::string_view name) { return ValidName(name, true); }

bool IsValidLabelName(std::string_view name) {
  return ValidName(name, false) && name.substr(0, 2) != "__";
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // Integral values (counts, bytes) print as integers: exact, and what people expect to read.
  if (v == std::trunc(v) && std::fabs(v) < 9.007199254740992e15) {
    return std::to_string(static_cast<int64_t>(v));
  }
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest form that reads back exactly
  return std::string(buf, r.ptr);
}

std::string EscapeLabelValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string EscapeHelp(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

// --- Exposition ---

Exposition::Family* Exposition::FamilyFor(std::string_view name, Type type, std::string_view help) {
  if (!IsValidMetricName(name)) return nullptr;
  auto it = families_.find(name);
  if (it == families_.end()) it = families_.emplace(std::string(name), Family{type, std::string(help), {}}).first;
  return it->second.type == type ? &it->second : nullptr;
}

void Exposition::Declare(std::string_view name, Type type, std::string_view help) {
  if (!FamilyFor(name, type, help)) ++dropped_;
}

void Exposition::Add(std::string_view name, Type type, std::string_view help, std::string_view suffix,
                     const LabelPairs& labels, double value) {
  Family* f = FamilyFor(name, type, help);
  bool ok = f != nullptr;
  for (const auto& [k, v] : labels) ok = ok && IsValidLabelName(k) && !(type == Type::kHistogram && k == "le" && suffix != "_bucket");
  if (!ok) {
    ++dropped_;
    return;
  }
  f->samples.push_back({std::string(suffix), labels, value});
}

std::string Exposition::Render() const {
  std::string out;
  for (const auto& [name, f] : families_) {
    out += "# HELP " + name + " " + EscapeHelp(f.help) + "\n";
    out += "# TYPE " + name + " " + TypeName(f.type) + "\n";
    for (const auto& s : f.samples) {
      out += name;
      out += s.suffix;
      if (!s.labels.empty()) {
        out += '{';
        for (size_t i = 0; i < s.labels.size(); ++i) {
          if (i) out += ',';
          out += s.labels[i].first + "=\"" + EscapeLabelValue(s.labels[i].second) + "\"";
        }
        out += '}';
      }
      out += ' ';
      out += FormatValue(s.value);
      out += '\n';
    }
  }
  return out;
}

// --- Histogram ---

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double v) {
  if (std::isnan(v)) return;
  // The first bucket whose upper bound is >= v ("le": less than or equal).
  size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::CumulativeCounts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  uint64_t acc = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) out[i] = acc += counts_[i].load(std::memory_order_relaxed);
  return out;
}

// --- families ---

LabelPairs FamilyBase::Pairs(const std::vector<std::string>& values) const {
  LabelPairs out;
  for (size_t i = 0; i < label_names_.size(); ++i) out.emplace_back(label_names_[i], values[i]);
  return out;
}

std::vector<std::string> FamilyBase::KeyLocked(std::vector<std::string> values, size_t size,
                                               const std::function<bool(const std::vector<std::string>&)>& known) const {
  values.resize(label_names_.size());
  if (size < max_children_ || known(values)) return values;
  return std::vector<std::string>(label_names_.size(), "other");
}

template <typename T>
void Family<T>::Collect(Exposition* out) const {
  std::lock_guard lock(mu_);
  if constexpr (std::is_same_v<T, Histogram>) {
    out->Declare(name_, Type::kHistogram, help_);
    for (const auto& [values, h] : children_) {
      LabelPairs labels = Pairs(values);
      auto counts = h->CumulativeCounts();
      for (size_t i = 0; i < counts.size(); ++i) {
        LabelPairs with_le = labels;
        with_le.emplace_back("le", i < h->bounds().size() ? FormatValue(h->bounds()[i]) : "+Inf");
        out->Add(name_, Type::kHistogram, help_, "_bucket", with_le, static_cast<double>(counts[i]));
      }
      out->Add(name_, Type::kHistogram, help_, "_sum", labels, h->Sum());
      out->Add(name_, Type::kHistogram, help_, "_count", labels, static_cast<double>(counts.back()));
    }
  } else {
    const Type type = std::is_same_v<T, Counter> ? Type::kCounter : Type::kGauge;
    out->Declare(name_, type, help_);
    for (const auto& [values, c] : children_) out->Add(name_, type, help_, "", Pairs(values), c->Value());
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

// --- Registry ---

Registry& Registry::Global() {
  static Registry* r = new Registry();  // never destroyed: threads may record at exit
  return *r;
}

template <typename F>
F& Registry::AddFamily(const std::string& name, const std::string& help, std::vector<std::string> labels,
                       size_t max_children, Type type, std::vector<double> bounds) {
  if (!IsValidMetricName(name)) Misuse(name, "is not a valid metric name");
  for (const auto& l : labels)
    if (!IsValidLabelName(l) || l == "le") Misuse(name, "has an invalid label name");
  if (max_children == 0) Misuse(name, "must allow at least one child");
  if (type == Type::kHistogram) {
    if (bounds.empty()) Misuse(name, "needs at least one bucket");
    for (size_t i = 0; i < bounds.size(); ++i)
      if (!std::isfinite(bounds[i]) || (i && bounds[i] <= bounds[i - 1])) Misuse(name, "has buckets that do not increase");
  }
  std::lock_guard lock(mu_);
  auto it = families_.find(name);
  if (it != families_.end()) {
    if (it->second.type != type || it->second.labels != labels || it->second.bounds != bounds)
      Misuse(name, "is registered twice with different kinds, labels or buckets");
    return static_cast<F&>(*it->second.family);
  }
  auto family = std::make_unique<F>(name, help, labels, max_children);
  family->bounds_ = bounds;
  F& ref = *family;
  families_.emplace(name, Entry{type, std::move(labels), std::move(bounds), std::move(family)});
  return ref;
}

CounterFamily& Registry::AddCounter(const std::string& name, const std::string& help,
                                    std::vector<std::string> labels, size_t max_children) {
  return AddFamily<CounterFamily>(name, help, std::move(labels), max_children, Type::kCounter, {});
}

GaugeFamily& Registry::AddGauge(const std::string& name, const std::string& help, std::vector<std::string> labels,
                                size_t max_children) {
  return AddFamily<GaugeFamily>(name, help, std::move(labels), max_children, Type::kGauge, {});
}

HistogramFamily& Registry::AddHistogram(const std::string& name, const std::string& help,
                                        std::vector<double> bounds, std::vector<std::string> labels,
                                        size_t max_children) {
  return AddFamily<HistogramFamily>(name, help, std::move(labels), max_children, Type::kHistogram,
                                    std::move(bounds));
}

int Registry::AddCollector(Collector fn) {
  std::lock_guard lock(mu_);
  int id = next_collector_++;
  collectors_.emplace(id, std::move(fn));
  return id;
}

void Registry::RemoveCollector(int id) {
  std::lock_guard scrape(scrape_mu_);  // not while a scrape may be running it
  std::lock_guard lock(mu_);
  collectors_.erase(id);
}

std::string Registry::Scrape() const {
  std::lock_guard scrape(scrape_mu_);
  std::vector<const FamilyBase*> families;
  std::vector<Collector> collectors;
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, e] : families_) families.push_back(e.family.get());
    for (const auto& [id, fn] : collectors_) collectors.push_back(fn);
  }
  Exposition out;
  for (const FamilyBase* f : families) f->Collect(&out);
  for (const auto& fn : collectors) fn(&out);
  return out.Render();
}

}  // namespace snapvol::metrics
