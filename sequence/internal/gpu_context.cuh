// GpuContext — one GPU sequence's device, stream and shared scratch (see gpu_layers.h).
//
// Ordering: every layer's own work (appends, uploads, host-pointer Attend) runs on `stream`.
// AttendOnDevice runs on the caller's stream between Rejoin(caller) + Join(caller), which make
// `stream` wait for the caller's earlier work and the caller's stream wait for everything queued on
// `stream`, and Rejoin(caller), which makes `stream` wait for the caller's attention; so the
// scratch buffers and layer buffers are never written while a kernel on either stream still reads
// them, and waiting for `stream` (Quiesce, growth) waits for the caller's attention too.
// AppendOnDevice and SelectOnDevice run the other way round, on `stream` between Rejoin(caller)
// (the sequence reads what the caller's earlier work wrote, and no longer needs what it read) and
// Join(caller) (the caller's later work sees the result).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "host/kernels/half.h"
#include "sequence/internal/gpu_buffers.cuh"
#include "sequence/internal/gpu_layers.h"

namespace kvt::sequence::internal {

struct GpuContext {
  int device = -1;
  cudaStream_t stream = nullptr;
  cudaEvent_t joined = nullptr, rejoined = nullptr;
  // Shared scratch, sized on use (one attention at a time per sequence).
  DeviceArray<float> query, out;                // host-pointer Attend: [q_heads][head_dim]
  DeviceArray<uint8_t> workspace;               // decode / KIVI attention workspace
  DeviceArray<kernels::Half> stage_k, stage_v;  // appended rows on their way into a layer
  DeviceArray<float> qhat, scores;              // sparse: [kv_heads][head_dim], [kv_heads][candidates]
  DeviceArray<int32_t> channels, indices;       // sparse: [kv_heads][channels], [kv_heads][k]
  DeviceArray<kernels::Half> gather_k, gather_v;  // sparse: [kv_heads][k][head_dim]; kivi SelectOnDevice:
                                                  // the dequantized K/V [tokens][kv_heads][head_dim]
  DeviceArray<float> dequant;                     // kivi SelectOnDevice: dequantized rows in fp32

  Status Join(cudaStream_t caller);
  Status Rejoin(cudaStream_t caller);
  // OK when `p` is device-accessible memory of this device (device, managed, or mapped pinned
  // host memory); INVALID_ARGUMENT naming `what` otherwise (a plain host pointer, another device).
  Status CheckDevicePointer(const void* p, const char* what) const;
  Status Synchronize() { return gpu::CudaStatus(cudaStreamSynchronize(stream), "cudaStreamSynchronize"); }
};

}  // namespace kvt::sequence::internal
