#include "core/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "core/file_util.h"
#include "core/hash.h"

extern char** environ;

namespace snapvol {

std::string CommandResult::Describe(int64_t timeout_ms) const {
  std::string said = output;
  while (!said.empty() && (said.back() == '\n' || said.back() == '\r')) said.pop_back();
  if (said.size() > 300) said = "..." + said.substr(said.size() - 297);
  const std::string tail = said.empty() ? "" : ": " + said;
  if (timed_out) {
    char secs[32];
    std::snprintf(secs, sizeof secs, timeout_ms % 1000 ? "%.1f" : "%.0f", static_cast<double>(timeout_ms) / 1000);
    return std::string("did not finish within ") + secs + " s (killed)" + tail;
  }
  if (signal != 0) return "was killed by signal " + std::to_string(signal) + tail;
  return "exited " + std::to_string(exit_code) + tail;
}

Result<CommandResult> RunCommand(const std::vector<std::string>& argv, const std::string& input, int64_t timeout_ms,
                                 size_t output_cap, std::string* write_error, const std::vector<std::string>* env) {
  if (argv.empty() || argv[0].empty()) return InvalidArgument("no command to run");
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0) return std::unexpected(PosixError("pipe", errno));
  UniqueFd in_r(in[0]), in_w(in[1]);
  if (pipe2(out, O_CLOEXEC) != 0) return std::unexpected(PosixError("pipe", errno));
  UniqueFd out_r(out[0]), out_w(out[1]);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in_r.get(), 0);
  posix_spawn_file_actions_adddup2(&fa, out_w.get(), 1);
  posix_spawn_file_actions_adddup2(&fa, out_w.get(), 2);
  // The daemon's other descriptors (sockets, the catalog) are not the child's business.
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // The daemon blocks SIGTERM/SIGINT in every thread: the child starts with nothing blocked.
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);  // its own group: a timeout kills what it started too
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  std::vector<std::string> args = argv;
  std::vector<char*> cargv;
  for (auto& a : args) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  std::vector<std::string> envs = env ? *env : std::vector<std::string>{};
  std::vector<char*> cenv;
  for (auto& e : envs) cenv.push_back(e.data());
  cenv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0].c_str(), &fa, &attr, cargv.data(), env ? cenv.data() : environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return std::unexpected(PosixError("cannot run " + argv[0], rc));
  in_r.Reset();
  out_w.Reset();

  // A child that exits early must not kill the daemon with SIGPIPE: block it in this thread
  // while writing, and take any it raised before unblocking.
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  Status wrote = input.empty() ? OkStatus() : WriteFull(in_w.get(), AsBytes(input));
  in_w.Reset();
  timespec zero{};
  while (sigtimedwait(&pipe_set, nullptr, &zero) == SIGPIPE) {
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (!wrote && write_error) *write_error = wrote.error().message();

  // What it prints (up to the cap; the rest is read and dropped so it never blocks), until it
  // closes its output or the deadline passes.
  CommandResult r;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      r.timed_out = true;
      break;
    }
    pollfd p{out_r.get(), POLLIN, 0};
    int n = poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
    char buf[4096];
    ssize_t got = read(out_r.get(), buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    if (r.output.size() < output_cap)
      r.output.append(buf, std::min(static_cast<size_t>(got), output_cap - r.output.size()));
  }
  if (r.timed_out) kill(-pid, SIGKILL);  // the group: the program and what it started
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  else if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  return r;
}

Result<std::vector<std::string>> SplitCommandLine(const std::string& line) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (c == ' ' || c == '\t' || c == '\n') {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
      continue;
    }
    in_word = true;
    if (c == '\\') {
      if (++i == line.size()) return InvalidArgument("the command ends with a backslash: " + line);
      word += line[i];
    } else if (c == '\'') {
      size_t end = line.find('\'', i + 1);
      if (end == std::string::npos) return InvalidArgument("unterminated ' in the command: " + line);
      word += line.substr(i + 1, end - i - 1);
      i = end;
    } else if (c == '"') {
      for (++i;; ++i) {
        if (i == line.size()) return InvalidArgument("unterminated \" in the command: " + line);
        if (line[i] == '"') break;
        if (line[i] == '\\' && i + 1 < line.size() && (line[i + 1] == '"' || line[i + 1] == '\\')) ++i;
        word += line[i];
      }
    } else {
      word += c;
    }
  }
  if (in_word) words.push_back(std::move(word));
  if (words.empty()) return InvalidArgument("the command is empty");
  return words;
}

}  // namespace snapvol
