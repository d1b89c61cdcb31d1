#include "cli/store_upgrade_command.h"

#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/data_dir.h"
#include "cli/progress_bar.h"
#include "store/store_upgrade.h"

namespace snapvol {
namespace {

std::string Mib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", bytes / 1048576.0);
  return buf;
}

struct UpgradeArgs {
  uint64_t pack_size_mib = 0;  // 0: the default for the store (local or S3)
  bool dry_run = false;
};

Status Run(const std::string& data_dir, bool json_out, const UpgradeArgs& args) {
  if (data_dir.empty()) return InvalidArgument("no data dir: pass --data-dir DIR or set SNAPVOL_DATA_DIR");
  ASSIGN_OR_RETURN(auto dir, DataDir::Open(data_dir));
  Repository* repo = dir->repo();
  UpgradeOptions o;
  o.pack_size = args.pack_size_mib << 20;
  if (o.pack_size == 0) {
    ASSIGN_OR_RETURN(auto s3, DataDir::ReadS3Config(data_dir));
    o.pack_size = s3 ? kDefaultS3PackSize : kDefaultPackSize;
  }
  o.dry_run = args.dry_run;
  o.pool = dir->pool();
  std::unique_ptr<ProgressBar> bar;
  const char* phase = "";
  o.progress = [&](const UpgradeProgress& p) {
    if (phase != p.phase) {
      if (bar) bar->Finish();
      // Said once the store is held (a refusal stays the one error line).
      if (!*phase)
        std::cerr << "upgrading the store at " << repo->store()->Describe()
                  << " to format 2; snapvold must be stopped while this runs\n";
      phase = p.phase;
      bar = std::make_unique<ProgressBar>(std::string("upgrade: ") + p.phase, /*lines_otherwise=*/true);
    }
    bar->Update(p.bytes_done, p.bytes_total,
                std::to_string(p.objects_done) + "/" + std::to_string(p.objects_total) + " objects, " +
                    Mib(p.bytes_done) + " of " + Mib(p.bytes_total));
  };
  const auto start = std::chrono::steady_clock::now();
  auto report = UpgradeStore(repo, o);
  if (bar) bar->Finish();
  if (!report) return std::unexpected(report.error());
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const UpgradeReport& r = *report;
  const uint64_t objects = r.chunks + r.pages;
  if (json_out) {
    nlohmann::json j = {{"FormatBefore", r.format_before}, {"DryRun", args.dry_run}, {"Changed", r.changed},
                        {"Chunks", r.chunks}, {"IndexPages", r.pages}, {"BytesBefore", r.bytes_before},
                        {"Copied", r.copied}, {"AlreadyPacked", r.already_packed}, {"Vanished", r.vanished},
                        {"Packs", r.packs}, {"PacksEstimate", r.packs_estimate}, {"BytesAfter", r.bytes_after},
                        {"LeftoversDeleted", r.leftovers_deleted}, {"Seconds", secs}};
    std::cout << j.dump(2) << "\n";
    return OkStatus();
  }
  if (r.format_before == 2) {
    if (objects == 0 && r.changed)
      std::cout << "the store is already format 2; removed the hold an interrupted upgrade left\n";
    else if (objects == 0)
      std::cout << "the store is already format 2; nothing to do\n";
    else if (args.dry_run)
      std::cout << "the store is already format 2; would delete " << objects << " format-1 objects ("
                << Mib(r.bytes_before) << ") an interrupted upgrade left\n";
    else
      std::cout << "the store is already format 2; deleted " << r.leftovers_deleted << " format-1 objects ("
                << Mib(r.bytes_before) << ") an interrupted upgrade left\n";
    return OkStatus();
  }
  if (args.dry_run) {
    std::cout << "would convert " << objects << " objects (" << r.chunks << " chunks, " << r.pages
              << " index pages, " << Mib(r.bytes_before) << ") into about " << r.packs_estimate << " packs of "
              << args.pack_size_mib << " MiB";
    if (r.already_packed) std::cout << "; " << r.already_packed << " are packed already (an interrupted run)";
    std::cout << ", then switch the store to format 2 and delete the format-1 objects; nothing changed\n";
    return OkStatus();
  }
  char secs_text[32];
  std::snprintf(secs_text, sizeof secs_text, "%.1f", secs);
  std::cout << "upgraded the store to format 2: " << objects << " objects (" << r.chunks << " chunks, " << r.pages
            << " index pages; " << r.copied << " copied now, " << r.already_packed << " by an earlier run"
            << (r.vanished ? ", " + std::to_string(r.vanished) + " deleted meanwhile by gc" : "") << ") in " << r.packs
            << " packs, " << Mib(r.bytes_before) << " before, " << Mib(r.bytes_after) << " after, "
            << r.leftovers_deleted << " format-1 objects deleted, " << secs_text << " s\n";
  return OkStatus();
}

}  // namespace

void AddStoreUpgradeCommand(CLI::App* store_cmd, const std::string* data_dir, const std::string* output,
                            std::function<void()>* action, int* exit_code) {
  auto* cmd = store_cmd->add_subcommand(
      "upgrade",
      "Convert a format-1 store (one object per chunk) to format 2 (packs) in place. Stop snapvold first;\n"
      "refused while a snapshot, gc or verification is running. Resumable: run it again after an interruption.");
  auto args = std::make_shared<UpgradeArgs>();
  cmd->add_option("--pack-size", args->pack_size_mib, "Target MiB per pack (1-128; default 16, on S3 32)")
      ->check(CLI::Range(uint64_t{kMinPackSize >> 20}, uint64_t{kMaxPackSize >> 20}));
  cmd->add_flag("--dry-run", args->dry_run, "Say what would be converted; change nothing");
  cmd->callback([=] {
    *action = [=] {
      auto st = Run(*data_dir, *output == "json", *args);
      if (!st) {
        std::cerr << "snapvol: error: store upgrade: " << st.error().message() << "\n";
        *exit_code = 1;
        return;
      }
      *exit_code = 0;
    };
  });
}

}  // namespace snapvol
