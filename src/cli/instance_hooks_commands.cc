#include "cli/instance_hooks_commands.h"

#include <iostream>

#include "core/clock.h"

namespace snapvol::cli {
namespace {

using json = nlohmann::json;

// What `set-hooks` was given; an option not given keeps the hooks' current value.
struct HooksOptions {
  std::string instance_id;
  std::optional<std::string> pre, post, on_pre_failure;
  std::optional<int64_t> timeout_s;
  bool clear = false;
};

std::optional<InstanceHooksRecord> Find(Catalog* catalog, const std::string& instance_id) {
  auto h = catalog->GetInstanceHooks(instance_id);
  if (!h && h.error().code() == ErrorCode::kNotFound) return std::nullopt;
  return Must(std::move(h));
}

void CmdSetHooks(const Globals& g, const HooksOptions& o) {
  auto dir = OpenDir(g);
  Catalog* catalog = dir->catalog();
  Must(catalog->GetInstance(o.instance_id));  // "instance … not found" before anything else
  if (o.clear) {
    if (o.pre || o.post || o.on_pre_failure || o.timeout_s)
      throw Failure{"--clear removes the hooks: give it alone"};
    Must(catalog->ClearInstanceHooks(o.instance_id));
    std::cout << o.instance_id << " hooks cleared\n";
    return;
  }
  InstanceHooksRecord h = Find(catalog, o.instance_id).value_or(InstanceHooksRecord{});
  h.instance_id = o.instance_id;
  if (o.pre) h.pre_command = *o.pre;
  if (o.post) h.post_command = *o.post;
  if (o.on_pre_failure) h.on_pre_failure = *o.on_pre_failure;
  if (o.timeout_s) h.timeout_s = *o.timeout_s;
  h.updated_ms = Clock::Real()->NowMillis();
  Must(catalog->SetInstanceHooks(h));
  std::cout << o.instance_id << " hooks: " << HooksSummary(h) << "\n";
}

void CmdShow(const Globals& g, const std::string& instance_id) {
  auto dir = OpenDir(g);
  auto i = Must(dir->catalog()->GetInstance(instance_id));
  auto h = Find(dir->catalog(), instance_id);
  if (g.output == "json") {
    json out = {{"InstanceId", i.instance_id}, {"OwnerId", i.account_id}, {"Name", i.name},
                {"CreateTime", FormatIso8601(i.created_ms)}, {"State", i.state},
                {"Tags", TagsJson(i.tags)}, {"Hooks", HooksJson(h)}};
    std::cout << out.dump(2) << "\n";
    return;
  }
  std::vector<std::vector<std::string>> rows = {{"InstanceId", i.instance_id}, {"OwnerId", i.account_id},
                                                {"Name", i.name},           {"State", i.state},
                                                {"Tags", TagsText(i.tags)}};
  if (h) {
    rows.push_back({"PreCommand", h->pre_command.empty() ? "-" : h->pre_command});
    rows.push_back({"PostCommand", h->post_command.empty() ? "-" : h->post_command});
    rows.push_back({"TimeoutSeconds", std::to_string(h->timeout_s)});
    rows.push_back({"OnPreFailure", h->on_pre_failure});
  } else {
    rows.push_back({"Hooks", "-"});
  }
  PrintTable({"FIELD", "VALUE"}, rows);
}

}  // namespace

json HooksJson(const std::optional<InstanceHooksRecord>& h) {
  if (!h) return nullptr;
  return {{"PreCommand", h->pre_command},     {"PostCommand", h->post_command},
          {"TimeoutSeconds", h->timeout_s},   {"OnPreFailure", h->on_pre_failure},
          {"UpdateTime", FormatIso8601(h->updated_ms)}};
}

std::string HooksSummary(const std::optional<InstanceHooksRecord>& h) {
  if (!h) return "-";
  std::string which = h->pre_command.empty() ? "post" : h->post_command.empty() ? "pre" : "pre+post";
  return which + " " + std::to_string(h->timeout_s) + "s " + h->on_pre_failure;
}

void AddInstanceHooksCommands(CLI::App* instance, const Globals& g, std::function<void()>* action) {
  auto o = std::make_shared<HooksOptions>();
  auto* set = instance->add_subcommand(
      "set-hooks",
      "Set an instance's freeze hooks: commands run on this host, as the daemon's user, around the cut of all "
      "its volumes (CreateSnapshots, lifecycle policies targeting instances). Options not given keep their value.");
  set->add_option("instance_id", o->instance_id, "The instance (i-…)")->required();
  set->add_option("--pre", o->pre,
                  "Run before the cut (e.g. 'virsh domfsfreeze DOMAIN'); no shell: words split on blanks, "
                  "'…' and \"…\" quote, \\ escapes; '' removes it");
  set->add_option("--post", o->post, "Run after the cut, always once --pre was tried (e.g. 'virsh domfsthaw DOMAIN')");
  set->add_option("--timeout", o->timeout_s, "Seconds each command may take, 1-3600 (default 10); then it is killed");
  set->add_option("--on-pre-failure", o->on_pre_failure,
                  "When --pre fails or times out: crash-consistent (default: snapshot anyway, noted in the "
                  "aws:snapvol:consistency tag) or fail (the snapshots end in error, no data taken)")
      ->check(CLI::IsMember({"crash-consistent", "fail"}));
  set->add_flag("--clear", o->clear, "Remove the instance's hooks");
  set->callback([=, &g] { *action = [=, &g] { CmdSetHooks(g, *o); }; });

  auto show_id = std::make_shared<std::string>();
  auto* show = instance->add_subcommand("show", "Show an instance, its tags and its freeze hooks");
  show->add_option("instance_id", *show_id, "The instance (i-…)")->required();
  show->callback([=, &g] { *action = [=, &g] { CmdShow(g, *show_id); }; });
}

}  // namespace snapvol::cli
