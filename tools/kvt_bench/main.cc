// kvt-bench <subcommand> [options] — benchmarks that report ratios against physical limits.
#include <cstdio>
#include <cstring>
#include <string_view>

#include "tools/kvt_bench/bench_commands.h"

namespace {

struct Subcommand {
  std::string_view name;
  int (*run)(int, char**);
  std::string_view help;
};

constexpr Subcommand kSubcommands[] = {
    {"block", kvt::bench::RunBlockBench, "block plane vs memcpy (needs no daemon: starts one)"},
    {"nvme", kvt::bench::RunNvmeBench, "NVMe tier vs raw io_uring O_DIRECT"},
    {"kernels", kvt::bench::RunKernelsBench, "quantization and selection kernels"},
    {"lowrank", kvt::bench::RunLowrankBench, "TALE reconstruction-free attention vs dense"},
    {"decode", kvt::bench::RunDecodeBench, "decode step: full / offload / TailorKV"},
    {"remote", kvt::bench::RunRemoteBench, "remote tier vs redis-benchmark"},
};

void Usage() {
  std::fprintf(stderr, "usage: kvt-bench <subcommand> [--json] [options]\n\nsubcommands:\n");
  for (const auto& s : kSubcommands) {
    std::fprintf(stderr, "  %-8.*s %.*s\n", static_cast<int>(s.name.size()), s.name.data(),
                 static_cast<int>(s.help.size()), s.help.data());
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    Usage();
    return argc < 2 ? 2 : 0;
  }
  for (const auto& s : kSubcommands) {
    if (s.name == argv[1]) return s.run(argc - 1, argv + 1);
  }
  std::fprintf(stderr, "kvt-bench: unknown subcommand '%s'\n", argv[1]);
  Usage();
  return 2;
}
