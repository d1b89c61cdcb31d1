// The `snapvol` command line: parses arguments and runs one command on a data dir.
// Thread-safety: call once per process.
#pragma once

namespace snapvol {

// Returns the process exit code: 0 success, 1 failure (one-line reason on stderr), 2 usage.
int RunCli(int argc, char** argv);

}  // namespace snapvol
