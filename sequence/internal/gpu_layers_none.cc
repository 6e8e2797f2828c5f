// The GPU backend in a build without CUDA: every sequence stays on the CPU.
#include "sequence/internal/gpu_layers.h"

namespace kvt::sequence::internal {

struct GpuContext {};

void GpuContextDeleter::operator()(GpuContext* context) const { delete context; }

StatusOr<GpuContextPtr> OpenGpuContext(int device) {
  return Unsupported("sequence on cuda device " + std::to_string(device) +
                     ": this build has no CUDA (configure with nvcc and KVT_ENABLE_CUDA=ON)");
}

Status ActivateGpu(const GpuContext&) { return Unsupported("this build has no CUDA"); }
std::unique_ptr<HostTierMemory> NewPinnedHostTierMemory(const GpuContext&) { return nullptr; }
void ReleaseGpuScratch(GpuContext&) {}
uint64_t GpuScratchBytes(const GpuContext&) { return 0; }

StatusOr<std::unique_ptr<LayerState>> NewGpuLayer(const LayerPlan&, const kernels::AttentionShape&, int, GpuContext*,
                                                  LayerContext*) {
  return Unsupported("this build has no CUDA");
}

}  // namespace kvt::sequence::internal
