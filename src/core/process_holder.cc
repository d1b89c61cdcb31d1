#include "core/process_holder.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <fstream>
#include <optional>
#include <sstream>

namespace snapvol {
namespace {

std::string ReadFirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

std::string PidNamespace() {
  char buf[128];
  ssize_t n = ::readlink("/proc/self/ns/pid", buf, sizeof buf - 1);
  if (n <= 0) return "";
  return std::string(buf, static_cast<size_t>(n));
}

// Field n (3 or more) of /proc/<pid>/stat: 3 the state, 22 the start time in ticks since
// boot. The command name, field 2, may hold spaces and parentheses, so fields are counted
// from its closing parenthesis.
std::string StatField(long pid, int n) {
  std::string stat = ReadFirstLine("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  if (close == std::string::npos) return "";
  std::istringstream rest(stat.substr(close + 1));
  std::string field;
  for (int i = 3; i <= n; ++i)
    if (!(rest >> field)) return "";
  return field;
}

struct Holder {
  std::string host;
  long pid = 0;
};

std::optional<Holder> ParseHolder(const std::string& text) {
  std::istringstream words(text);
  std::string w;
  while (words >> w) {
    auto colon = w.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == w.size()) continue;
    std::string digits = w.substr(colon + 1);
    if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    return Holder{w.substr(0, colon), std::stol(digits)};
  }
  return std::nullopt;
}

}  // namespace

bool ProcessGone(long pid) {
  if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return true;
  const std::string state = StatField(pid, 3);
  return state == "Z" || state == "X";
}

std::string ThisHostName() {
  char host[HOST_NAME_MAX + 1] = {0};
  if (::gethostname(host, sizeof host - 1) != 0) return "";
  return host;
}

std::string ThisProcessHolder() { return ThisHostName() + ":" + std::to_string(::getpid()); }

std::string ProcessStartToken(long pid) {
  const std::string boot = ReadFirstLine("/proc/sys/kernel/random/boot_id");
  const std::string ns = PidNamespace();
  const std::string ticks = StatField(pid, 22);
  if (boot.empty() || ns.empty() || ticks.empty()) return "";
  return boot + " " + ns + " " + ticks;
}

std::string ThisProcessStartToken() { return ProcessStartToken(::getpid()); }

bool HolderIsGone(const std::string& holder, const std::string& start_token) {
  auto h = ParseHolder(holder);
  if (!h || h->pid <= 0 || h->pid == ::getpid()) return false;
  const std::string host = ThisHostName();
  if (host.empty() || h->host != host) return false;
  if (!start_token.empty()) {
    // Another boot or pid namespace (or another machine of the same name): cannot tell.
    const std::string mine = ThisProcessStartToken();
    auto prefix = [](const std::string& t) { return t.substr(0, t.rfind(' ')); };
    if (mine.empty() || prefix(mine) != prefix(start_token)) return false;
    if (ProcessGone(h->pid)) return true;
    const std::string now = ProcessStartToken(h->pid);
    return !now.empty() && now != start_token;  // the pid runs another process now
  }
  return ProcessGone(h->pid);
}

}  // namespace snapvol
