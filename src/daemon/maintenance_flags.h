// snapvold's settings for the maintenance jobs (GC, verification and restore drills): the flags (also TOML keys
// through --config) and their checks. Operator events go to the daemon's notifier.
// Thread-safety: call from the main thread.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "core/events.h"
#include "lifecycle/maintenance.h"

namespace snapvol {

struct MaintenanceFlags {
  std::string gc_time = "04:00", verify_time = "05:00";
  int64_t gc_every_s = 0, verify_every_s = 0, gc_grace_s = 15 * 60;
  int verify_period_days = 7;
  bool disable_gc = false, disable_verify = false, verify_quick = false;
  double gc_repack_threshold = 0.10;
  int64_t recycle_bin_clock_offset_days = 0;  // for tests: GC ends Recycle Bin retention this much sooner
  const CLI::Option* gc_repack_threshold_option = nullptr;  // set by AddMaintenanceFlags
  std::string drill_time;  // empty: no scheduled drills
  int64_t drill_every_s = 0, drill_check_timeout_s = 3600;
  int drill_per_account = 1;
  std::string drill_dir, drill_check_command;  // drill_dir empty: DATA_DIR/drills
};

void AddMaintenanceFlags(CLI::App& app, MaintenanceFlags* flags);

// The options the flags say, or an error naming the flag that is wrong.
// data_dir: where the drills' scratch directory goes unless --drill-dir names another.
Result<lifecycle::MaintenanceOptions> MaintenanceOptionsFrom(const MaintenanceFlags& flags, EventSink* events,
                                                             const std::string& data_dir);

// Refuses a setting that the store of the data dir would ignore: --gc-repack-threshold given
// (flag or --config) for a format-1 store.
Status CheckMaintenanceFlagsForStore(const MaintenanceFlags& flags, uint32_t store_format);

}  // namespace snapvol
