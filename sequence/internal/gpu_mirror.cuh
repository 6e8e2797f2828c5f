// ApplyMirrorPlan — executes a MirrorPlan (mirror_plan.h) on a layer's device buffers: frees the
// buffers it releases (after waiting for `stream`), sizes each buffer (growth keeps the prefix and
// waits for `stream`, DeviceArray::Resize), then enqueues its host -> device copies on `stream`
// (from pageable memory: CUDA stages them before returning, so the cache may change afterwards).
// The caller orders `stream` after every kernel that may still read the buffers (gpu_context.cuh).
#pragma once

#include <cuda_runtime_api.h>

#include <array>
#include <cstdint>

#include "sequence/internal/gpu_buffers.cuh"
#include "sequence/internal/mirror_plan.h"

namespace kvt::sequence::internal {

template <size_t N>
Status ApplyMirrorPlan(const MirrorPlan& plan, std::array<DeviceArray<uint8_t>, N>& buffers,
                       cudaStream_t stream) {
  if (plan.sizes.size() != N || plan.release.size() != N)
    return Internal("mirror plan: buffer count");
  for (size_t b = 0; b < N; ++b) {
    if (plan.release[b] != 0) {
      KVT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
      buffers[b].Clear();
    }
    KVT_RETURN_IF_ERROR(buffers[b].Resize(plan.sizes[b], stream));
  }
  for (const MirrorCopy& c : plan.copies) {
    if (c.buffer < 0 || static_cast<size_t>(c.buffer) >= N ||
        c.offset + c.bytes > plan.sizes[c.buffer]) {
      return Internal("mirror plan: a copy outside its buffer");
    }
    KVT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(buffers[c.buffer].data() + c.offset, c.src, c.bytes,
                                             cudaMemcpyHostToDevice, stream));
  }
  return Status::Ok();
}

template <size_t N>
uint64_t MirrorBytes(const std::array<DeviceArray<uint8_t>, N>& buffers) {
  uint64_t b = 0;
  for (const auto& a : buffers) b += a.capacity_bytes();
  return b;
}

}  // namespace kvt::sequence::internal
