// snapvol-rusage: runs a command and reports the command's own resource usage.
//
//   snapvol-rusage REPORT_FILE COMMAND [ARGS...]
//
// Writes wall time, user/sys CPU time and peak RSS of COMMAND to REPORT_FILE as
// `key=value` lines and exits with COMMAND's exit status (128+N if killed by signal N).
//
// Why this exists: Linux carries a process's peak RSS across exec(), so a child spawned
// directly by the benchmark script starts with the Python interpreter's RSS (10+ MiB, more
// after the script has allocated) as the floor of its ru_maxrss.  This helper is tiny, so
// the floor of the command it spawns is only this helper's own RSS (~1-2 MiB).
//
// stdin/stdout/stderr, the working directory and the environment are inherited.

#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

extern char** environ;

namespace {

double Seconds(const timeval& tv) {
  return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
}

double Now() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: snapvol-rusage REPORT_FILE COMMAND [ARGS...]\n");
    return 2;
  }
  const double start = Now();
  pid_t pid = 0;
  // posix_spawnp searches PATH like execvp.
  const int err = posix_spawnp(&pid, argv[2], nullptr, nullptr, argv + 2, environ);
  if (err != 0) {
    std::fprintf(stderr, "snapvol-rusage: cannot run %s: %s\n", argv[2], std::strerror(err));
    return 127;
  }
  int status = 0;
  rusage usage{};
  while (wait4(pid, &status, 0, &usage) < 0) {
    if (errno != EINTR) {
      std::perror("snapvol-rusage: wait4");
      return 125;
    }
  }
  const double wall = Now() - start;
  const int exit_code = WIFEXITED(status)     ? WEXITSTATUS(status)
                        : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
                                              : 125;

  std::FILE* report = std::fopen(argv[1], "w");
  if (report == nullptr) {
    std::fprintf(stderr, "snapvol-rusage: cannot write %s: %s\n", argv[1], std::strerror(errno));
    return 125;
  }
  std::fprintf(report, "wall_s=%.6f\nuser_s=%.6f\nsys_s=%.6f\nmaxrss_kib=%ld\nexit=%d\n", wall,
               Seconds(usage.ru_utime), Seconds(usage.ru_stime), usage.ru_maxrss, exit_code);
  if (std::fclose(report) != 0) {
    std::perror("snapvol-rusage: write report");
    return 125;
  }
  return exit_code;
}
