// Runs a program to its end with a deadline: its standard input fed from a string, its
// standard output and error gathered (up to a cap), the daemon's other descriptors closed and
// its signal mask reset, so a child of snapvold behaves as it would from a shell. No shell is
// involved: argv[0] is run as given (a path, or a name looked up in PATH).
// Used for the MTA of e-mail notifications and the check command of restore drills.
// Thread-safety: any thread may run a command; SIGPIPE raised by a child that stops reading is
// taken in the calling thread and never reaches the process.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace snapvol {

struct CommandResult {
  bool timed_out = false;  // killed (SIGKILL) when the deadline passed
  int exit_code = -1;      // when it exited
  int signal = 0;          // when a signal ended it (SIGKILL after a timeout included)
  std::string output;      // stdout and stderr interleaved, at most output_cap bytes
  bool ok() const { return !timed_out && signal == 0 && exit_code == 0; }
  // "exited 3", "was killed by signal 9", "did not finish within 30 s (killed)", plus ": "
  // and the end of its output (trailing line breaks removed, at most 300 bytes).
  std::string Describe(int64_t timeout_ms) const;
};

// kInvalidArgument for an empty argv; an error naming the program when it cannot be started
// (kNotFound when it does not exist).
// A program that runs and fails is a result, not an error; write_error (optional) gets what
// went wrong feeding its input (e.g. it exited before reading it).
Result<CommandResult> RunCommand(const std::vector<std::string>& argv, const std::string& input, int64_t timeout_ms,
                                 size_t output_cap = 1024, std::string* write_error = nullptr);

}  // namespace snapvol
