// Tests of the metrics registry and its Prometheus text-format writer: escaping, ordering,
// histogram buckets, cardinality bounds and concurrent recording.
#include "core/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "core/service_metrics.h"

namespace snapvol::metrics {
namespace {

TEST(MetricsFormat, Values) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(42), "42");
  EXPECT_EQ(FormatValue(-3), "-3");
  EXPECT_EQ(FormatValue(1e12), "1000000000000");
  EXPECT_EQ(FormatValue(0.25), "0.25");
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(1e300), "1e+300");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatValue(std::nan("")), "NaN");
}

TEST(MetricsFormat, Escaping) {
  EXPECT_EQ(EscapeLabelValue("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  EXPECT_EQ(EscapeLabelValue("plain ünïcode"), "plain ünïcode");
  // HELP escapes backslash and newline only: a quote stays as it is.
  EXPECT_EQ(EscapeHelp("say \"hi\"\\\nnext"), "say \"hi\"\\\\\\nnext");
}

TEST(MetricsFormat, Names) {
  EXPECT_TRUE(IsValidMetricName("snapvol_x_total"));
  EXPECT_TRUE(IsValidMetricName("a:b_c"));
  EXPECT_FALSE(IsValidMetricName("9lives"));
  EXPECT_FALSE(IsValidMetricName("has-dash"));
  EXPECT_FALSE(IsValidMetricName(""));
  EXPECT_TRUE(IsValidLabelName("account"));
  EXPECT_FALSE(IsValidLabelName("a:b"));
  EXPECT_FALSE(IsValidLabelName("__reserved"));
}

TEST(MetricsExposition, FamiliesSortedAndGroupedWithHelpAndType) {
  Exposition e;
  e.Gauge("zeta", "last", {}, 1);
  e.Counter("alpha_total", "first\nline", {{"k", "v\"1"}}, 2);
  e.Gauge("zeta", "ignored help", {{"x", "y"}}, 3);  // joins zeta: one HELP/TYPE block
  EXPECT_EQ(e.Render(),
            "# HELP alpha_total first\\nline\n"
            "# TYPE alpha_total counter\n"
            "alpha_total{k=\"v\\\"1\"} 2\n"
            "# HELP zeta last\n"
            "# TYPE zeta gauge\n"
            "zeta 1\n"
            "zeta{x=\"y\"} 3\n");
}

TEST(MetricsExposition, DropsWhatWouldMakeTheOutputInvalid) {
  Exposition e;
  e.Gauge("ok", "h", {}, 1);
  e.Counter("ok", "h", {}, 2);          // same name, other type
  e.Gauge("bad-name", "h", {}, 1);      // invalid metric name
  e.Gauge("ok", "h", {{"bad-label", "v"}}, 1);
  e.Gauge("ok", "h", {{"le", "1"}}, 1);  // fine on a gauge
  EXPECT_EQ(e.dropped(), 3u);
  EXPECT_EQ(e.Render(), "# HELP ok h\n# TYPE ok gauge\nok 1\nok{le=\"1\"} 1\n");
}

TEST(MetricsRegistry, CountersAndGaugesByLabels) {
  Registry r;
  auto& c = r.AddCounter("jobs_total", "Jobs.", {"account", "outcome"});
  c.With({"222", "completed"})->Add();
  c.With({"111", "error"})->Add(2);
  c.With({"111", "error"})->Add(-5);  // a counter never goes down
  EXPECT_EQ(&r.AddCounter("jobs_total", "Jobs.", {"account", "outcome"}), &c);  // same family
  auto& g = r.AddGauge("open", "Open.");
  g.With()->Set(3);
  g.With()->Add(-1);
  EXPECT_EQ(r.Scrape(),
            "# HELP jobs_total Jobs.\n"
            "# TYPE jobs_total counter\n"
            "jobs_total{account=\"111\",outcome=\"error\"} 2\n"
            "jobs_total{account=\"222\",outcome=\"completed\"} 1\n"
            "# HELP open Open.\n"
            "# TYPE open gauge\n"
            "open 2\n");
}

TEST(MetricsRegistry, FamilyWithoutSamplesStillDeclared) {
  Registry r;
  r.AddCounter("none_total", "Nothing yet.", {"a"});
  EXPECT_EQ(r.Scrape(), "# HELP none_total Nothing yet.\n# TYPE none_total counter\n");
}

TEST(MetricsRegistry, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  Registry r;
  auto& h = r.AddHistogram("dur_seconds", "Durations.", {0.5, 1, 2.5}, {"outcome"});
  auto* ok = h.With({"ok"});
  for (double v : {0.25, 0.5, 0.75, 1.0, 3.0, 100.0}) ok->Observe(v);  // 0.5 and 1.0 fall in "le" buckets
  EXPECT_EQ(r.Scrape(),
            "# HELP dur_seconds Durations.\n"
            "# TYPE dur_seconds histogram\n"
            "dur_seconds_bucket{outcome=\"ok\",le=\"0.5\"} 2\n"
            "dur_seconds_bucket{outcome=\"ok\",le=\"1\"} 4\n"
            "dur_seconds_bucket{outcome=\"ok\",le=\"2.5\"} 4\n"
            "dur_seconds_bucket{outcome=\"ok\",le=\"+Inf\"} 6\n"
            "dur_seconds_sum{outcome=\"ok\"} 105.5\n"
            "dur_seconds_count{outcome=\"ok\"} 6\n");
}

TEST(MetricsRegistry, CardinalityIsBounded) {
  Registry r;
  auto& c = r.AddCounter("by_action_total", "By action.", {"action"}, 3);
  for (int i = 0; i < 100; ++i) c.With({"a" + std::to_string(i)})->Add();
  c.With({"a0"})->Add();  // a tuple held already is still its own
  std::string out = r.Scrape();
  EXPECT_NE(out.find("by_action_total{action=\"a0\"} 2\n"), std::string::npos) << out;
  EXPECT_NE(out.find("by_action_total{action=\"a2\"} 1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("by_action_total{action=\"other\"} 97\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("a3\""), std::string::npos) << out;
}

TEST(MetricsRegistry, CollectorsAddScrapeTimeSamplesAndCanBeRemoved) {
  Registry r;
  r.AddGauge("b_gauge", "B.").With()->Set(1);
  int calls = 0;
  int id = r.AddCollector([&](Exposition* out) {
    ++calls;
    out->Gauge("a_snapshots", "Snapshots.", {{"state", "completed"}}, 7);
  });
  std::string out = r.Scrape();
  EXPECT_EQ(calls, 1);
  EXPECT_LT(out.find("a_snapshots{state=\"completed\"} 7"), out.find("b_gauge 1")) << out;
  r.RemoveCollector(id);
  EXPECT_EQ(r.Scrape().find("a_snapshots"), std::string::npos);
  EXPECT_EQ(calls, 1);
}

TEST(MetricsRegistry, ConcurrentRecordingLosesNothing) {
  Registry r;
  auto& c = r.AddCounter("n_total", "N.", {"t"});
  auto& h = r.AddHistogram("h_seconds", "H.", {1}, {});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10000; ++i) {
        c.With({std::to_string(i % 2)})->Add();
        h.With()->Observe(t);
        if (i % 1000 == 0) (void)r.Scrape();  // scrapes while others record
      }
    });
  }
  for (auto& th : threads) th.join();
  std::string out = r.Scrape();
  EXPECT_NE(out.find("n_total{t=\"0\"} 20000\n"), std::string::npos) << out;
  EXPECT_NE(out.find("n_total{t=\"1\"} 20000\n"), std::string::npos) << out;
  EXPECT_NE(out.find("h_seconds_bucket{le=\"1\"} 20000\n"), std::string::npos) << out;  // t = 0 and 1
  EXPECT_NE(out.find("h_seconds_count 40000\n"), std::string::npos) << out;
  EXPECT_NE(out.find("h_seconds_sum 60000\n"), std::string::npos) << out;
}

