// Placeholder until the remote benchmark lands: says so and fails, so nobody mistakes it for a result.
#include <cstdio>

#include "tools/kvt_bench/bench_commands.h"

namespace kvt::bench {

int RunRemoteBench(int, char**) {
  std::fprintf(stderr, "kvt-bench remote: not implemented yet\n");
  return 2;
}

}  // namespace kvt::bench
