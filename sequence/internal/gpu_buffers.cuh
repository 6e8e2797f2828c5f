// DeviceArray<T> — the growable device-memory buffers (cudaMalloc) of the sequence's GPU layers.
// Their host tier (pinned host memory mapped into the device's address space, read zero-copy over
// PCIe) is a HostTierArray (host_tier_array.h) whose growth waits for the sequence's stream.
//
// Growing reallocates: it first waits for `stream`, the one stream of the owning sequence on
// which every use of the buffer is ordered (a caller's stream is joined to it after each use,
// gpu_context.cuh), so no kernel still reads (or writes: appends from device memory) the old
// allocation when it is copied and freed. Elements past
// size() are unspecified. Not thread-safe; errors are Status (RESOURCE_EXHAUSTED when out of
// memory), never an abort.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "gpu/kernels/cuda_status.h"

namespace kvt::sequence::internal {

template <typename T>
class DeviceArray {
 public:
  DeviceArray() = default;
  ~DeviceArray() { Clear(); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  T* data() const { return p_; }
  size_t size() const { return size_; }
  uint64_t capacity_bytes() const { return capacity_ * sizeof(T); }

  // Capacity for at least `n` elements (doubling), keeping the first size() elements.
  Status Reserve(size_t n, cudaStream_t stream) {
    if (n <= capacity_) return Status::Ok();
    const size_t cap = std::max(n, 2 * capacity_);
    T* q = nullptr;
    KVT_RETURN_IF_ERROR(gpu::CudaStatus(cudaMalloc(reinterpret_cast<void**>(&q), cap * sizeof(T)), "cudaMalloc"));
    if (size_ > 0) {
      if (Status s = gpu::CudaStatus(cudaMemcpyAsync(q, p_, size_ * sizeof(T), cudaMemcpyDeviceToDevice, stream),
                                     "cudaMemcpyAsync");
          !s.ok()) {
        cudaFree(q);
        return s;
      }
    }
    if (Status s = gpu::CudaStatus(cudaStreamSynchronize(stream), "cudaStreamSynchronize"); !s.ok()) {
      cudaFree(q);
      return s;
    }
    if (p_ != nullptr) cudaFree(p_);
    p_ = q;
    capacity_ = cap;
    return Status::Ok();
  }
  Status Resize(size_t n, cudaStream_t stream) {
    KVT_RETURN_IF_ERROR(Reserve(n, stream));
    size_ = n;
    return Status::Ok();
  }
  // Appends `n` elements from host memory (pageable is fine: the call returns once they are staged).
  Status AppendFromHost(const T* host, size_t n, cudaStream_t stream) {
    KVT_RETURN_IF_ERROR(Reserve(size_ + n, stream));
    if (n > 0) {
      KVT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(p_ + size_, host, n * sizeof(T), cudaMemcpyHostToDevice, stream));
    }
    size_ += n;
    return Status::Ok();
  }
  // Grows by `n` elements and points *tail at them; their contents are unspecified until the
  // caller writes them (on `stream`, or a stream ordered after it).
  Status Grow(size_t n, cudaStream_t stream, T** tail) {
    KVT_RETURN_IF_ERROR(Reserve(size_ + n, stream));
    *tail = p_ + size_;
    size_ += n;
    return Status::Ok();
  }
  // The first size() elements, after waiting for `stream`.
  Status CopyToHost(std::vector<T>* out, cudaStream_t stream) const {
    out->resize(size_);
    if (size_ > 0) {
      KVT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(out->data(), p_, size_ * sizeof(T), cudaMemcpyDeviceToHost, stream));
    }
    return gpu::CudaStatus(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  }
  // Frees the memory; the caller has waited for every use of it.
  void Clear() {
    if (p_ != nullptr) cudaFree(p_);
    p_ = nullptr;
    size_ = capacity_ = 0;
  }

 private:
  T* p_ = nullptr;
  size_t size_ = 0, capacity_ = 0;
};

}  // namespace kvt::sequence::internal
