#include "sequence/internal/gpu_layer.cuh"

namespace kvt::sequence::internal {

Status GpuLayer::StageQuery(const float* query) {
  const size_t n = static_cast<size_t>(q_row());
  GpuContext& g = *gpu_;
  KVT_RETURN_IF_ERROR(g.query.Resize(n, g.stream));
  return gpu::CudaStatus(cudaMemcpyAsync(g.query.data(), query, n * sizeof(float), cudaMemcpyHostToDevice, g.stream),
                         "cudaMemcpyAsync");
}

Status GpuLayer::Attend(const float* query, float* out) {
  const size_t n = static_cast<size_t>(q_row());
  GpuContext& g = *gpu_;
  KVT_RETURN_IF_ERROR(StageQuery(query));
  KVT_RETURN_IF_ERROR(g.out.Resize(n, g.stream));
  KVT_RETURN_IF_ERROR(AttendOn(g.query.data(), g.out.data(), g.stream));
  KVT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(out, g.out.data(), n * sizeof(float), cudaMemcpyDeviceToHost, g.stream));
  return g.Synchronize();
}

Status GpuLayer::AttendOnDevice(const float* query, float* out, CUstream_st* stream) {
  KVT_RETURN_IF_ERROR(gpu_->Join(stream));
  const Status s = AttendOn(query, out, stream);
  // Rejoin even after a failure: whatever was enqueued must finish before the buffers change.
  const Status r = gpu_->Rejoin(stream);
  KVT_RETURN_IF_ERROR(s);
  return r;
}

StatusOr<std::unique_ptr<LayerState>> NewGpuLayer(const LayerPlan& plan, const kernels::AttentionShape& shape,
                                                  int layer, GpuContext* gpu, LayerContext* context) {
  switch (plan.kind) {
    case LayerKind::kFull: return NewGpuFullLayer(shape, false, gpu, context);
    case LayerKind::kOffload: return NewGpuFullLayer(shape, true, gpu, context);
    case LayerKind::kKivi: return NewGpuKiviLayer(plan, shape, gpu);
    case LayerKind::kSparse: return NewGpuSparseLayer(plan, shape, gpu, context);
    case LayerKind::kTale: return NewGpuTaleLayer(plan, shape, layer, gpu, context);
    case LayerKind::kKvCompose: return NewGpuKvComposeLayer(plan, shape, layer, gpu, context);
  }
  return InvalidArgument("unknown layer kind");
}

}  // namespace kvt::sequence::internal
