#include "sequence/internal/gpu_layer.cuh"

#include "gpu/kernels/convert.cuh"

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
  KVT_RETURN_IF_ERROR(gpu_->CheckDevicePointer(query, "query"));
  KVT_RETURN_IF_ERROR(gpu_->CheckDevicePointer(out, "out"));
  // The sequence's stream first waits for the caller's earlier work (its reads of a previous
  // SelectOnDevice's buffers, which growth below may free), then the caller waits for it.
  KVT_RETURN_IF_ERROR(gpu_->Rejoin(stream));
  KVT_RETURN_IF_ERROR(gpu_->Join(stream));
  const Status s = AttendOn(query, out, stream);
  // Rejoin even after a failure: whatever was enqueued must finish before the buffers change.
  const Status r = gpu_->Rejoin(stream);
  KVT_RETURN_IF_ERROR(s);
  return r;
}

Status GpuLayer::AppendOnDevice(const float* keys, const float* values, int64_t tokens, CUstream_st* stream) {
  KVT_RETURN_IF_ERROR(gpu_->CheckDevicePointer(keys, "keys"));
  KVT_RETURN_IF_ERROR(gpu_->CheckDevicePointer(values, "values"));
  KVT_RETURN_IF_ERROR(gpu_->Rejoin(stream));  // the rows are the caller's earlier work
  const Status s = AppendFromDevice(keys, values, tokens);
  // Join even after a failure: the caller must not rewrite the rows under a queued read.
  const Status j = gpu_->Join(stream);
  KVT_RETURN_IF_ERROR(s);
  return j;
}

Status GpuLayer::SelectOnDevice(const float* query, CUstream_st* stream, DeviceSelectedKv* out) {
  KVT_RETURN_IF_ERROR(gpu_->CheckDevicePointer(query, "query"));
  // After the caller's earlier work: the query, and its reads of the previous selection's buffers.
  KVT_RETURN_IF_ERROR(gpu_->Rejoin(stream));
  const Status s = SelectDevice(query, out);
  const Status j = gpu_->Join(stream);
  KVT_RETURN_IF_ERROR(s);
  return j;
}

Status GpuLayer::StageFromDevice(const float* k, const float* v, int64_t tokens) {
  const size_t n = static_cast<size_t>(tokens * kv_row());
  GpuContext& g = *gpu_;
  KVT_RETURN_IF_ERROR(g.stage_k.Resize(n, g.stream));
  KVT_RETURN_IF_ERROR(g.stage_v.Resize(n, g.stream));
  KVT_RETURN_IF_ERROR(gpu::ConvertToHalfCuda(k, g.stage_k.data(), static_cast<int64_t>(n), g.stream));
  return gpu::ConvertToHalfCuda(v, g.stage_v.data(), static_cast<int64_t>(n), g.stream);
}

Status GpuLayer::AppendThroughHost(const float* k, const float* v, int64_t tokens) {
  const size_t n = static_cast<size_t>(tokens * kv_row());
  host_k_.resize(n);
  host_v_.resize(n);
  KVT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(host_k_.data(), k, n * sizeof(float), cudaMemcpyDeviceToHost, gpu_->stream));
  KVT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(host_v_.data(), v, n * sizeof(float), cudaMemcpyDeviceToHost, gpu_->stream));
  KVT_RETURN_IF_ERROR(gpu_->Synchronize());
  return Append(host_k_.data(), host_v_.data(), tokens);
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
