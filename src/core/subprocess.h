// Runs a program to its end with a deadline: its standard input fed from a string, its
// standard output and error gathered (up to a cap), the daemon's other descriptors closed and
// its signal mask reset, so a child of snapvold behaves as it would from a shell. No shell is
// involved: argv[0] is run as given (a path, or a name looked up in PATH).
// The child leads a process group of its own, so a timeout kills what it started too (a
// `sh -c` and its children), not only the program itself.
// Used for the MTA of e-mail notifications, the check command of restore drills and the
// freeze hooks of instances.
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
// went wrong feeding its input (e.g. it exited before reading it). env (optional): the whole
// environment of the child ("NAME=value" each) instead of the daemon's.
Result<CommandResult> RunCommand(const std::vector<std::string>& argv, const std::string& input, int64_t timeout_ms,
                                 size_t output_cap = 1024, std::string* write_error = nullptr,
                                 const std::vector<std::string>* env = nullptr);

// Splits a command line into argv without a shell, by these rules only: blanks (space, tab,
// newline) separate words; '…' quotes everything literally; "…" quotes everything except \"
// and \\, which stand for " and \; outside quotes a backslash takes the next character literally.
// Nothing else is special: no variables, globs, pipes, redirections or `;` (they are ordinary
// characters of a word); wrap the command in `sh -c '…'` for those.
// kInvalidArgument for an unterminated quote, a trailing backslash, or no word at all.
Result<std::vector<std::string>> SplitCommandLine(const std::string& line);

}  // namespace snapvol
