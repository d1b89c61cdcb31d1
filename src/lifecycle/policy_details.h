// Lifecycle policy details: the PolicyDetails document of Amazon Data Lifecycle Manager (DLM),
// parsed and validated into a typed form, and the schedule arithmetic on it.
//
// Supported: PolicyType EBS_SNAPSHOT_MANAGEMENT; ResourceTypes VOLUME or INSTANCE; TargetTags;
// Parameters.ExcludeBootVolume (INSTANCE); up to 4 Schedules with Name, CopyTags, TagsToAdd,
// VariableTags ($(instance-id), $(timestamp); INSTANCE only), CreateRule (Interval
// 1/2/3/4/6/8/12/24 HOURS with at most one Times "hh:mm" UTC, or a CronExpression) and
// RetainRule (Count 1-1000, or Interval with DAYS/WEEKS/MONTHS/YEARS). Everything else DLM
// knows (fast restore, cross-region copy, sharing, archive, events) is refused by name rather
// than silently ignored.
//
// Cron expressions are DLM's: cron(Minutes Hours Day-of-month Month Day-of-week Year), one of
// day-of-month and day-of-week is '?'; fields take numbers, '*', ranges a-b, steps x/n, lists,
// month names JAN-DEC and day names SUN-SAT (SUN = 1). L, W and # are refused. The schedule
// must not run more often than hourly (one minute value).
//
// Thread-safety: value types and pure functions.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "catalog/catalog.h"
#include "core/status.h"

namespace snapvol::lifecycle {

struct CronSpec {
  std::set<int> minutes, hours, days_of_month, months, days_of_week, years;  // empty = any
  bool any_day_of_month = true, any_day_of_week = true;
};

struct CreateRule {
  int interval_hours = 0;     // 0 when a cron expression is used
  int time_of_day_min = 0;    // Times[0] in minutes after 00:00 UTC
  std::string cron;           // as given, e.g. "cron(0 2 * * ? *)"
  CronSpec cron_spec;
};

struct RetainRule {
  int count = 0;              // keep this many (0: age-based)
  int interval = 0;           // or keep this long
  std::string interval_unit;  // DAYS | WEEKS | MONTHS | YEARS
};

struct Schedule {
  std::string name;
  bool copy_tags = false;
  std::vector<Tag> tags_to_add;
  std::vector<Tag> variable_tags;  // values $(instance-id) or $(timestamp)
  CreateRule create;
  RetainRule retain;
};

struct PolicyDetails {
  std::string resource_type;     // VOLUME | INSTANCE
  std::vector<Tag> target_tags;  // empty only for a default policy: every volume
  bool exclude_boot_volume = false;
  std::vector<Schedule> schedules;
};

// Parses details (a PolicyDetails JSON object). allow_untargeted lets TargetTags be absent
// (the default policy that covers every volume). Errors are kInvalidArgument with a message
// naming the offending field.
Result<PolicyDetails> ParsePolicyDetails(const nlohmann::json& details, bool allow_untargeted = false);

// The daily default policy's details: every volume at hh:mm UTC, keep `count`.
nlohmann::json DefaultPolicyDetails(const std::string& schedule_name, int time_of_day_min, int count);

// Schedule arithmetic in epoch milliseconds, UTC. kNever when there is no such time (a cron
// expression whose years are over, or that never matches).
inline constexpr int64_t kNever = INT64_MIN;
int64_t LatestAtOrBefore(const CreateRule& rule, int64_t t_ms);
int64_t NextAfter(const CreateRule& rule, int64_t t_ms);
// Scheduled times strictly between a and b (capped at 100000).
int64_t CountStrictlyBetween(const CreateRule& rule, int64_t a_ms, int64_t b_ms);

// The retention cutoff of an age-based rule: snapshots that started before it may go.
int64_t RetainCutoff(const RetainRule& rule, int64_t now_ms);

}  // namespace snapvol::lifecycle
