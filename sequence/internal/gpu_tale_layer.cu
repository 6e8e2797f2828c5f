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
// Attend runs TaleAttentionCuda on the device. Attention also feeds TALE's importance (each
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
#include "sequence/internal/method_cache.h"

namespace kvt::sequence::internal {
namespace {

namespace klr = kernels::lowrank;

class GpuTaleLayer final : public GpuLayer {
 public:
  GpuTaleLayer(const kernels::AttentionShape& shape, GpuContext* gpu, std::unique_ptr<policies::LayerCache> cache,
               policies::lowrank::TaleCache* tale)
      : GpuLayer(shape, gpu), cache_(std::move(cache)), tale_(tale) {}
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
    if (cache_->tokens() + tokens > INT32_MAX) return InvalidArgument("append: positions past int32");
    positions_.resize(static_cast<size_t>(tokens));
    std::iota(positions_.begin(), positions_.end(), static_cast<int32_t>(cache_->tokens()));
    policies::AppendBatch b;
    b.keys = keys;
    b.values = values;
    b.positions = positions_.data();
    b.tokens = static_cast<int>(tokens);
    KVT_RETURN_IF_ERROR(cache_->Append(b));
    return Mirror(gpu_->stream);
  }

  Status Observe(const float* queries, int window) override {
    KVT_RETURN_IF_ERROR(Catch());
    KVT_RETURN_IF_ERROR(cache_->Compress(policies::Observation{queries, window}));
    return Mirror(gpu_->stream);
  }

  Status Select(const float*, SelectedKv*) override {
    return Unsupported("select: a tale layer attends over low-rank coefficients without rebuilding "
                       "K/V (reconstruction-free); use Attend");
  }

  // Waits for the stream, then folds the last attention's window weights into the cache.
  Status Quiesce() override {
    KVT_RETURN_IF_ERROR(gpu_->Synchronize());
    return Catch();
  }

  Status Save(ByteWriter& w) const override {
    if (pending_) return Internal("tale layer: Save before Quiesce (window attention not folded in)");
    tale_->Save(w);
    return Status::Ok();
  }

  Status Load(ByteReader& r) override {
    KVT_RETURN_IF_ERROR(Quiesce());
    KVT_RETURN_IF_ERROR(tale_->Load(r));
    mirrored_ = false;
    return Mirror(gpu_->stream);
  }

  int64_t tokens() const override { return cache_->tokens(); }
  int64_t kept_tokens() const override { return cache_->kept_tokens(); }
  uint64_t device_bytes() const override {
    uint64_t b = key_basis_.capacity_bytes() + value_basis_.capacity_bytes() + counts_.capacity_bytes() +
                 window_k_.capacity_bytes() + window_v_.capacity_bytes() + window_attention_.capacity_bytes();
    for (int l = 0; l < klr::kTaleLevels; ++l) b += keys_[l].capacity_bytes() + values_[l].capacity_bytes();
    return b;
  }

 protected:
  Status AttendOn(const float* query, float* out, cudaStream_t stream) override {
    // The previous attention's importance first, then what TaleCache::Attend does before attending.
    KVT_RETURN_IF_ERROR(Catch());
    KVT_RETURN_IF_ERROR(tale_->PrepareAttend());
    KVT_RETURN_IF_ERROR(Mirror(stream));
    klr::TaleAttentionArgs a = tale_->AttentionView();  // host pointers: replaced by the mirror's
    const int kv = shape_.kv_heads;
    a.key_basis = key_basis_.data();
    a.value_basis = value_basis_.data();
    for (int l = 0; l < klr::kTaleLevels; ++l) {
      a.levels[l].key_records = keys_[l].data();
      a.levels[l].value_records = values_[l].data();
      a.levels[l].tokens = counts_.data() + static_cast<size_t>(l) * kv;
      a.levels[l].capacity = capacity_[l];
    }
    const int64_t n = a.window_tokens;
    a.window_keys = window_k_.data();
    a.window_values = window_v_.data();
    a.query = query;
    a.out = out;
    KVT_RETURN_IF_ERROR(window_attention_.Resize(static_cast<size_t>(kv * n), stream));
    a.window_attention = n > 0 ? window_attention_.data() : nullptr;
    const size_t ws = gpu::lowrank::TaleAttentionWorkspaceBytesCuda(a);
    KVT_RETURN_IF_ERROR(gpu_->workspace.Resize(ws, gpu_->stream));
    KVT_RETURN_IF_ERROR(gpu::lowrank::TaleAttentionCuda(a, gpu_->workspace.data(), ws, stream));
    if (n == 0) return Status::Ok();
    // The window weights come back behind the attention; Catch adds them to the cache.
    KVT_RETURN_IF_ERROR(host_window_attention_.Reserve(static_cast<size_t>(kv * n), stream));
    KVT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(host_window_attention_.data(), window_attention_.data(),
                                             static_cast<size_t>(kv * n) * sizeof(float), cudaMemcpyDeviceToHost,
                                             stream));
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

