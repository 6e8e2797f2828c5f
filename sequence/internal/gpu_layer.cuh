// GpuLayer — what the GPU layer states share: Attend from host pointers (the query staged into the
// context's device buffer, the output copied back, the stream waited), AttendOnDevice on a
// caller's stream (joined to the sequence's stream before and after), AppendOnDevice and
// SelectOnDevice on the sequence's stream between the caller's earlier and later work (device
// pointers checked first), Quiesce = wait for the sequence's stream. A subclass implements
// AttendOn (device pointers, enqueue only), Select (host pointers, as the CPU layers' Select),
// AppendFromDevice and SelectDevice (device pointers, enqueued on the sequence's stream), and must
// call Quiesce() in its destructor before its buffers go.
#pragma once

#include <cuda_runtime_api.h>

#include <vector>

#include "host/kernels/convert.h"
#include "sequence/internal/gpu_context.cuh"
#include "sequence/internal/layer_state.h"

namespace kvt::sequence::internal {

class GpuLayer : public LayerState {
 public:
  GpuLayer(const kernels::AttentionShape& shape, GpuContext* gpu) : LayerState(shape), gpu_(gpu) {}

  Status Attend(const float* query, float* out) final;
  Status AttendOnDevice(const float* query, float* out, CUstream_st* stream) final;
  Status AppendOnDevice(const float* keys, const float* values, int64_t tokens, CUstream_st* stream) final;
  Status SelectOnDevice(const float* query, CUstream_st* stream, DeviceSelectedKv* out) final;
  Status Quiesce() override { return gpu_->Synchronize(); }

 protected:
  // Copies a host query into the context's device query buffer (on the sequence's stream).
  Status StageQuery(const float* query);
  // query [q_heads][head_dim], out [q_heads][head_dim]: device memory; enqueue on `stream`.
  virtual Status AttendOn(const float* query, float* out, cudaStream_t stream) = 0;
  // keys, values [tokens][kv_heads][head_dim] float32 in device memory: enqueue the append on
  // gpu_->stream (ordered after the caller's work that wrote them).
  virtual Status AppendFromDevice(const float* keys, const float* values, int64_t tokens) = 0;
  // query [q_heads][head_dim] in device memory: enqueue the selection on gpu_->stream and set *out.
  virtual Status SelectDevice(const float* query, DeviceSelectedKv* out) = 0;
  // Converts `tokens` rows of device K and V to fp16 into the context's stage_k / stage_v (on the
  // sequence's stream).
  Status StageFromDevice(const float* k, const float* v, int64_t tokens);
  // AppendFromDevice for layers whose state a CPU cache owns (tale, kvcompose): copies `tokens`
  // rows of device K and V (float32) to the host, waits for them (not enqueue-only, unlike the
  // other kinds), then Append.
  Status AppendThroughHost(const float* k, const float* v, int64_t tokens);
  int64_t q_row() const { return static_cast<int64_t>(shape_.q_heads) * shape_.head_dim; }
  int64_t kv_row() const { return static_cast<int64_t>(shape_.kv_heads) * shape_.head_dim; }
  // Converts `tokens` appended rows of K and V to fp16 into hk_ / hv_ (host scratch).
  void ConvertAppended(const float* k, const float* v, int64_t tokens) {
    const int64_t n = tokens * kv_row();
    hk_.resize(static_cast<size_t>(n));
    hv_.resize(hk_.size());
    kernels::ConvertToHalf(k, hk_.data(), n);
    kernels::ConvertToHalf(v, hv_.data(), n);
  }

  GpuContext* gpu_;
  std::vector<kernels::Half> hk_, hv_;  // conversion scratch of Append
  std::vector<float> host_k_, host_v_;  // AppendThroughHost's rows
};

// Per-kind factories (one file each).
StatusOr<std::unique_ptr<LayerState>> NewGpuFullLayer(const kernels::AttentionShape& shape, bool offload,
                                                      GpuContext* gpu, LayerContext* context);
StatusOr<std::unique_ptr<LayerState>> NewGpuKiviLayer(const LayerPlan& plan, const kernels::AttentionShape& shape,
                                                      GpuContext* gpu);
StatusOr<std::unique_ptr<LayerState>> NewGpuSparseLayer(const LayerPlan& plan, const kernels::AttentionShape& shape,
                                                        GpuContext* gpu, LayerContext* context);
// tale / kvcompose: the CPU cache (method_cache.h) owns the state, the device mirrors what
// attention reads.
StatusOr<std::unique_ptr<LayerState>> NewGpuTaleLayer(const LayerPlan& plan, const kernels::AttentionShape& shape,
                                                      int layer, GpuContext* gpu, const LayerContext* context);
StatusOr<std::unique_ptr<LayerState>> NewGpuKvComposeLayer(const LayerPlan& plan, const kernels::AttentionShape& shape,
                                                           int layer, GpuContext* gpu, const LayerContext* context);

}  // namespace kvt::sequence::internal
