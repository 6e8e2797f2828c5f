// kvt-bench subcommands. Each lives in its own <name>_bench.cc and prints one JSON document to
// stdout with --json. Figures are reported next to the physical limit measured in the same run.
#pragma once

namespace kvt::bench {

int RunBlockBench(int argc, char** argv);    // block plane: store/lookup/retrieve vs memcpy
int RunNvmeBench(int argc, char** argv);     // NVMe tier vs raw io_uring O_DIRECT
int RunKernelsBench(int argc, char** argv);  // quantization / selection kernels vs memcpy / D2D copy
int RunLowrankBench(int argc, char** argv);  // TALE reconstruction-free attention vs dense
int RunDecodeBench(int argc, char** argv);   // sequence plane decode step: full / offload / TailorKV
int RunRemoteBench(int argc, char** argv);   // remote tier vs redis-benchmark

}  // namespace kvt::bench
