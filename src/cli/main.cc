// snapvol: the command-line tool for operators and benchmarks.
#include <sys/stat.h>

#include "cli/commands.h"
#include "core/allocator.h"

int main(int argc, char** argv) {
  // Everything snapvol writes (data dir, catalog, store objects, restored images) is private
  // to its owner: the data holds every team's volumes and the keys that reach them.
  ::umask(077);
  snapvol::KeepLargeBuffersInHeap();
  return snapvol::RunCli(argc, argv);
}
