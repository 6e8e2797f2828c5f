// "tale" on a GPU sequence: the CPU TaleCache (method_cache.h) stays the owner of the state —
// appends, calibration, Observe's importance and compression, Save/Load are its own code, so the
// suspend image is the CPU layer's — and the device holds a mirror of what TALE's attention reads:
//   bases          [kv_heads][head_dim][head_dim] fp32 x 2      uploaded at calibration (or Load)
//   level records  [kv_heads][capacity_L][record_bytes] x 4 x 2  new records per (level, head)
//                                                               only; all of a level when the
//                                                               cache grew that level
//   level counts   [4][kv_heads] int32                          when any changed
//   exact window   [window_tokens][kv_heads][head_dim] fp32 x 2  appended rows only; whole when
//                                                               the window's front was compressed
// What to copy is TaleMirror's plan (mirror_plan.h, tested on the CPU against the cache). Attend
// runs TaleAttentionCuda on the device. Attention also feeds TALE's importance (each
// window token's softmax weight, accumulated into the cache while the token is recent): the
// kernel's window weights are copied back into pinned memory behind the attention and added to
// the cache (TaleCache::AddWindowAttention) at the layer's next call, after waiting for that
// copy — the state the CPU path reaches, except that the weights are the GPU's (float rounding,
// atomic accumulation order), which can move a token across a rank-level quantile boundary when
// it leaves the window. Appends and Observe run the cache's CPU code (Observe's scoring and the
// bases' eigen-solve are once per prompt); the mirror's copies are enqueued on the sequence's
// stream (on the caller's stream inside AttendOnDevice) and read pageable memory, which CUDA
// stages before returning.
#include <array>
#include <numeric>
#include <vector>

#include "gpu/kernels/lowrank/tale_attention.cuh"
#include "policies/lowrank/tale_cache.h"
#include "sequence/internal/gpu_layer.cuh"
#include "sequence/internal/gpu_mirror.cuh"
#include "sequence/internal/host_tier_array.h"
#include "sequence/internal/method_cache.h"

namespace kvt::sequence::internal {
namespace {

namespace klr = kernels::lowrank;

class GpuTaleLayer final : public GpuLayer {
 public:
  GpuTaleLayer(const kernels::AttentionShape& shape, GpuContext* gpu,
               std::unique_ptr<policies::LayerCache> cache, policies::lowrank::TaleCache* tale)
      : GpuLayer(shape, gpu), cache_(std::move(cache)), tale_(tale), pinned_(NewPinnedHostTierMemory(*gpu)),
        host_window_attention_(pinned_.get()) {}
  ~GpuTaleLayer() override {
    (void)Quiesce();
    if (caught_ != nullptr) cudaEventDestroy(caught_);
  }

  Status Init() {
    KVT_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&caught_, cudaEventDisableTiming));
    return Mirror(gpu_->stream);
  }

  Status Append(const float* keys, const float* values, int64_t tokens) override {
    KVT_RETURN_IF_ERROR(Catch());
    KVT_RETURN_IF_ERROR(AppendAtNextPositions(*cache_, keys, values, tokens, &positions_));
    return Mirror(gpu_->stream);
  }

  Status Observe(const float* queries, int window) override {
    KVT_RETURN_IF_ERROR(Catch());
    KVT_RETURN_IF_ERROR(cache_->Compress(policies::Observation{queries, window}));
    return Mirror(gpu_->stream);
  }

  Status Select(const float*, SelectedKv*) override {
    return Unsupported(
        "select: a tale layer attends over low-rank coefficients without rebuilding "
        "K/V (reconstruction-free); use Attend");
  }

  // Waits for the stream, then folds the last attention's window weights into the cache.
  Status Quiesce() override {
    KVT_RETURN_IF_ERROR(gpu_->Synchronize());
    return Catch();
  }

  Status Save(ByteWriter& w) const override {
    if (pending_)
      return Internal("tale layer: Save before Quiesce (window attention not folded in)");
    tale_->Save(w);
    return Status::Ok();
  }

  Status Load(ByteReader& r) override {
    KVT_RETURN_IF_ERROR(Quiesce());
    KVT_RETURN_IF_ERROR(tale_->Load(r));
    tracker_.Reset();
    return Mirror(gpu_->stream);
  }

  int64_t tokens() const override { return cache_->tokens(); }
  int64_t kept_tokens() const override { return cache_->kept_tokens(); }
  uint64_t device_bytes() const override {
    return MirrorBytes(buffers_) + window_attention_.capacity_bytes();
  }

