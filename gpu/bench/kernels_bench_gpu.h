// GPU half of `kvt-bench kernels`: times the issue-4 CUDA kernels at Llama-3.1-8B shapes next to
// the device-to-device copy bandwidth measured in the same run. Plain C++ interface (no CUDA
// types), so tools/kvt_bench stays free of CUDA headers. UNSUPPORTED without a device.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace kvt::gpu {

struct GpuRecord {
  std::string name, device;  // device: "gpu:<cudaDeviceProp::name>"
  int64_t context = 0;
  int bits = 0;
  double bytes = 0, ms = 0, copy_gbps = 0;
  // A device-to-device copy moving the record's own bytes (half read, half written), timed the
  // same way: the physical limit at this size, where launch latency and L2 residency weigh in.
  double same_bytes_copy_gbps = 0;
};

Status RunKernelsBenchGpu(const std::vector<int64_t>& contexts, std::vector<GpuRecord>* out);

}  // namespace kvt::gpu
