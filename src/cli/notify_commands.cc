#include "cli/notify_commands.h"

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/api_client.h"

namespace snapvol {
namespace {

// Prints each channel's result; returns the exit code (0: every channel delivered).
int NotifyTest(const ApiClientOptions& api, bool json_out) {
  auto answer = CallJsonApi(api, "POST", "notifications/test", "");
  if (!answer) {
    std::cerr << "snapvol: error: " << answer.error().message() << "\n";
    return 1;
  }
  auto j = nlohmann::json::parse(answer->body, nullptr, false);
  if (answer->status != 200 || !j.is_object() || !j.contains("notification")) {
    std::string code = j.is_object() && j.contains("error") ? j["error"].value("code", "") : "";
    std::string message = j.is_object() && j.contains("error") ? j["error"].value("message", "") : answer->body;
    std::cerr << "snapvol: error: HTTP " << answer->status << (code.empty() ? "" : " " + code) << ": " << message << "\n";
    return 1;
  }
  const auto& n = j["notification"];
  if (json_out) std::cout << n.dump(2) << "\n";
  int rc = 0;
  for (const char* channel : {"webhook", "email"}) {
    if (!n.contains(channel)) continue;
    const auto& c = n[channel];
    bool ok = c.value("delivered", false);
    if (!ok) rc = 1;
    if (json_out) continue;
    std::cout << channel << ": " << (ok ? "delivered" : "NOT delivered");
    if (c.contains("status") && c["status"].get<int>() != 0) std::cout << " (HTTP " << c["status"].get<int>() << ")";
    if (c.contains("error")) std::cout << ": " << c["error"].get<std::string>();
    std::cout << "\n";
  }
  if (!json_out) std::cout << "event id " << n.value("id", "") << "\n";
  return rc;
}

}  // namespace

void AddNotifyCommands(CLI::App& app, std::function<void()>* action, int* exit_code) {
  auto* notify = app.add_subcommand("notify", "Operator notifications of a running snapvold");
  notify->require_subcommand(1);
  auto* test = notify->add_subcommand(
      "test", "Send a test notification through snapvold's configured webhook and mail (administrators)");
  auto api = std::make_shared<ApiClientOptions>();
  auto json_out = std::make_shared<bool>(false);
  test->add_option("--endpoint", api->endpoint, "snapvold's URL, e.g. http://127.0.0.1:8787")->required();
  test->add_option("--profile", api->profile, "AWS credentials profile (default: $AWS_PROFILE or the env keys)");
  test->add_option("--region", api->region, "Region to sign for (default: $AWS_DEFAULT_REGION or us-east-1)");
  test->add_flag("--json", *json_out, "Print the daemon's report as JSON");
  test->callback([=] { *action = [=] { *exit_code = NotifyTest(*api, *json_out); }; });
}

}  // namespace snapvol
