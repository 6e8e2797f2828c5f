// CUDA errors as kvt::Status for the lowrank kernels. Private to gpu/kernels/lowrank.
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "common/status.h"

namespace kvt::gpu::lowrank::internal {

inline Status CudaCheck(cudaError_t err, const char* call) {
  if (err == cudaSuccess) return Status::Ok();
  const StatusCode code = err == cudaErrorMemoryAllocation ? StatusCode::kResourceExhausted
                          : err == cudaErrorNoDevice      ? StatusCode::kUnsupported
                                                          : StatusCode::kInternal;
  return Status(code, std::string(call) + ": " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
}

}  // namespace kvt::gpu::lowrank::internal

#define KVT_LOWRANK_CUDA_RETURN_IF_ERROR(call) \
  KVT_RETURN_IF_ERROR(::kvt::gpu::lowrank::internal::CudaCheck((call), #call))
