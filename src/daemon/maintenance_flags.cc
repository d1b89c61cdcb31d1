#include "daemon/maintenance_flags.h"

#include <cctype>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/clock.h"

namespace snapvol {
namespace {

// "hh:mm" (UTC) → minutes after midnight, or -1.
int ParseTimeOfDay(const std::string& t) {
  if (t.size() != 5 || t[2] != ':') return -1;
  for (int i : {0, 1, 3, 4})
    if (!std::isdigit(static_cast<unsigned char>(t[i]))) return -1;
  int h = (t[0] - '0') * 10 + (t[1] - '0'), m = (t[3] - '0') * 10 + (t[4] - '0');
  return h < 24 && m < 60 ? h * 60 + m : -1;
}

}  // namespace

void AddMaintenanceFlags(CLI::App& app, MaintenanceFlags* f) {
  app.add_option("--gc-time", f->gc_time, "UTC time of day (hh:mm) of the daily garbage collection (default 04:00)");
  app.add_option("--gc-every", f->gc_every_s,
                 "Collect garbage every this many seconds instead of daily (for tests; default 0: daily)");
  app.add_option("--gc-grace", f->gc_grace_s,
                 "Seconds an unreferenced object is kept before GC may delete it (default 900)");
  app.add_flag("--disable-gc", f->disable_gc, "Never collect garbage on a schedule (snapvol job run gc still works)");
  f->gc_repack_threshold_option =
      app.add_option("--gc-repack-threshold", f->gc_repack_threshold,
                     "Format-2 stores: GC rewrites a pack when more than this share of its bytes is dead "
                     "(above 0, at most 1; 1: only packs with nothing live are deleted; default 0.1)");
  app.add_option("--recycle-bin-clock-offset-days", f->recycle_bin_clock_offset_days,
                 "For tests: GC judges the end of Recycle Bin retention this many days ahead of the clock (default 0)")
      ->check(CLI::Range(int64_t{0}, int64_t{3650}));
  app.add_option("--verify-time", f->verify_time, "UTC time of day (hh:mm) of the daily verification (default 05:00)");
  app.add_option("--verify-every", f->verify_every_s,
                 "Verify every this many seconds instead of daily (for tests; default 0: daily)");
  app.add_option("--verify-period-days", f->verify_period_days,
                 "Every snapshot is verified at least once in this many days, a share each run (default 7)");
  app.add_flag("--verify-quick", f->verify_quick,
               "Each scheduled verification also checks the checksums of every other snapshot (the day's share "
               "is still fully decoded)");
  app.add_flag("--disable-verify", f->disable_verify, "Never verify on a schedule (snapvol job run verify still works)");
  app.add_option("--drill-time", f->drill_time,
                 "UTC time of day (hh:mm) of a daily restore drill: the least recently drilled latest snapshot of "
                 "each account is restored in full to --drill-dir and checked (default: none; snapvol job run drill "
                 "still works)");
  app.add_option("--drill-every", f->drill_every_s,
                 "Drill every this many seconds instead of daily (for tests; default 0: daily at --drill-time)");
  app.add_option("--drill-per-account", f->drill_per_account, "Snapshots each drill restores per account (default 1)");
  app.add_option("--drill-dir", f->drill_dir,
                 "Scratch directory of the drills, with room for the largest volume (default DATA_DIR/drills; "
                 "made private; images are removed after each drill)");
  app.add_option("--drill-check-command", f->drill_check_command,
                 "Command run on each restored image, e.g. 'e2fsck -n -f {image}' or 'xfs_repair -n {image}' "
                 "({image}, {snapshot}, {volume} are replaced; no shell); a non-zero exit fails the drill "
                 "(default: none)");
  app.add_option("--drill-check-timeout", f->drill_check_timeout_s,
                 "Seconds the check command may take before it is killed and the drill fails (default 3600)");
}

Result<lifecycle::MaintenanceOptions> MaintenanceOptionsFrom(const MaintenanceFlags& f, EventSink* events,
                                                             const std::string& data_dir) {
  lifecycle::MaintenanceOptions o;
  o.gc_enabled = !f.disable_gc;
  o.verify_enabled = !f.disable_verify;
  o.gc_time_min = ParseTimeOfDay(f.gc_time);
  o.verify_time_min = ParseTimeOfDay(f.verify_time);
  if (f.gc_every_s < 0) return InvalidArgument("--gc-every must be 0 (daily) or a positive number of seconds");
  if (f.verify_every_s < 0) return InvalidArgument("--verify-every must be 0 (daily) or a positive number of seconds");
  if (f.gc_grace_s < 0 || f.gc_grace_s > 365LL * 86400) return InvalidArgument("--gc-grace must be 0 to 31536000 seconds");
  o.gc_every_ms = f.gc_every_s * 1000;
  o.verify_every_ms = f.verify_every_s * 1000;
  o.gc_grace_ms = f.gc_grace_s * 1000;
  o.gc_repack_threshold = f.gc_repack_threshold;
  o.recycle_bin_clock_offset_ms = f.recycle_bin_clock_offset_days * 24 * 3600 * 1000;
  o.verify_period_days = f.verify_period_days;
  o.verify_quick = f.verify_quick;
  o.drill_enabled = !f.drill_time.empty() || f.drill_every_s > 0;
  o.drill_time_min = f.drill_time.empty() ? 0 : ParseTimeOfDay(f.drill_time);
  if (f.drill_every_s < 0) return InvalidArgument("--drill-every must be 0 (daily) or a positive number of seconds");
  if (f.drill_check_timeout_s < 1 || f.drill_check_timeout_s > 7 * 86400)
    return InvalidArgument("--drill-check-timeout must be 1 to 604800 seconds");
  if (f.drill_per_account < 1) return InvalidArgument("--drill-per-account must be 1 to 1000");
  o.drill_every_ms = f.drill_every_s * 1000;
  o.drill.per_account = static_cast<size_t>(f.drill_per_account);
  o.drill.scratch_dir = f.drill_dir.empty() ? data_dir + "/drills" : f.drill_dir;
  o.drill.check_command = lifecycle::SplitCommand(f.drill_check_command);
  o.drill.check_timeout_ms = f.drill_check_timeout_s * 1000;
  o.events = events;
  RETURN_IF_ERROR(lifecycle::ValidateMaintenanceOptions(o));
  return o;
}

Status CheckMaintenanceFlagsForStore(const MaintenanceFlags& f, uint32_t store_format) {
  if (store_format != 2 && f.gc_repack_threshold_option != nullptr && f.gc_repack_threshold_option->count() > 0)
    return InvalidArgument("--gc-repack-threshold applies to format-2 stores (packs) only; the store of this data "
                           "dir is format " + std::to_string(store_format));
  return OkStatus();
}

}  // namespace snapvol