 protected:
  // The CPU cache owns the state.
  Status AppendFromDevice(const float* keys, const float* values, int64_t tokens) override {
    return AppendThroughHost(keys, values, tokens);
  }
  Status SelectDevice(const float*, DeviceSelectedKv*) override {
    return Unsupported(
        "select: a tale layer attends over low-rank coefficients without rebuilding K/V "
        "(reconstruction-free); use AttendOnDevice");
  }
  Status AttendOn(const float* query, float* out, cudaStream_t stream) override {
    // The previous attention's importance first, then what TaleCache::Attend does before attending.
    KVT_RETURN_IF_ERROR(Catch());
    KVT_RETURN_IF_ERROR(tale_->PrepareAttend());
    KVT_RETURN_IF_ERROR(Mirror(stream));
    klr::TaleAttentionArgs a = tale_->AttentionView();  // host pointers: replaced by the mirror's
    const int kv = shape_.kv_heads;
    a.key_basis = Buffer<const float>(TaleMirror::kKeyBasis);
    a.value_basis = Buffer<const float>(TaleMirror::kValueBasis);
    for (int l = 0; l < klr::kTaleLevels; ++l) {
      a.levels[l].key_records = Buffer<const uint8_t>(TaleMirror::kLevelKeys + 2 * l);
      a.levels[l].value_records = Buffer<const uint8_t>(TaleMirror::kLevelValues + 2 * l);
      a.levels[l].tokens = Buffer<const int32_t>(TaleMirror::kCounts) + static_cast<size_t>(l) * kv;
      a.levels[l].capacity = tracker_.capacity(l);
    }
    const int64_t n = a.window_tokens;
    a.window_keys = Buffer<const float>(TaleMirror::kWindowKeys);
    a.window_values = Buffer<const float>(TaleMirror::kWindowValues);
    a.query = query;
    a.out = out;
    KVT_RETURN_IF_ERROR(window_attention_.Resize(static_cast<size_t>(kv * n), stream));
    a.window_attention = n > 0 ? window_attention_.data() : nullptr;
    const size_t ws = gpu::lowrank::TaleAttentionWorkspaceBytesCuda(a);
    KVT_RETURN_IF_ERROR(gpu_->workspace.Resize(ws, gpu_->stream));
    KVT_RETURN_IF_ERROR(gpu::lowrank::TaleAttentionCuda(a, gpu_->workspace.data(), ws, stream));
    if (n == 0) return Status::Ok();
    // The window weights come back behind the attention; Catch adds them to the cache.
    KVT_RETURN_IF_ERROR(host_window_attention_.Reserve(static_cast<size_t>(kv * n), [stream] {
      return gpu::CudaStatus(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
    }));
    host_window_attention_.set_size(static_cast<size_t>(kv * n));
    KVT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(
        host_window_attention_.data(), window_attention_.data(),
        static_cast<size_t>(kv * n) * sizeof(float), cudaMemcpyDeviceToHost, stream));
    KVT_CUDA_RETURN_IF_ERROR(cudaEventRecord(caught_, stream));
    pending_ = true;
    pending_window_ = n;
    return Status::Ok();
  }

 private:
  // Folds a finished attention's window weights into the cache (waits for their copy).
  Status Catch() {
    if (!pending_) return Status::Ok();
    KVT_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(caught_));
    pending_ = false;
    if (tale_->window_tokens() != pending_window_) {
      return Internal("tale layer: the window changed between an attention and its importance");
    }
    tale_->AddWindowAttention(host_window_attention_.data());
    return Status::Ok();
  }

  // Brings the device mirror up to the cache's state (mirror_plan.h); copies enqueued on `s`.
  Status Mirror(cudaStream_t s) {
    tracker_.Plan(*tale_, &plan_);
    return ApplyMirrorPlan(plan_, buffers_, s);
  }

  template <typename T>
  T* Buffer(int b) const {
    return reinterpret_cast<T*>(buffers_[static_cast<size_t>(b)].data());
  }

  std::unique_ptr<policies::LayerCache> cache_;
  policies::lowrank::TaleCache* tale_;  // cache_ as what it is
  std::vector<int32_t> positions_;
  // The mirror (TaleMirror's buffers) and what it reflects.
  TaleMirror tracker_;
  MirrorPlan plan_;
  std::array<DeviceArray<uint8_t>, TaleMirror::kBuffers> buffers_;
  // The attention's window weights [kv][rows], on the device and on their way back.
  DeviceArray<float> window_attention_;
  std::unique_ptr<HostTierMemory> pinned_;  // page-locked, so the copy back is a DMA
  HostTierArray<float> host_window_attention_;
  cudaEvent_t caught_ = nullptr;  // recorded after their copy
  bool pending_ = false;
  int64_t pending_window_ = 0;
};

}  // namespace

StatusOr<std::unique_ptr<LayerState>> NewGpuTaleLayer(const LayerPlan& plan,
                                                      const kernels::AttentionShape& shape,
                                                      int layer, GpuContext* gpu,
                                                      const LayerContext* context) {
  if (shape.group() > 8) {  // TaleAttentionCuda's limit (the CPU path takes up to 64)
    return Unsupported("tale on a GPU sequence: q_heads / kv_heads above 8 (open it on the CPU)");
  }
  KVT_ASSIGN_OR_RETURN(auto cache, MakeMethodCache(plan, shape, layer, *context));
  auto* tale = dynamic_cast<policies::lowrank::TaleCache*>(cache.get());
  if (tale == nullptr) return Internal("tale layer: the registry built '" + cache->name() + "'");
  std::unique_ptr<GpuTaleLayer> l(new GpuTaleLayer(shape, gpu, std::move(cache), tale));
  KVT_RETURN_IF_ERROR(l->Init());
  return std::unique_ptr<LayerState>(std::move(l));
}

}  // namespace kvt::sequence::internal
