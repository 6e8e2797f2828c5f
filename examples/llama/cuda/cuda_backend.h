// The CUDA forward of kvt-llama: a DeviceBackend (device_backend.h) over CUDA device 0.
//
// Weights are uploaded once, in float32, when the backend is made. Every kernel is plain fp32
// (cuda/llama_kernels.cuh), so logits match the CPU forward's to summation order; the test
// (tests/gpu/llama_cuda_gpu_test.cc) holds them to a max abs difference of 1e-3.
// Built only with KVT_ENABLE_CUDA; without it MakeCudaBackend says so (UNSUPPORTED) and
// CudaDeviceCount() is 0. This header includes no CUDA header.
#pragma once

#include <memory>

#include "common/status_or.h"
#include "examples/llama/device_backend.h"
#include "examples/llama/model_weights.h"

namespace kvt::llama {

// Usable CUDA devices: 0 without a CUDA build, a driver or a device (never an error).
int CudaDeviceCount();

// Whether this engine was built with the CUDA path.
bool CudaPathBuilt();

// Uploads `weights` to device 0. `weights` may be released afterwards (the backend keeps no host
// pointer). UNSUPPORTED without a CUDA build or a device; RESOURCE_EXHAUSTED when memory runs out.
StatusOr<std::unique_ptr<DeviceBackend>> MakeCudaBackend(const ModelWeights& weights);

}  // namespace kvt::llama
