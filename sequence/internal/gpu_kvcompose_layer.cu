// "kvcompose" on a GPU sequence: the CPU KvComposeCache (method_cache.h) stays the owner of the
// state — appends, Observe's scoring and selection (the per-layer budget, or the sequence's
// cross-layer planner with global=1), Save/Load are its own code, so the suspend image is the CPU
// layer's — and the device holds a mirror of the kept tokens, fp16 K/V [kv_heads][capacity]
// [head_dim] in the cache's own layout: appended tokens are copied per head (only the new slots);
// growth, the plan being applied, and Load (KvComposeCache::layout_version) copy every head's kept
// tokens again (KvComposeMirror's plan, mirror_plan.h, tested on the CPU against the cache).
//
// Attention is the product's fp16 decode kernel (DecodeAttentionCuda: fp32 softmax over fp16 K/V,
// as the cache's DenseAttentionF16): while every KV head keeps the same count (before the plan,
// and always with structured=1, composite tokens) one launch over all heads reads the head-major
// mirror as one segment (token stride head_dim, head stride capacity * head_dim); with per-head
// counts (structured=0) one launch per KV head with that head's query group over its own count,
// and a head that keeps nothing outputs zeros (as the CPU kernel does).
#include <algorithm>
#include <array>
#include <vector>

#include "gpu/kernels/decode_attention.cuh"
#include "policies/lowrank/kvcompose_cache.h"
#include "sequence/internal/gpu_layer.cuh"
#include "sequence/internal/gpu_mirror.cuh"
#include "sequence/internal/method_cache.h"

namespace kvt::sequence::internal {
namespace {

using kernels::Half;

class GpuKvComposeLayer final : public GpuLayer {
 public:
  GpuKvComposeLayer(const kernels::AttentionShape& shape, GpuContext* gpu,
                    std::unique_ptr<policies::LayerCache> cache,
                    policies::lowrank::KvComposeCache* kvc)
      : GpuLayer(shape, gpu), cache_(std::move(cache)), kvc_(kvc) {}
  ~GpuKvComposeLayer() override { (void)Quiesce(); }

  Status Append(const float* keys, const float* values, int64_t tokens) override {
    KVT_RETURN_IF_ERROR(AppendAtNextPositions(*cache_, keys, values, tokens, &positions_));
    return Mirror(gpu_->stream);
  }

  Status Observe(const float* queries, int window) override {
    KVT_RETURN_IF_ERROR(cache_->Compress(policies::Observation{queries, window}));
    return Mirror(gpu_->stream);
  }

  Status Settle() override {
    KVT_RETURN_IF_ERROR(kvc_->ApplyPendingPlan());
    return Mirror(gpu_->stream);
  }

  Status Select(const float*, SelectedKv*) override {
    return Unsupported(
        "select: a kvcompose layer keeps a different token set per KV head, which "
        "SelectedKv cannot describe; use Attend");
  }

  Status Save(ByteWriter& w) const override {
    if (kvc_->plan_pending()) return KvComposePendingError();
    return kvc_->Save(w);
  }

  Status Load(ByteReader& r) override {
    KVT_RETURN_IF_ERROR(Quiesce());
    KVT_RETURN_IF_ERROR(kvc_->Load(r));
    tracker_.Reset();
    return Mirror(gpu_->stream);
  }

  int64_t tokens() const override { return cache_->tokens(); }
  int64_t kept_tokens() const override { return cache_->kept_tokens(); }
  uint64_t device_bytes() const override { return MirrorBytes(buffers_); }

