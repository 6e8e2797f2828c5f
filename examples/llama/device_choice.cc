#include "examples/llama/device_choice.h"

#include "examples/llama/cuda/cuda_backend.h"

namespace kvt::llama {

StatusOr<DeviceKind> ParseDeviceKind(std::string_view text) {
  if (text == "cpu") return DeviceKind::kCpu;
  if (text == "cuda") return DeviceKind::kCuda;
  if (text == "auto") return DeviceKind::kAuto;
  return InvalidArgument("device must be cpu, cuda or auto, not '" + std::string(text) + "'");
}

bool CudaRunsPolicy(std::string_view spec) {
  return spec == "exact" || spec == "full" || spec == "full:dtype=f32";
}

namespace {

// Why the CUDA forward cannot do this run; empty when it can (device presence aside).
std::string CudaObstacle(const DeviceRequest& r) {
  if (!CudaPathBuilt()) return "this engine was built without CUDA (KVT_ENABLE_CUDA=OFF)";
  for (const std::string& p : r.policies) {
    if (!CudaRunsPolicy(p)) {
      return "policy '" + p +
             "' runs on the cpu only (the cuda forward keeps the uncompressed "
             "float32 cache on the device: exact, full)";
    }
  }
  if (r.prefix_reuse) return "prefix reuse through kv-tierd (--kvtier) runs on the cpu only";
  if (CudaDeviceCount() == 0) return "no CUDA device";
  return "";
}

}  // namespace

StatusOr<DeviceChoice> ChooseDevice(const DeviceRequest& request, const ModelWeights& weights) {
  DeviceChoice choice;
  if (request.kind == DeviceKind::kCpu) {
    choice.description = "cpu";
    return choice;
  }
  const std::string obstacle = CudaObstacle(request);
  if (!obstacle.empty()) {
    if (request.kind == DeviceKind::kCuda) return Unsupported("--device cuda: " + obstacle);
    choice.description = "cpu (auto: " + obstacle + ")";
    return choice;
  }
  auto backend = MakeCudaBackend(weights);
  if (!backend.ok()) {
    if (request.kind == DeviceKind::kCuda) return backend.status().WithContext("--device cuda");
    choice.description =
        "cpu (auto: the cuda forward failed to start: " + backend.status().ToString() + ")";
    return choice;
  }
  choice.backend = std::move(backend).value();
  choice.description = choice.backend->name();
  return choice;
}

}  // namespace kvt::llama
