// MakeCudaBackend in a build without CUDA (KVT_ENABLE_CUDA=OFF): there is no device path.
#include "examples/llama/cuda/cuda_backend.h"

namespace kvt::llama {

int CudaDeviceCount() { return 0; }

bool CudaPathBuilt() { return false; }

StatusOr<std::unique_ptr<DeviceBackend>> MakeCudaBackend(const ModelWeights&) {
  return Unsupported("this engine was built without CUDA (KVT_ENABLE_CUDA=OFF)");
}

}  // namespace kvt::llama
