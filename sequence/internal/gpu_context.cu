#include "sequence/internal/gpu_context.cuh"

#include <memory>
#include <string>
#include <utility>

namespace kvt::sequence::internal {

void GpuContextDeleter::operator()(GpuContext* g) const {
  if (g == nullptr) return;
  if (g->stream != nullptr) {
    (void)cudaSetDevice(g->device);
    (void)cudaStreamSynchronize(g->stream);
  }
  ReleaseGpuScratch(*g);
  if (g->joined != nullptr) cudaEventDestroy(g->joined);
  if (g->rejoined != nullptr) cudaEventDestroy(g->rejoined);
  if (g->stream != nullptr) cudaStreamDestroy(g->stream);
  delete g;
}

StatusOr<GpuContextPtr> OpenGpuContext(int device) {
  const int devices = gpu::DeviceCount();
  if (devices == 0) {
    return Unsupported("sequence on cuda device " + std::to_string(device) +
                       ": no CUDA device is visible (no GPU, no driver, or CUDA_VISIBLE_DEVICES hides it)");
  }
  if (device < 0 || device >= devices) {
    return InvalidArgument("sequence: cuda device " + std::to_string(device) + " outside [0, " +
                           std::to_string(devices) + ")");
  }
  GpuContextPtr g(new GpuContext);
  g->device = device;
  KVT_CUDA_RETURN_IF_ERROR(cudaSetDevice(device));
  KVT_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&g->stream, cudaStreamNonBlocking));
  KVT_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&g->joined, cudaEventDisableTiming));
  KVT_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&g->rejoined, cudaEventDisableTiming));
  return StatusOr<GpuContextPtr>(std::move(g));  // spelled out: nvcc does not move into StatusOr implicitly
}

Status GpuContext::Join(cudaStream_t caller) {
  if (caller == stream) return Status::Ok();
  KVT_CUDA_RETURN_IF_ERROR(cudaEventRecord(joined, stream));
  return gpu::CudaStatus(cudaStreamWaitEvent(caller, joined, 0), "cudaStreamWaitEvent");
}

Status GpuContext::Rejoin(cudaStream_t caller) {
  if (caller == stream) return Status::Ok();
  KVT_CUDA_RETURN_IF_ERROR(cudaEventRecord(rejoined, caller));
  return gpu::CudaStatus(cudaStreamWaitEvent(stream, rejoined, 0), "cudaStreamWaitEvent");
}

Status GpuContext::CheckDevicePointer(const void* p, const char* what) const {
  const std::string name(what);
  if (p == nullptr) return InvalidArgument(name + ": null");
  cudaPointerAttributes a{};
  if (const cudaError_t e = cudaPointerGetAttributes(&a, p); e != cudaSuccess) {
    (void)cudaGetLastError();  // not sticky; clear it so later launches do not report it
    return InvalidArgument(name + ": cudaPointerGetAttributes: " + cudaGetErrorString(e));
  }
  switch (a.type) {
    case cudaMemoryTypeDevice:
      if (a.device == device) return Status::Ok();
      return InvalidArgument(name + " is memory of cuda device " + std::to_string(a.device) +
                             "; this sequence is on device " + std::to_string(device));
    case cudaMemoryTypeManaged: return Status::Ok();
    case cudaMemoryTypeHost:
      if (a.devicePointer == p) return Status::Ok();  // pinned, mapped at the same address
      return InvalidArgument(name + " is pinned host memory not mapped at the same device address");
    default:
      return InvalidArgument(name + " is not device memory (a host pointer? the host-pointer calls take those)");
  }
}

namespace {

// cudaHostAlloc(mapped | portable): what the GPU layers' host tier always was.
class PinnedHostTierMemory final : public HostTierMemory {
 public:
  StatusOr<HostTierRegion> Allocate(uint64_t bytes, uint64_t alignment) override {
    KVT_RETURN_IF_ERROR(CheckHostTierRequest(bytes, alignment));  // cudaHostAlloc aligns to pages
    void* p = nullptr;
    cudaError_t e = cudaHostAlloc(&p, static_cast<size_t>(bytes), cudaHostAllocMapped | cudaHostAllocPortable);
    if (e == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      return ResourceExhausted("sequence host tier: cudaHostAlloc of " + std::to_string(bytes) +
                               " bytes of pinned memory failed (out of memory)");
    }
    KVT_RETURN_IF_ERROR(gpu::CudaStatus(e, "cudaHostAlloc"));
    void* d = nullptr;
    if (Status s = gpu::CudaStatus(cudaHostGetDevicePointer(&d, p, 0), "cudaHostGetDevicePointer"); !s.ok()) {
      cudaFreeHost(p);
      return s;
    }
    return HostTierRegion{p, d, bytes, 0};
  }
  void Free(const HostTierRegion& region) override {
    if (region.host != nullptr && cudaFreeHost(region.host) != cudaSuccess) (void)cudaGetLastError();
  }
  bool device_mapped() const override { return true; }
};

}  // namespace

std::unique_ptr<HostTierMemory> NewPinnedHostTierMemory(const GpuContext&) {
  return std::make_unique<PinnedHostTierMemory>();
}

Status ActivateGpu(const GpuContext& g) { return gpu::CudaStatus(cudaSetDevice(g.device), "cudaSetDevice"); }

void ReleaseGpuScratch(GpuContext& g) {
  if (g.stream != nullptr) (void)cudaStreamSynchronize(g.stream);
  g.query.Clear();
  g.out.Clear();
  g.workspace.Clear();
  g.stage_k.Clear();
  g.stage_v.Clear();
  g.qhat.Clear();
  g.scores.Clear();
  g.channels.Clear();
  g.indices.Clear();
  g.gather_k.Clear();
  g.gather_v.Clear();
  g.dequant.Clear();
}

uint64_t GpuScratchBytes(const GpuContext& g) {
  return g.query.capacity_bytes() + g.out.capacity_bytes() + g.workspace.capacity_bytes() +
         g.stage_k.capacity_bytes() + g.stage_v.capacity_bytes() + g.qhat.capacity_bytes() +
         g.scores.capacity_bytes() + g.channels.capacity_bytes() + g.indices.capacity_bytes() +
         g.gather_k.capacity_bytes() + g.gather_v.capacity_bytes() + g.dequant.capacity_bytes();
}

}  // namespace kvt::sequence::internal
