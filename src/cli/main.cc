// snapvol: the command-line tool for operators and benchmarks.
#include "cli/commands.h"

int main(int argc, char** argv) { return snapvol::RunCli(argc, argv); }