  // Brings the device mirror up to the cache's state; copies enqueued on `s`.
  Status Mirror(cudaStream_t s) {
    const klr::TaleAttentionArgs a = tale_->AttentionView();
    const int kv = shape_.kv_heads, d = shape_.head_dim;
    bool counts_changed = !mirrored_;
    if (!mirrored_) {  // after Load (or at start): everything again
      calibrated_ = !tale_->calibrated();  // forces the bases
      capacity_.fill(-1);                  // forces every level
      window_first_ = -1;                  // forces the window
      mirrored_ = true;
    }
    if (calibrated_ != tale_->calibrated()) {
      const size_t n = static_cast<size_t>(kv) * d * d;
      KVT_RETURN_IF_ERROR(key_basis_.Resize(n, s));
      KVT_RETURN_IF_ERROR(value_basis_.Resize(n, s));
      KVT_RETURN_IF_ERROR(Upload(key_basis_.data(), a.key_basis, n * sizeof(float), s));
      KVT_RETURN_IF_ERROR(Upload(value_basis_.data(), a.value_basis, n * sizeof(float), s));
      calibrated_ = tale_->calibrated();
    }
    for (int l = 0; l < klr::kTaleLevels; ++l) {
      const klr::TaleLevelBuffers& lv = a.levels[l];
      const size_t kb = a.key_layout.levels[l].record_bytes, vb = a.value_layout.levels[l].record_bytes;
      auto& mirrored = records_[l];
      if (lv.capacity != capacity_[l]) {  // the cache grew this level: its layout moved
        const size_t slots = static_cast<size_t>(kv) * lv.capacity;
        KVT_RETURN_IF_ERROR(keys_[l].Resize(slots * kb, s));
        KVT_RETURN_IF_ERROR(values_[l].Resize(slots * vb, s));
        capacity_[l] = lv.capacity;
        mirrored.assign(static_cast<size_t>(kv), 0);
      }
      for (int h = 0; h < kv; ++h) {
        const int32_t have = mirrored[h], want = lv.tokens[h];
        if (want == have) continue;
        const size_t from = static_cast<size_t>(h) * lv.capacity + have, n = static_cast<size_t>(want - have);
        KVT_RETURN_IF_ERROR(Upload(keys_[l].data() + from * kb, lv.key_records + from * kb, n * kb, s));
        KVT_RETURN_IF_ERROR(Upload(values_[l].data() + from * vb, lv.value_records + from * vb, n * vb, s));
        mirrored[h] = want;
        counts_changed = true;
      }
    }
    if (counts_changed) {
      host_counts_.clear();
      for (int l = 0; l < klr::kTaleLevels; ++l) host_counts_.insert(host_counts_.end(), records_[l].begin(), records_[l].end());
      KVT_RETURN_IF_ERROR(counts_.Resize(host_counts_.size(), s));
      KVT_RETURN_IF_ERROR(Upload(counts_.data(), host_counts_.data(), host_counts_.size() * sizeof(int32_t), s));
    }
    // The exact window: rows are token compressed_tokens() + i; appends add rows at the end, and
    // compression drops rows from the front (then the whole window moves).
    const int64_t first = tale_->compressed_tokens(), rows = a.window_tokens;
    const size_t row = static_cast<size_t>(kv_row());
    int64_t from = window_rows_;
    if (first != window_first_ || rows < window_rows_) {
      from = 0;
      // Give back a prompt-sized window once calibration has cut it to a few windows' worth.
      if (window_k_.capacity_bytes() > 4 * static_cast<uint64_t>(rows + 1) * row * sizeof(float) &&
          window_k_.capacity_bytes() > (64u << 10)) {
        KVT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(s));
        window_k_.Clear();
        window_v_.Clear();
      }
    }
    if (rows > from || from == 0) {
      KVT_RETURN_IF_ERROR(window_k_.Resize(static_cast<size_t>(rows) * row, s));
      KVT_RETURN_IF_ERROR(window_v_.Resize(static_cast<size_t>(rows) * row, s));
      const size_t n = static_cast<size_t>(rows - from) * row;
      KVT_RETURN_IF_ERROR(Upload(window_k_.data() + from * row, a.window_keys + from * row, n * sizeof(float), s));
      KVT_RETURN_IF_ERROR(Upload(window_v_.data() + from * row, a.window_values + from * row, n * sizeof(float), s));
    }
    window_first_ = first;
    window_rows_ = rows;
    return Status::Ok();
  }

  static Status Upload(void* dst, const void* src, size_t bytes, cudaStream_t s) {
    if (bytes == 0) return Status::Ok();
    return gpu::CudaStatus(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s), "cudaMemcpyAsync");
  }

  std::unique_ptr<policies::LayerCache> cache_;
  policies::lowrank::TaleCache* tale_;  // cache_ as what it is
  std::vector<int32_t> positions_;
  // The mirror, and how much of the cache it reflects.
  bool mirrored_ = false, calibrated_ = false;
  DeviceArray<float> key_basis_, value_basis_;
  std::array<DeviceArray<uint8_t>, klr::kTaleLevels> keys_, values_;  // [kv][capacity_[l]][record bytes]
  std::array<int64_t, klr::kTaleLevels> capacity_{};
  std::array<std::vector<int32_t>, klr::kTaleLevels> records_;  // [l][kv] records mirrored
  DeviceArray<int32_t> counts_;                                 // [l][kv]
  std::vector<int32_t> host_counts_;
  DeviceArray<float> window_k_, window_v_;  // [rows][kv][d]
  int64_t window_first_ = -1, window_rows_ = 0;
  // The attention's window weights [kv][rows], on the device and on their way back.
  DeviceArray<float> window_attention_;
  PinnedArray<float> host_window_attention_;
  cudaEvent_t caught_ = nullptr;  // recorded after their copy
  bool pending_ = false;
  int64_t pending_window_ = 0;
};

}  // namespace

StatusOr<std::unique_ptr<LayerState>> NewGpuTaleLayer(const LayerPlan& plan, const kernels::AttentionShape& shape,
                                                      int layer, GpuContext* gpu, const LayerContext* context) {
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
