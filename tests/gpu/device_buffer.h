// DeviceBuffer<T> — test helper: a cudaMalloc'd array filled from / copied back to a std::vector.
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <vector>

#include "gpu/kernels/cuda_status.h"

namespace kvt::gpu::testing {

template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t n) : n_(n == 0 ? 1 : n) {
    void* p = nullptr;
    EXPECT_EQ(cudaMalloc(&p, n_ * sizeof(T)), cudaSuccess);
    p_ = static_cast<T*>(p);
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) {
    if (!host.empty()) {
      EXPECT_EQ(cudaMemcpy(p_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
    }
  }
  ~DeviceBuffer() { cudaFree(p_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() const { return p_; }
  size_t bytes() const { return n_ * sizeof(T); }
  std::vector<T> Download(size_t n) const {
    std::vector<T> out(n);
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    if (n) {
      EXPECT_EQ(cudaMemcpy(out.data(), p_, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    }
    return out;
  }

 private:
  size_t n_;
  T* p_ = nullptr;
};

// Skips the test (visibly) on a machine without a CUDA device.
#define KVT_REQUIRE_GPU()                                                   \
  do {                                                                      \
    if (::kvt::gpu::DeviceCount() == 0) GTEST_SKIP() << "no CUDA device";   \
  } while (0)

}  // namespace kvt::gpu::testing
