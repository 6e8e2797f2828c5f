// Placeholder until the lowrank benchmark lands: says so and fails, so nobody mistakes it for a result.
#include <cstdio>

#include "tools/kvt_bench/bench_commands.h"

namespace kvt::bench {

int RunLowrankBench(int, char**) {
  std::fprintf(stderr, "kvt-bench lowrank: not implemented yet\n");
  return 2;
}

}  // namespace kvt::bench
