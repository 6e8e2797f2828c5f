// GPU half of `kvt-bench decode`: per-token decode time of attention + KV movement at
// Llama-3.1-8B shapes (32 layers, 32/8 heads, head_dim 128, fp16), weights excluded, random KV
// (timing does not depend on values): (a) full cache resident in HBM; (b) full offload, every
// layer copied from pinned host memory each step (double-buffered on a copy stream); (c) the
// TailorKV plan with the resident 2-bit key sketch: dense layers KIVI-2 in HBM, sparse layers score
// on the sketch, take the top-128 per KV head and gather them straight from pinned host memory
// (zero-copy reads over PCIe), attention over 8 sinks + 56 recent + 128 gathered. h2d_gbps is a
// pinned -> device cudaMemcpy measured in the same run. (d), given a plan: the same TailorKV step
// through the product's own path, a kvt::sequence::Sequence opened on the device (every layer:
// Append of the new token's K/V from host memory, AttendOnDevice), wall time per token with the
// stream drained. Plain C++ interface (no CUDA types). UNSUPPORTED without a device.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "sequence/sequence_plan.h"

namespace kvt::gpu {

struct GpuDecodeRecord {
  std::string device;  // "gpu:<cudaDeviceProp::name>"
  int64_t context = 0;
  double full_ms = 0, offload_ms = 0, tailorkv_ms = 0;
  uint64_t full_gpu_bytes = 0, tailorkv_gpu_bytes = 0;
  uint64_t pcie_bytes_per_step = 0;          // (c): gathered K/V
  uint64_t offload_pcie_bytes_per_step = 0;  // (b): the whole cache
  uint64_t channel_rows_bytes_per_step = 0;  // what the published channel-row prefetch would add
  double h2d_gbps = 0;
  // (d) the plan through kvt::sequence::Sequence on the device (0 when no plan was given).
  double sequence_ms = 0;
  uint64_t sequence_gpu_bytes = 0;          // the sequence's device bytes (KV + scratch)
  uint64_t sequence_pcie_bytes_per_step = 0;
};

// `sequence_plan` (may be null: no (d)) is a 32-layer plan at these shapes.
Status RunDecodeBenchGpu(const std::vector<int64_t>& contexts, int dense_layers, int steps,
                         const sequence::SequencePlan* sequence_plan, std::vector<GpuDecodeRecord>* out);

}  // namespace kvt::gpu
