// CUDA errors as kvt::Status, where they happen, with the call in the message. gpu/ only.
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "common/status.h"

namespace kvt::gpu {

inline Status CudaStatus(cudaError_t err, const char* call) {
  if (err == cudaSuccess) return Status::Ok();
  const StatusCode code = err == cudaErrorMemoryAllocation ? StatusCode::kResourceExhausted
                          : err == cudaErrorNoDevice      ? StatusCode::kUnsupported
                                                          : StatusCode::kInternal;
  return Status(code, std::string(call) + ": " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
}

// After a launch: configuration errors surface here (execution errors at the next sync).
inline Status LaunchStatus(const char* kernel) { return CudaStatus(cudaGetLastError(), kernel); }

// Number of usable CUDA devices (0 without a driver or device; never an error).
inline int DeviceCount() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

}  // namespace kvt::gpu

#define KVT_CUDA_RETURN_IF_ERROR(call) KVT_RETURN_IF_ERROR(::kvt::gpu::CudaStatus((call), #call))