 protected:
  // The CPU cache owns the state.
  Status AppendFromDevice(const float* keys, const float* values, int64_t tokens) override {
    return AppendThroughHost(keys, values, tokens);
  }
  Status SelectDevice(const float*, DeviceSelectedKv*) override {
    return Unsupported(
        "select: a kvcompose layer keeps a different token set per KV head, which "
        "DeviceSelectedKv cannot describe; use AttendOnDevice");
  }
  Status AttendOn(const float* query, float* out, cudaStream_t stream) override {
    // As KvComposeCache::Attend: a shared plan decided meanwhile applies first.
    KVT_RETURN_IF_ERROR(kvc_->ApplyPendingPlan());
    KVT_RETURN_IF_ERROR(Mirror(stream));
    const std::vector<int64_t>& counts = kvc_->head_token_counts();
    const int64_t cap = kvc_->capacity();
    const int d = shape_.head_dim, group = shape_.group();
    const auto [lo, hi] = std::minmax_element(counts.begin(), counts.end());
    if (*lo == *hi && *lo > 0) {  // one count for every head: one launch over the head-major mirror
      const kernels::KvSegment<Half> seg{keys(), values(), *lo, d, cap * d};
      const size_t ws = gpu::DecodeAttentionWorkspaceBytesCuda(shape_, *lo);
      KVT_RETURN_IF_ERROR(gpu_->workspace.Resize(ws, gpu_->stream));
      return gpu::DecodeAttentionCuda(shape_, std::span(&seg, 1), query, out,
                                      gpu_->workspace.data(), ws, stream);
    }
    // Per-head counts: each KV head with its query group (launches in order on `stream`, so they
    // share the workspace).
    const kernels::AttentionShape head{group, 1, d};
    size_t ws = 0;  // the largest any head needs (not monotone in the token count: the split count)
    for (int64_t n : counts)
      ws = std::max(ws, gpu::DecodeAttentionWorkspaceBytesCuda(head, std::max<int64_t>(n, 1)));
    KVT_RETURN_IF_ERROR(gpu_->workspace.Resize(ws, gpu_->stream));
    for (int h = 0; h < shape_.kv_heads; ++h) {
      const size_t q_off = static_cast<size_t>(h) * group * d;
      if (counts[h] == 0) {
        KVT_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(
            out + q_off, 0, static_cast<size_t>(group) * d * sizeof(float), stream));
        continue;
      }
      const size_t kv_off = static_cast<size_t>(h) * cap * d;
      const kernels::KvSegment<Half> seg{keys() + kv_off, values() + kv_off, counts[h], d, d};
      KVT_RETURN_IF_ERROR(gpu::DecodeAttentionCuda(head, std::span(&seg, 1), query + q_off,
                                                   out + q_off, gpu_->workspace.data(), ws,
                                                   stream));
    }
    return Status::Ok();
  }

 private:
  // Brings the device mirror up to the cache's kept tokens (mirror_plan.h); copies enqueued on `s`.
  Status Mirror(cudaStream_t s) {
    tracker_.Plan(*kvc_, shape_.kv_heads, shape_.head_dim, &plan_);
    return ApplyMirrorPlan(plan_, buffers_, s);
  }
  const Half* keys() const {
    return reinterpret_cast<const Half*>(buffers_[KvComposeMirror::kKeys].data());
  }
  const Half* values() const {
    return reinterpret_cast<const Half*>(buffers_[KvComposeMirror::kValues].data());
  }

  std::unique_ptr<policies::LayerCache> cache_;
  policies::lowrank::KvComposeCache* kvc_;  // cache_ as what it is
  std::vector<int32_t> positions_;
  KvComposeMirror tracker_;
  MirrorPlan plan_;
  std::array<DeviceArray<uint8_t>, KvComposeMirror::kBuffers> buffers_;  // fp16 [kv][capacity][d]
};

}  // namespace

StatusOr<std::unique_ptr<LayerState>> NewGpuKvComposeLayer(const LayerPlan& plan,
                                                           const kernels::AttentionShape& shape,
                                                           int layer, GpuContext* gpu,
                                                           const LayerContext* context) {
  KVT_ASSIGN_OR_RETURN(auto cache, MakeMethodCache(plan, shape, layer, *context));
  auto* kvc = dynamic_cast<policies::lowrank::KvComposeCache*>(cache.get());
  if (kvc == nullptr)
    return Internal("kvcompose layer: the registry built '" + cache->name() + "'");
  return std::unique_ptr<LayerState>(new GpuKvComposeLayer(shape, gpu, std::move(cache), kvc));
}

}  // namespace kvt::sequence::internal