TEST(MetricsRegistryDeathTest, MisuseAbortsWithTheName) {
  Registry r;
  EXPECT_DEATH(r.AddCounter("bad name", "x"), "bad name");
  EXPECT_DEATH(r.AddHistogram("h_seconds", "x", {2, 1}), "do not increase");
  r.AddCounter("twice_total", "x", {"a"});
  EXPECT_DEATH(r.AddGauge("twice_total", "x", {"a"}), "twice_total");
}

TEST(ServiceMetrics, MaintenanceRunsRecordCountAndTime) {
  RecordMaintenanceRun("gc", "succeeded", 1'700'000'000'500);
  RecordMaintenanceRun("gc", "succeeded", 1'700'000'100'000);
  std::string out = Registry::Global().Scrape();
  EXPECT_NE(out.find("snapvol_maintenance_runs_total{job=\"gc\",outcome=\"succeeded\"} 2\n"), std::string::npos) << out;
  EXPECT_NE(out.find("snapvol_maintenance_last_run_timestamp_seconds{job=\"gc\",outcome=\"succeeded\"} 1700000100\n"),
            std::string::npos)
      << out;
  EXPECT_STREQ(StoreErrorKind(ErrorCode::kCorruption), "corruption");
}

}  // namespace
}  // namespace snapvol::metrics
