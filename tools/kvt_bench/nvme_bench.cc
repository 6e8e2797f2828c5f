// Placeholder until the nvme benchmark lands: says so and fails, so nobody mistakes it for a result.
#include <cstdio>

#include "tools/kvt_bench/bench_commands.h"

namespace kvt::bench {

int RunNvmeBench(int, char**) {
  std::fprintf(stderr, "kvt-bench nvme: not implemented yet\n");
  return 2;
}

}  // namespace kvt::bench
