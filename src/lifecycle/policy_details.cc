#include "lifecycle/policy_details.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <map>

namespace snapvol::lifecycle {
namespace {

using nlohmann::json;
namespace chr = std::chrono;

constexpr int64_t kMinuteMs = 60'000;
constexpr int64_t kHourMs = 60 * kMinuteMs;
constexpr int64_t kDayMs = 24 * kHourMs;

std::unexpected<Error> Invalid(const std::string& m) { return InvalidArgument(m); }

// Members of obj not in known → an error naming the first (by DLM's name when it is a feature
// snapvol does not offer).
Status RejectUnknown(const json& obj, std::initializer_list<std::string_view> known, const std::string& where) {
  static const std::set<std::string> kUnsupported = {
      "FastRestoreRule", "CrossRegionCopyRules", "ShareRules", "DeprecateRule", "ArchiveRule",
      "EventSource",     "Actions",              "ResourceLocations", "CopyTagsExtended",
      "CreateInterval",  "RetainInterval",       "Exclusions",  "ExtendDeletion", "PolicyLanguage"};
  for (const auto& [k, v] : obj.items()) {
    if (std::find(known.begin(), known.end(), k) != known.end()) continue;
    if (k == "ResourceLocations" && v.is_array() && v.size() == 1 && v[0] == "CLOUD") continue;
    if (k == "Location" && v == "CLOUD") continue;
    if (kUnsupported.count(k))
      return Invalid(where + "." + k + " is not supported by snapvol");
    return Invalid("unknown parameter " + where + "." + k);
  }
  return OkStatus();
}

Result<std::vector<Tag>> ParseTags(const json& v, const std::string& where, size_t max) {
  if (!v.is_array()) return Invalid(where + " must be a list of {Key, Value}");
  if (v.size() > max) return Invalid(where + " has more than " + std::to_string(max) + " tags");
  std::vector<Tag> out;
  for (const auto& t : v) {
    if (!t.is_object() || !t.contains("Key") || !t.contains("Value") || !t["Key"].is_string() ||
        !t["Value"].is_string())
      return Invalid(where + ": each tag needs a string Key and Value");
    RETURN_IF_ERROR(RejectUnknown(t, {"Key", "Value"}, where));
    Tag tag{t["Key"].get<std::string>(), t["Value"].get<std::string>()};
    if (tag.key.empty() || tag.key.size() > kMaxTagKeyChars || tag.value.size() > kMaxTagValueChars)
      return Invalid(where + ": tag keys are 1-128 and values 0-256 characters");
    out.push_back(std::move(tag));
  }
  return out;
}

Result<int> ParseInt(const json& v, const std::string& where, int lo, int hi) {
  if (!v.is_number_integer()) return Invalid(where + " must be an integer");
  int64_t n = v.get<int64_t>();
  if (n < lo || n > hi) return Invalid(where + " must be between " + std::to_string(lo) + " and " + std::to_string(hi));
  return static_cast<int>(n);
}

// "hh:mm" → minutes after midnight.
Result<int> ParseTimeOfDay(const json& v) {
  if (!v.is_string()) return Invalid("CreateRule.Times values must be \"hh:mm\" strings");
  std::string s = v.get<std::string>();
  if (s.size() != 5 || s[2] != ':' || !isdigit(s[0]) || !isdigit(s[1]) || !isdigit(s[3]) || !isdigit(s[4]))
    return Invalid("CreateRule.Times value '" + s + "' is not hh:mm");
  int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
  if (h > 23 || m > 59) return Invalid("CreateRule.Times value '" + s + "' is not a time of day");
  return h * 60 + m;
}

// One cron field: '*', '?', n, a-b, x/n, */n, lists; names for months and week days.
Result<std::set<int>> ParseCronField(std::string field, int lo, int hi, const char* const* names,
                                     const std::string& what) {
  std::set<int> out;
  auto value = [&](std::string_view tok) -> Result<int> {
    if (names != nullptr) {
      for (int i = 0; names[i] != nullptr; ++i) {
        std::string upper(tok);
        std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
        if (upper == names[i]) return lo + i;
      }
    }
    int n = 0;
    auto [p, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), n);
    if (ec != std::errc() || p != tok.data() + tok.size() || tok.empty())
      return Invalid("cron " + what + " value '" + std::string(tok) + "' is not understood");
    if (n < lo || n > hi)
      return Invalid("cron " + what + " value " + std::to_string(n) + " is outside " + std::to_string(lo) + "-" +
                     std::to_string(hi));
    return n;
  };
  if (field.find_first_of("LW#") != std::string::npos)
    return Invalid("cron " + what + ": L, W and # are not supported by snapvol");
  size_t start = 0;
  while (start <= field.size()) {
    size_t comma = field.find(',', start);
    std::string item = field.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    int step = 1;
    if (auto slash = item.find('/'); slash != std::string::npos) {
      ASSIGN_OR_RETURN(step, value(std::string_view(item).substr(slash + 1)));
      if (step < 1) return Invalid("cron " + what + ": a step must be at least 1");
      item = item.substr(0, slash);
    }
    int a = lo, b = hi;
    if (item == "*") {
    } else if (auto dash = item.find('-'); dash != std::string::npos) {
      ASSIGN_OR_RETURN(a, value(std::string_view(item).substr(0, dash)));
      ASSIGN_OR_RETURN(b, value(std::string_view(item).substr(dash + 1)));
      if (a > b) return Invalid("cron " + what + ": range " + item + " is backwards");
    } else {
      ASSIGN_OR_RETURN(a, value(item));
      b = step > 1 ? hi : a;
    }
    for (int i = a; i <= b; i += step) out.insert(i);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

Result<CronSpec> ParseCron(const std::string& expr) {
  static const char* const kMonths[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL",
                                        "AUG", "SEP", "OCT", "NOV", "DEC", nullptr};
  static const char* const kDays[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", nullptr};
  if (expr.size() < 7 || expr.rfind("cron(", 0) != 0 || expr.back() != ')')
    return Invalid("CronExpression must look like cron(0 2 * * ? *)");
  std::vector<std::string> f;
  std::string body = expr.substr(5, expr.size() - 6);
  size_t i = 0;
  while (i < body.size()) {
    while (i < body.size() && body[i] == ' ') ++i;
    size_t j = body.find(' ', i);
    if (i < body.size()) f.push_back(body.substr(i, j == std::string::npos ? std::string::npos : j - i));
    if (j == std::string::npos) break;
    i = j;
  }
  if (f.size() != 6)
    return Invalid("CronExpression needs 6 fields (minutes hours day-of-month month day-of-week year)");
  CronSpec c;
  if (f[0] == "*" || f[0].find_first_of(",-/") != std::string::npos)
    return Invalid("CronExpression: the schedule must not run more often than once an hour (give one minute)");
  ASSIGN_OR_RETURN(c.minutes, ParseCronField(f[0], 0, 59, nullptr, "minutes"));
  ASSIGN_OR_RETURN(c.hours, ParseCronField(f[1], 0, 23, nullptr, "hours"));
  if ((f[2] == "?") == (f[4] == "?"))
    return Invalid("CronExpression: exactly one of day-of-month and day-of-week must be '?'");
  if (f[2] != "?") {
    c.any_day_of_month = f[2] == "*";
    ASSIGN_OR_RETURN(c.days_of_month, ParseCronField(f[2], 1, 31, nullptr, "day-of-month"));
  }
  ASSIGN_OR_RETURN(c.months, ParseCronField(f[3], 1, 12, kMonths, "month"));
  if (f[4] != "?") {
    c.any_day_of_week = f[4] == "*";
    ASSIGN_OR_RETURN(c.days_of_week, ParseCronField(f[4], 1, 7, kDays, "day-of-week"));
  }
  ASSIGN_OR_RETURN(c.years, ParseCronField(f[5], 1970, 2199, nullptr, "year"));
  return c;
}

Result<CreateRule> ParseCreateRule(const json& v) {
  if (!v.is_object()) return Invalid("Schedules.CreateRule must be an object");
  RETURN_IF_ERROR(RejectUnknown(v, {"Interval", "IntervalUnit", "Times", "CronExpression", "Location"},
                                "CreateRule"));
  CreateRule r;
  if (v.contains("CronExpression")) {
    if (v.contains("Interval") || v.contains("IntervalUnit") || v.contains("Times"))
      return Invalid("CreateRule: CronExpression and Interval/IntervalUnit/Times are mutually exclusive");
    if (!v["CronExpression"].is_string()) return Invalid("CreateRule.CronExpression must be a string");
    r.cron = v["CronExpression"].get<std::string>();
    if (r.cron.size() > 106) return Invalid("CreateRule.CronExpression is longer than 106 characters");
    ASSIGN_OR_RETURN(r.cron_spec, ParseCron(r.cron));
    return r;
  }
  if (!v.contains("Interval") || !v.contains("IntervalUnit"))
    return Invalid("CreateRule needs Interval and IntervalUnit, or a CronExpression");
  ASSIGN_OR_RETURN(r.interval_hours, ParseInt(v["Interval"], "CreateRule.Interval", 1, 24));
  static constexpr int kIntervals[] = {1, 2, 3, 4, 6, 8, 12, 24};
  if (std::find(std::begin(kIntervals), std::end(kIntervals), r.interval_hours) == std::end(kIntervals))
    return Invalid("CreateRule.Interval must be 1, 2, 3, 4, 6, 8, 12 or 24");
  if (v["IntervalUnit"] != "HOURS") return Invalid("CreateRule.IntervalUnit must be HOURS");
  if (v.contains("Times")) {
    const json& times = v["Times"];
    if (!times.is_array() || times.size() > 1) return Invalid("CreateRule.Times takes one \"hh:mm\" time");
    if (times.size() == 1) {
      ASSIGN_OR_RETURN(r.time_of_day_min, ParseTimeOfDay(times[0]));
    }
  }
  return r;
}

Result<RetainRule> ParseRetainRule(const json& v) {
  if (!v.is_object()) return Invalid("Schedules.RetainRule must be an object");
  RETURN_IF_ERROR(RejectUnknown(v, {"Count", "Interval", "IntervalUnit"}, "RetainRule"));
  RetainRule r;
  if (v.contains("Count")) {
    if (v.contains("Interval") || v.contains("IntervalUnit"))
      return Invalid("RetainRule: Count and Interval/IntervalUnit are mutually exclusive");
    ASSIGN_OR_RETURN(r.count, ParseInt(v["Count"], "RetainRule.Count", 1, 1000));
    return r;
  }
  if (!v.contains("Interval") || !v.contains("IntervalUnit"))
    return Invalid("RetainRule needs Count, or Interval and IntervalUnit");
  static const std::map<std::string, int> kMax = {{"DAYS", 36500}, {"WEEKS", 5200}, {"MONTHS", 1200}, {"YEARS", 100}};
  if (!v["IntervalUnit"].is_string() || !kMax.count(v["IntervalUnit"].get<std::string>()))
    return Invalid("RetainRule.IntervalUnit must be DAYS, WEEKS, MONTHS or YEARS");
  r.interval_unit = v["IntervalUnit"].get<std::string>();
  ASSIGN_OR_RETURN(r.interval, ParseInt(v["Interval"], "RetainRule.Interval", 1, kMax.at(r.interval_unit)));
  return r;
}

Result<Schedule> ParseSchedule(const json& v, const std::string& resource_type) {
  if (!v.is_object()) return Invalid("each of Schedules must be an object");
  RETURN_IF_ERROR(RejectUnknown(v, {"Name", "CopyTags", "TagsToAdd", "VariableTags", "CreateRule", "RetainRule"},
                                "Schedules"));
  Schedule s;
  if (!v.contains("Name") || !v["Name"].is_string()) return Invalid("Schedules.Name is required");
  s.name = v["Name"].get<std::string>();
  if (s.name.empty() || s.name.size() > 120) return Invalid("Schedules.Name must be 1-120 characters");
  if (v.contains("CopyTags")) {
    if (!v["CopyTags"].is_boolean()) return Invalid("Schedules.CopyTags must be true or false");
    s.copy_tags = v["CopyTags"].get<bool>();
  }
  if (v.contains("TagsToAdd")) {
    ASSIGN_OR_RETURN(s.tags_to_add, ParseTags(v["TagsToAdd"], "Schedules.TagsToAdd", 45));
  }
  for (const auto& t : s.tags_to_add)
    if (t.key.rfind("aws:", 0) == 0) return Invalid("Schedules.TagsToAdd: keys starting with aws: are reserved");
  if (v.contains("VariableTags")) {
    if (resource_type != "INSTANCE") return Invalid("Schedules.VariableTags are only valid for INSTANCE policies");
    ASSIGN_OR_RETURN(s.variable_tags, ParseTags(v["VariableTags"], "Schedules.VariableTags", 45));
    for (const auto& t : s.variable_tags)
      if (t.value != "$(instance-id)" && t.value != "$(timestamp)")
        return Invalid("Schedules.VariableTags values must be $(instance-id) or $(timestamp)");
  }
  if (!v.contains("CreateRule")) return Invalid("Schedules.CreateRule is required");
  ASSIGN_OR_RETURN(s.create, ParseCreateRule(v["CreateRule"]));
  if (!v.contains("RetainRule")) return Invalid("Schedules.RetainRule is required");
  ASSIGN_OR_RETURN(s.retain, ParseRetainRule(v["RetainRule"]));
  return s;
}

// ---- calendar ----

struct Day {
  int year, month, day, weekday;  // weekday: 1 = Sunday … 7 = Saturday (DLM's cron)
};

Day DayOf(int64_t day_index) {
  chr::sys_days d{chr::days{day_index}};
  chr::year_month_day ymd{d};
  chr::weekday wd{d};
  return {static_cast<int>(ymd.year()), static_cast<int>(static_cast<unsigned>(ymd.month())),
          static_cast<int>(static_cast<unsigned>(ymd.day())), static_cast<int>(wd.c_encoding()) + 1};
}

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

bool CronDayMatches(const CronSpec& c, const Day& d) {
  if (!c.years.empty() && !c.years.count(d.year)) return false;
  if (!c.months.empty() && !c.months.count(d.month)) return false;
  if (!c.any_day_of_month && !c.days_of_month.count(d.day)) return false;
  if (!c.any_day_of_week && !c.days_of_week.count(d.weekday)) return false;
  return true;
}

// Offsets in the day (ms), ascending.
std::vector<int64_t> CronTimesOfDay(const CronSpec& c) {
  std::vector<int64_t> out;
  for (int h = 0; h < 24; ++h) {
    if (!c.hours.empty() && !c.hours.count(h)) continue;
    for (int m = 0; m < 60; ++m)
      if (c.minutes.empty() || c.minutes.count(m)) out.push_back(h * kHourMs + m * kMinuteMs);
  }
  return out;
}

constexpr int64_t kCronSearchDays = 366 * 9;  // covers 29 February across a skipped leap year

}  // namespace

Result<PolicyDetails> ParsePolicyDetails(const json& v, bool allow_untargeted) {
  if (!v.is_object()) return Invalid("PolicyDetails must be an object");
  RETURN_IF_ERROR(RejectUnknown(v, {"PolicyType", "ResourceTypes", "TargetTags", "Schedules", "Parameters"},
                                "PolicyDetails"));
  if (v.contains("PolicyType") && v["PolicyType"] != "EBS_SNAPSHOT_MANAGEMENT")
    return Invalid("PolicyDetails.PolicyType: only EBS_SNAPSHOT_MANAGEMENT is supported by snapvol");
  PolicyDetails d;
  if (!v.contains("ResourceTypes")) return Invalid("PolicyDetails.ResourceTypes is required");
  const json& rt = v["ResourceTypes"];
  if (!rt.is_array() || rt.size() != 1 || (rt[0] != "VOLUME" && rt[0] != "INSTANCE"))
    return Invalid("PolicyDetails.ResourceTypes must be [\"VOLUME\"] or [\"INSTANCE\"]");
  d.resource_type = rt[0].get<std::string>();
  if (v.contains("TargetTags")) {
    ASSIGN_OR_RETURN(d.target_tags, ParseTags(v["TargetTags"], "PolicyDetails.TargetTags", 50));
  }
  if (d.target_tags.empty() && !allow_untargeted) return Invalid("PolicyDetails.TargetTags is required (1 to 50 tags)");
  if (v.contains("Parameters")) {
    const json& p = v["Parameters"];
    if (!p.is_object()) return Invalid("PolicyDetails.Parameters must be an object");
    RETURN_IF_ERROR(RejectUnknown(p, {"ExcludeBootVolume", "NoReboot"}, "Parameters"));
    if (p.contains("ExcludeBootVolume")) {
      if (!p["ExcludeBootVolume"].is_boolean()) return Invalid("Parameters.ExcludeBootVolume must be true or false");
      if (d.resource_type != "INSTANCE") return Invalid("Parameters.ExcludeBootVolume is only valid for INSTANCE policies");
      d.exclude_boot_volume = p["ExcludeBootVolume"].get<bool>();
    }
  }
  if (!v.contains("Schedules")) return Invalid("PolicyDetails.Schedules is required");
  const json& sched = v["Schedules"];
  if (!sched.is_array() || sched.empty() || sched.size() > 4)
    return Invalid("PolicyDetails.Schedules must list 1 to 4 schedules");
  for (const auto& s : sched) {
    ASSIGN_OR_RETURN(Schedule parsed, ParseSchedule(s, d.resource_type));
    for (const auto& other : d.schedules)
      if (other.name == parsed.name) return Invalid("Schedules: the name '" + parsed.name + "' is used twice");
    d.schedules.push_back(std::move(parsed));
  }
  return d;
}

json DefaultPolicyDetails(const std::string& schedule_name, int time_of_day_min, int count) {
  char hhmm[32];
  std::snprintf(hhmm, sizeof hhmm, "%02d:%02d", time_of_day_min / 60, time_of_day_min % 60);
  return json{{"PolicyType", "EBS_SNAPSHOT_MANAGEMENT"},
              {"ResourceTypes", {"VOLUME"}},
              {"Schedules",
               {{{"Name", schedule_name},
                 {"CopyTags", false},
                 {"CreateRule", {{"Interval", 24}, {"IntervalUnit", "HOURS"}, {"Times", {hhmm}}}},
                 {"RetainRule", {{"Count", count}}}}}}};
}

int64_t LatestAtOrBefore(const CreateRule& rule, int64_t t) {
  if (rule.cron.empty()) {
    const int64_t period = rule.interval_hours * kHourMs;
    const int64_t offset = (rule.time_of_day_min * kMinuteMs) % period;
    return FloorDiv(t - offset, period) * period + offset;
  }
  auto times = CronTimesOfDay(rule.cron_spec);
  if (times.empty()) return kNever;
  int64_t day = FloorDiv(t, kDayMs);
  for (int64_t i = 0; i < kCronSearchDays; ++i, --day) {
    if (!CronDayMatches(rule.cron_spec, DayOf(day))) continue;
    for (auto it = times.rbegin(); it != times.rend(); ++it)
      if (day * kDayMs + *it <= t) return day * kDayMs + *it;
  }
  return kNever;
}

int64_t NextAfter(const CreateRule& rule, int64_t t) {
  if (rule.cron.empty()) {
    const int64_t period = rule.interval_hours * kHourMs;
    return LatestAtOrBefore(rule, t) + period;
  }
  auto times = CronTimesOfDay(rule.cron_spec);
  if (times.empty()) return kNever;
  int64_t day = FloorDiv(t, kDayMs);
  for (int64_t i = 0; i < kCronSearchDays; ++i, ++day) {
    if (!CronDayMatches(rule.cron_spec, DayOf(day))) continue;
    for (int64_t off : times)
      if (day * kDayMs + off > t) return day * kDayMs + off;
  }
  return kNever;
}

int64_t CountStrictlyBetween(const CreateRule& rule, int64_t a, int64_t b) {
  int64_t n = 0;
  for (int64_t t = NextAfter(rule, a); t != kNever && t < b && n < 100000; t = NextAfter(rule, t)) ++n;
  return n;
}

int64_t RetainCutoff(const RetainRule& rule, int64_t now) {
  if (rule.count > 0 || rule.interval <= 0) return kNever;
  if (rule.interval_unit == "DAYS") return now - rule.interval * kDayMs;
  if (rule.interval_unit == "WEEKS") return now - rule.interval * 7 * kDayMs;
  // Months and years are calendar ones: the same day (clamped to the month's end) and time.
  int64_t day = FloorDiv(now, kDayMs);
  int64_t in_day = now - day * kDayMs;
  chr::year_month_day ymd{chr::sys_days{chr::days{day}}};
  int months = rule.interval_unit == "MONTHS" ? rule.interval : rule.interval * 12;
  chr::year_month_day back = ymd - chr::months{months};
  if (!back.ok()) back = back.year() / back.month() / chr::last;
  return chr::sys_days{back}.time_since_epoch().count() * kDayMs + in_day;
}

}  // namespace snapvol::lifecycle
