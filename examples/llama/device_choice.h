// Device choice for kvt-llama's `--device cpu|cuda|auto`: which forward a run uses, and why.
//
//  - cpu: the CPU engine (oneTBB), every KV method.
//  - cuda: the CUDA forward (cuda/cuda_backend.h). It keeps the uncompressed float32 K/V on the
//    device, so it runs the `exact` and `full` (float32) policies only; any other policy, prefix
//    reuse through kv-tierd, a build without CUDA or a machine without a device is UNSUPPORTED,
//    with the reason.
//  - auto: cuda when a device is present and the run is one cuda can do, else cpu (the reason
//    is in DeviceChoice::description).
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "common/status_or.h"
#include "examples/llama/device_backend.h"
#include "examples/llama/model_weights.h"

namespace kvt::llama {

enum class DeviceKind { kCpu, kCuda, kAuto };

// "cpu" | "cuda" | "auto"; anything else INVALID_ARGUMENT.
StatusOr<DeviceKind> ParseDeviceKind(std::string_view text);

// Whether the CUDA forward computes policy `spec` ("exact", "full", "full:dtype=f32").
bool CudaRunsPolicy(std::string_view spec);

struct DeviceRequest {
  DeviceKind kind = DeviceKind::kAuto;
  std::span<const std::string> policies;  // every policy the run will use
  bool prefix_reuse = false;              // the run reuses prompt K/V through kv-tierd
};

struct DeviceChoice {
  std::unique_ptr<DeviceBackend> backend;  // null: the CPU
  std::string description;                 // "cuda:0 (...)" or "cpu (reason)", for stderr
};

// Resolves a request; with a backend, the weights are already on the device.
StatusOr<DeviceChoice> ChooseDevice(const DeviceRequest& request, const ModelWeights& weights);

}  // namespace kvt::llama
