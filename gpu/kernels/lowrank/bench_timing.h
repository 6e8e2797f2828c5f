// TimeTaleVsDenseCuda — kvt-bench's GPU measurement of TALE attention against the dense fp16
// baseline, behind a CUDA-free header so tools/ can call it without including CUDA.
//
// Uploads the host-memory inputs (TALE args with host pointers, fp16 K/V [kv][tokens][d]) to the
// first device, runs each kernel `warmup` times, then times `iters` runs with CUDA events and
// reports the median per call. UNSUPPORTED without a device. Blocking; allocates device memory
// for the copies and frees it before returning.
#pragma once

#include <cstdint>
#include <string>

#include "common/status_or.h"
#include "host/kernels/lowrank/dense_attention.h"
#include "host/kernels/lowrank/tale_attention.h"

namespace kvt::gpu::lowrank {

struct GpuTiming {
  std::string device;
  double dense_ms = 0.0;
  double lowrank_ms = 0.0;
};

// True when a CUDA device is usable (never an error).
bool HaveCudaDevice();

StatusOr<GpuTiming> TimeTaleVsDenseCuda(const kernels::lowrank::TaleAttentionArgs& tale_host,
                                        const kernels::lowrank::DenseAttentionShape& dense_shape,
                                        const uint16_t* dense_keys, const uint16_t* dense_values,
                                        int64_t tokens, int warmup, int iters);

}  // namespace kvt::gpu::lowrank
