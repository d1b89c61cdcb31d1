// Lifecycle policy details (policy_details.h): the schedules' arithmetic (times, intervals,
// cron expressions, missed runs, retention cut-offs) and what the parser refuses, with DLM's words.
#include "lifecycle/policy_details.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "lifecycle/lifecycle_test_util.h"

namespace snapvol::lifecycle {
namespace {

using nlohmann::json;
using testing_util::At;
using testing_util::kDay;
using testing_util::kHour;
using testing_util::kMin;

CreateRule Rule(const json& create) {
  json details = {
      {"ResourceTypes", {"VOLUME"}},
      {"TargetTags", {{{"Key", "k"}, {"Value", "v"}}}},
      {"Schedules", {{{"Name", "s"}, {"CreateRule", create}, {"RetainRule", {{"Count", 1}}}}}}};
  auto d = ParsePolicyDetails(details);
  EXPECT_TRUE(d) << d.error().ToString();
  return d ? d->schedules[0].create : CreateRule{};
}

// ---- schedule arithmetic ----

TEST(Schedule, DailyAtTwoUtcOnOrdinaryDaysMonthEndsAndLeapDays) {
  CreateRule daily = Rule({{"Interval", 24}, {"IntervalUnit", "HOURS"}, {"Times", {"02:00"}}});
  EXPECT_EQ(LatestAtOrBefore(daily, At(2026, 11, 26, 5)), At(2026, 11, 26, 2));
  EXPECT_EQ(LatestAtOrBefore(daily, At(2026, 11, 26, 2)), At(2026, 11, 26, 2));
  EXPECT_EQ(LatestAtOrBefore(daily, At(2026, 11, 26, 1, 59)), At(2026, 11, 25, 2));
  EXPECT_EQ(NextAfter(daily, At(2026, 11, 30, 2)), At(2026, 12, 1, 2));
  EXPECT_EQ(NextAfter(daily, At(2026, 12, 31, 3)), At(2027, 1, 1, 2));
  EXPECT_EQ(NextAfter(daily, At(2028, 2, 28, 2)), At(2028, 2, 29, 2));
  EXPECT_EQ(NextAfter(daily, At(2028, 2, 29, 2)), At(2028, 3, 1, 2));
  EXPECT_EQ(NextAfter(daily, At(2027, 2, 28, 2)), At(2027, 3, 1, 2));
}

TEST(Schedule, TwelveHourIntervalRunsAtItsTimeAndTwelveHoursLater) {
  CreateRule r = Rule({{"Interval", 12}, {"IntervalUnit", "HOURS"}, {"Times", {"09:00"}}});
  EXPECT_EQ(NextAfter(r, At(2026, 11, 26, 8)), At(2026, 11, 26, 9));
  EXPECT_EQ(NextAfter(r, At(2026, 11, 26, 9)), At(2026, 11, 26, 21));
  EXPECT_EQ(NextAfter(r, At(2026, 11, 26, 21)), At(2026, 11, 27, 9));
  EXPECT_EQ(LatestAtOrBefore(r, At(2026, 11, 27, 3)), At(2026, 11, 26, 21));
}

TEST(Schedule, CronExpressions) {
  CreateRule leap = Rule({{"CronExpression", "cron(0 2 29 2 ? *)"}});
  EXPECT_EQ(NextAfter(leap, At(2026, 3, 1)), At(2028, 2, 29, 2));
  EXPECT_EQ(LatestAtOrBefore(leap, At(2026, 3, 1)), At(2024, 2, 29, 2));
  // Weekdays at 06:30: 2026-11-27 is a Friday, so the next after it is Monday the 30th.
  CreateRule weekdays = Rule({{"CronExpression", "cron(30 6 ? * MON-FRI *)"}});
  EXPECT_EQ(NextAfter(weekdays, At(2026, 11, 27, 7)), At(2026, 11, 30, 6, 30));
  EXPECT_EQ(LatestAtOrBefore(weekdays, At(2026, 11, 29, 12)), At(2026, 11, 27, 6, 30));
  CreateRule every6 = Rule({{"CronExpression", "cron(15 */6 * * ? *)"}});
  EXPECT_EQ(NextAfter(every6, At(2026, 11, 26, 6, 15)), At(2026, 11, 26, 12, 15));
  // Years that are over: never again.
  CreateRule past = Rule({{"CronExpression", "cron(0 2 1 1 ? 2020)"}});
  EXPECT_EQ(NextAfter(past, At(2026, 1, 1)), kNever);
}

TEST(Schedule, MissedTimesAreCountedBetweenRuns) {
  CreateRule daily = Rule({{"Interval", 24}, {"IntervalUnit", "HOURS"}, {"Times", {"02:00"}}});
  EXPECT_EQ(CountStrictlyBetween(daily, At(2026, 11, 1, 2), At(2026, 11, 4, 2)), 2);
  EXPECT_EQ(CountStrictlyBetween(daily, At(2026, 11, 1, 2), At(2026, 11, 2, 2)), 0);
}

TEST(Schedule, RetentionCutoffsUseCalendarMonths) {
  RetainRule months{0, 1, "MONTHS"};
  EXPECT_EQ(RetainCutoff(months, At(2026, 3, 31, 2)), At(2026, 2, 28, 2));
  RetainRule days{0, 7, "DAYS"};
  EXPECT_EQ(RetainCutoff(days, At(2026, 11, 26)), At(2026, 11, 19));
  EXPECT_EQ(RetainCutoff(RetainRule{3, 0, ""}, At(2026, 11, 26)), kNever);
}

// ---- validation ----

TEST(PolicyDetailsParse, RefusesWhatDlmRefusesWithTheFieldNamed) {
  auto base = [] {
    return json{
        {"ResourceTypes", {"VOLUME"}},
        {"TargetTags", {{{"Key", "backup"}, {"Value", "yes"}}}},
        {"Schedules",
         {{{"Name", "daily"},
           {"CreateRule", {{"Interval", 24}, {"IntervalUnit", "HOURS"}, {"Times", {"02:00"}}}},
           {"RetainRule", {{"Count", 7}}}}}}};
  };
  ASSERT_TRUE(ParsePolicyDetails(base()));
  struct Case {
    std::function<void(json&)> mutate;
    std::string mentions;
  };
  std::vector<Case> cases = {
      {[](json& d) { d.erase("ResourceTypes"); }, "ResourceTypes"},
      {[](json& d) { d["ResourceTypes"] = {"IMAGE"}; }, "ResourceTypes"},
      {[](json& d) { d.erase("TargetTags"); }, "TargetTags"},
      {[](json& d) { d["Schedules"][0]["CreateRule"]["Interval"] = 5; }, "Interval"},
      {[](json& d) { d["Schedules"][0]["CreateRule"]["Times"] = {"25:00"}; }, "25:00"},
      {[](json& d) { d["Schedules"][0]["CreateRule"]["IntervalUnit"] = "DAYS"; }, "IntervalUnit"},
      {[](json& d) { d["Schedules"][0]["CreateRule"]["CronExpression"] = "cron(0 2 * * ? *)"; },
       "mutually exclusive"},
      {[](json& d) {
         d["Schedules"][0]["RetainRule"] = {{"Count", 3}, {"Interval", 2}};
       },
       "mutually exclusive"},
      {[](json& d) {
         d["Schedules"][0]["RetainRule"] = {{"Count", 0}};
       },
       "Count"},
      {[](json& d) {
         d["Schedules"][0]["RetainRule"] = {{"Interval", 2}, {"IntervalUnit", "FORTNIGHTS"}};
       },
       "IntervalUnit"},
      {[](json& d) { d["Schedules"][0].erase("RetainRule"); }, "RetainRule"},
      {[](json& d) { d["Schedules"][0]["FastRestoreRule"] = json::object(); }, "not supported"},
      {[](json& d) { d["Schedules"][0]["Bogus"] = 1; }, "Bogus"},
      {[](json& d) { d["Schedules"].push_back(d["Schedules"][0]); }, "twice"},
      {[](json& d) {
         d["Schedules"][0]["VariableTags"] = {{{"Key", "i"}, {"Value", "$(instance-id)"}}};
       },
       "INSTANCE"},
      {[](json& d) {
         d["Schedules"][0]["TagsToAdd"] = {{{"Key", "aws:x"}, {"Value", "1"}}};
       },
       "aws:"},
      {[](json& d) {
         d["Schedules"][0]["CreateRule"] = {{"CronExpression", "cron(* 2 * * ? *)"}};
       },
       "once an hour"},
      {[](json& d) {
         d["Schedules"][0]["CreateRule"] = {{"CronExpression", "cron(0 2 * * * *)"}};
       },
       "'?'"},
      {[](json& d) {
         d["Schedules"][0]["CreateRule"] = {{"CronExpression", "cron(0 2 L * ? *)"}};
       },
       "not supported"},
  };
  for (const auto& c : cases) {
    json d = base();
    c.mutate(d);
    auto r = ParsePolicyDetails(d);
    ASSERT_FALSE(r) << d.dump();
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message().find(c.mentions), std::string::npos) << r.error().message();
  }
}

}  // namespace
}  // namespace snapvol::lifecycle
