// "sparse" on a GPU sequence: TailorKV's offloaded layers (Yao et al., "TailorKV", Sec. 4.2). With
// scorer=sketch it is the composition `kvt-bench decode --gpu-only` measures
// (gpu/bench/decode_bench_gpu.cu); with scorer=channels the published pipeline's scoring, the
// selected channel rows read zero-copy from a transposed key copy in pinned memory.
//
// Host tier: fp16 K and V [tokens][kv_heads][head_dim] in pinned, mapped host memory from the
// sequence's HostTierMemory (its own cudaHostAlloc, or the client's registered shared heap: the
// daemon's arena). Room for appended rows is reserved before anything changes (a full host tier
// fails the append with nothing lost); growth doubles and waits for the stream first. Resident in
// device memory: the first `sinks` tokens, the recent window (tokens [win_first_, tokens_), the
// last `recent` at least, 3 * recent rows of room), per-channel max |K| and the KIVI key sketch
// of every complete `sketch_group` of keys (quantized on the device from the mapped host rows).
// (scorer=channels: a channel-major key copy [kv_heads][head_dim][capacity] in pinned memory
// instead of the sketch.) Per step, on the device: TopChannels picks the query's critical
// channels, SketchScores scores the candidates between sinks and window on them (candidates past
// the last complete sketch group score +max: always kept, as on the CPU) — or ApproxScores on the
// channel rows (scorer=channels; the channels always come from the real query: HintNext is a
// no-op, as nothing needs prefetching when the kernel reads the rows over PCIe) — TopK picks k = budget - sinks - recent per KV head,
// GatherRows reads just those rows of K and V from pinned memory over PCIe, and DecodeAttention
// runs over sinks + gathered + recent. When the candidates fit in k, the step attends to the whole
// host tier (exact). The CPU twin is sparse_layer.cc with scorer=sketch: same selection rule.
//
// Appends write the host tier on the caller's thread (rows past any a queued gather reads) and
// update the resident state on the sequence's stream. AppendOnDevice converts the caller's device
// rows to fp16 on the device (the context's stage buffers), folds them into the channel maxima on
// the device (KeyChannelAbsMaxCuda; the host copy is refreshed when next needed), and writes the
// host tier from the device on the sequence's stream: K and V by cudaMemcpyAsync (device to
// pinned, DMA), the transposed keys (scorer=channels) by a kernel writing the mapped pinned copy;
// sinks and window are device-to-device copies. No host staging, no wait. SelectOnDevice runs the
// step's selection (as AttendOnDevice) and hands back its segments: resident sinks, the gathered
// rows in the context's gather buffers and the resident recent window (device memory), or the
// whole host tier through its device mapping when the budget covers every token (zero-copy).
// Suspend images are the CPU layer's (K, V, channel maxima); everything else is rebuilt from them
// on Load.
#include <algorithm>
#include <cfloat>
#include <cstring>
#include <vector>

#include "gpu/kernels/approx_scores.cuh"
#include "gpu/kernels/channel_select.cuh"
#include "gpu/kernels/cuda_status.h"
#include "gpu/kernels/decode_attention.cuh"
#include "gpu/kernels/gather_rows.cuh"
#include "gpu/kernels/kivi_quantize.cuh"
#include "gpu/kernels/sketch_scores.cuh"
#include "gpu/kernels/topk.cuh"
#include "host/kernels/channel_select.h"
#include "sequence/internal/channel_major_host_tier.h"
#include "sequence/internal/gpu_layer.cuh"
#include "sequence/internal/host_tier_array.h"

namespace kvt::sequence::internal {
namespace {

using kernels::Half;

// scores[row][from, n) = value for each of `rows` rows of stride n.
__global__ void FillScoreTails(float* scores, int64_t n, int64_t from, float value) {
  float* row = scores + static_cast<int64_t>(blockIdx.y) * n;
  for (int64_t i = from + blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    row[i] = value;
  }
}

// The channel-major copy of `tokens` key rows: cm[r * capacity + at + t] = rows[t * row + r], one
// thread per output element, consecutive threads on consecutive tokens of one channel (so writes
// to mapped pinned memory go out in runs).
__global__ void WriteChannelMajor(const Half* rows, int64_t tokens, int64_t row, Half* cm, int64_t capacity,
                                  int64_t at) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < tokens * row;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / tokens, t = i % tokens;
    cm[r * capacity + at + t] = rows[t * row + r];
  }
}

class GpuSparseLayer final : public GpuLayer {
 public:
  GpuSparseLayer(const LayerPlan& p, const kernels::AttentionShape& s, GpuContext* gpu, LayerContext* ctx)
      : GpuLayer(s, gpu), p_(p), ctx_(ctx), keys_(ctx->host_memory), values_(ctx->host_memory),
        key_cm_(kv_row(), ctx->host_memory), absmax_(static_cast<size_t>(kv_row()), 0.0f),
        sketch_{s, p.sketch_bits, p.sketch_group, s.head_dim} {}
  ~GpuSparseLayer() override { (void)Quiesce(); }

  Status Init() {
    cudaStream_t s = gpu_->stream;
    KVT_RETURN_IF_ERROR(sink_k_.Resize(static_cast<size_t>(p_.sinks * kv_row()), s));
    KVT_RETURN_IF_ERROR(sink_v_.Resize(sink_k_.size(), s));
    KVT_RETURN_IF_ERROR(win_k_.Resize(static_cast<size_t>(3 * p_.recent * kv_row()), s));
    KVT_RETURN_IF_ERROR(win_v_.Resize(win_k_.size(), s));
    return absmax_dev_.Resize(absmax_.size(), s);
  }

  Status Append(const float* k, const float* v, int64_t tokens) override {
    KVT_RETURN_IF_ERROR(ReserveHostTier(tokens_ + tokens));
    ConvertAppended(k, v, tokens);
    KVT_RETURN_IF_ERROR(RefreshHostAbsMax());
    KVT_RETURN_IF_ERROR(kernels::KeyChannelAbsMax(shape_, hk_.data(), tokens, kv_row(), absmax_.data()));
    KVT_RETURN_IF_ERROR(UploadAbsMax());
    return AppendHalf(hk_.data(), hv_.data(), tokens, /*from_device=*/false);
  }

  Status Save(ByteWriter& w) const override {
    KVT_RETURN_IF_ERROR(gpu_->Synchronize());
    w.PutVector(std::vector<Half>(keys_.data(), keys_.data() + keys_.size()));
    w.PutVector(std::vector<Half>(values_.data(), values_.data() + values_.size()));
    if (absmax_stale_) {  // device appends folded rows in on the device only
      std::vector<float> absmax;
      KVT_RETURN_IF_ERROR(absmax_dev_.CopyToHost(&absmax, gpu_->stream));
      w.PutVector(absmax);
    } else {
      w.PutVector(absmax_);
    }
    return Status::Ok();
  }

  Status Load(ByteReader& r) override {
    std::vector<Half> k, v;
    std::vector<float> absmax;
    KVT_RETURN_IF_ERROR(r.GetVector(&k));
    KVT_RETURN_IF_ERROR(r.GetVector(&v));
    KVT_RETURN_IF_ERROR(r.GetVector(&absmax));
    const size_t row = static_cast<size_t>(kv_row());
    if (k.size() != v.size() || k.size() % row != 0 || absmax.size() != row) {
      return Corruption("sparse layer image: bad sizes");
    }
    KVT_RETURN_IF_ERROR(gpu_->Synchronize());
    keys_.Clear();
    values_.Clear();
    key_cm_.Clear();
    sketch_codes_.Clear();
    sketch_scale_.Clear();
    sketch_zero_.Clear();
    sketch_groups_ = 0;
    tokens_ = win_count_ = win_first_ = 0;
    absmax_ = std::move(absmax);
    absmax_stale_ = false;
    KVT_RETURN_IF_ERROR(UploadAbsMax());
    KVT_RETURN_IF_ERROR(ReserveHostTier(static_cast<int64_t>(k.size() / row)));
    KVT_RETURN_IF_ERROR(AppendHalf(k.data(), v.data(), static_cast<int64_t>(k.size() / row), /*from_device=*/false));
    return gpu_->Synchronize();
  }

  int64_t tokens() const override { return tokens_; }
  int64_t kept_tokens() const override { return kept_ ? kept_ : tokens(); }
  // Resident, as the CPU layer counts it: sinks + recent windows, channel maxima, the sketch.
  uint64_t device_bytes() const override {
    const int64_t window = std::min<int64_t>(tokens_, p_.sinks + p_.recent);
    return static_cast<uint64_t>(window * kv_row() * 2) * sizeof(Half) + absmax_.size() * sizeof(float) +
           sketch_codes_.size() + (sketch_scale_.size() + sketch_zero_.size()) * sizeof(Half);
  }
  uint64_t host_bytes() const override {
    return (keys_.size() + values_.size()) * sizeof(Half) + (p_.scorer == Scorer::kChannels ? key_cm_.bytes() : 0);
  }

  // The same selection on the device; the segments handed back are host pointers: sinks and the
  // recent window straight from the pinned host tier (the same rows as their resident copies), the
  // gathered rows copied back.
  Status Select(const float* query, SelectedKv* out) override {
    KVT_RETURN_IF_ERROR(StageQuery(query));
    KVT_RETURN_IF_ERROR(SelectOn(gpu_->query.data(), gpu_->stream));
    const int d = shape_.head_dim;
    const int64_t row = kv_row(), t = tokens_;
    if (seg_count_ == 1) {  // exact: the whole host tier
      KVT_RETURN_IF_ERROR(gpu_->Synchronize());
      out->segments.assign(1, kernels::KvSegment<Half>{keys_.data(), values_.data(), t, row, d});
      out->tokens = t;
      return Status::Ok();
    }
    KVT_RETURN_IF_ERROR(gpu_->gather_k.CopyToHost(&sel_k_, gpu_->stream));
    KVT_RETURN_IF_ERROR(gpu_->gather_v.CopyToHost(&sel_v_, gpu_->stream));
    const int64_t k = p_.gathered(), r = p_.recent, recent_at = (t - r) * row;
    out->segments = {{keys_.data(), values_.data(), p_.sinks, row, d},
                     {sel_k_.data(), sel_v_.data(), k, d, k * d},
                     {keys_.data() + recent_at, values_.data() + recent_at, r, row, d}};
    out->tokens = kept_;
    return Status::Ok();
  }

 protected:
  Status AppendFromDevice(const float* k, const float* v, int64_t tokens) override {
    KVT_RETURN_IF_ERROR(ReserveHostTier(tokens_ + tokens));
    KVT_RETURN_IF_ERROR(StageFromDevice(k, v, tokens));
    KVT_RETURN_IF_ERROR(gpu::KeyChannelAbsMaxCuda(shape_, gpu_->stage_k.data(), tokens, kv_row(), absmax_dev_.data(),
                                                  gpu_->stream));
    absmax_stale_ = true;
    return AppendHalf(gpu_->stage_k.data(), gpu_->stage_v.data(), tokens, /*from_device=*/true);
  }

  Status SelectDevice(const float* q, DeviceSelectedKv* out) override {
    KVT_RETURN_IF_ERROR(SelectOn(q, gpu_->stream));
    out->segments.assign(segs_, segs_ + seg_count_);
    // One segment: the whole host tier, mapped; three: sinks, gathered rows, window, all resident.
    out->memory.assign(static_cast<size_t>(seg_count_), seg_count_ == 1 ? KvMemory::kMappedHost : KvMemory::kDevice);
    out->tokens = kept_;
    return Status::Ok();
  }

  Status AttendOn(const float* q, float* out, cudaStream_t stream) override {
    KVT_RETURN_IF_ERROR(SelectOn(q, stream));
    return Attention(std::span<const kernels::KvSegment<Half>>(segs_, static_cast<size_t>(seg_count_)), kept_, q, out,
                     stream);
  }

 private:
  // Enqueues the step's selection for device query `q` on `stream` and sets segs_ (device
  // pointers, attention order), seg_count_ and kept_ (their tokens).
  Status SelectOn(const float* q, cudaStream_t stream) {
    const int d = shape_.head_dim, kvh = shape_.kv_heads;
    const int64_t row = kv_row(), t = tokens_, n = Candidates();
    GpuContext& g = *gpu_;
    if (n <= p_.gathered()) {  // the budget covers every token: the whole host tier, exact
      segs_[0] = {keys_.device_data(), values_.device_data(), t, row, d};
      seg_count_ = 1;
      const uint64_t all = static_cast<uint64_t>(std::max<int64_t>(n, 0)) * row * 2 * sizeof(Half);
      ctx_->pcie_bytes += all;
      ctx_->attention_fetch_bytes += all;
      kept_ = t;
      return Status::Ok();
    }
    const int64_t begin = p_.sinks, k = p_.gathered();
    KVT_RETURN_IF_ERROR(g.qhat.Resize(static_cast<size_t>(row), g.stream));
    KVT_RETURN_IF_ERROR(g.channels.Resize(static_cast<size_t>(kvh) * p_.channels, g.stream));
    KVT_RETURN_IF_ERROR(g.scores.Resize(static_cast<size_t>(kvh * n), g.stream));
    KVT_RETURN_IF_ERROR(g.indices.Resize(static_cast<size_t>(kvh * k), g.stream));
    KVT_RETURN_IF_ERROR(g.gather_k.Resize(static_cast<size_t>(kvh * k * d), g.stream));
    KVT_RETURN_IF_ERROR(g.gather_v.Resize(g.gather_k.size(), g.stream));
    KVT_RETURN_IF_ERROR(gpu::TopChannelsCuda(shape_, q, absmax_dev_.data(), p_.channels, g.qhat.data(),
                                             g.channels.data(), stream));
    const int64_t scored =
        p_.scorer == Scorer::kChannels ? n : std::clamp<int64_t>(sketch_groups_ * sketch_.key_group - begin, 0, n);
    if (p_.scorer == Scorer::kChannels) {
      // Channel rows of the candidates, [kv_heads][head_dim][capacity] from token `begin` on.
      const int64_t cap = key_cm_.capacity();
      const kernels::StridedKeys rows{key_cm_.device_data() + begin, n, 1, d * cap, cap};
      KVT_RETURN_IF_ERROR(gpu::ApproxScoresCuda(kvh, d, g.qhat.data(), g.channels.data(), p_.channels, rows,
                                                g.scores.data(), n, stream));
      ctx_->pcie_bytes += static_cast<uint64_t>(kvh) * p_.channels * n * sizeof(Half);
      ++ctx_->demand_fetches;
    } else if (scored > 0) {
      KVT_RETURN_IF_ERROR(gpu::SketchScoresCuda(sketch_, sketch_codes_.data(), sketch_scale_.data(),
                                                sketch_zero_.data(), sketch_groups_, g.qhat.data(), g.channels.data(),
                                                p_.channels, begin, scored, g.scores.data(), n, stream));
    }
    if (scored < n) {
      const dim3 grid(static_cast<unsigned>(std::min<int64_t>((n - scored + 255) / 256, 64)),
                      static_cast<unsigned>(kvh));
      FillScoreTails<<<grid, 256, 0, stream>>>(g.scores.data(), n, scored, FLT_MAX);
      KVT_RETURN_IF_ERROR(gpu::LaunchStatus("FillScoreTails"));
    }
    KVT_RETURN_IF_ERROR(gpu::TopKCuda(g.scores.data(), kvh, n, n, k, g.indices.data(), stream));
    // Indices are relative to the first candidate; the rows come over PCIe straight from pinned memory.
    KVT_RETURN_IF_ERROR(gpu::GatherRowsCuda(keys_.device_data() + begin * row, n, row, kvh, d, g.indices.data(), k,
                                            g.gather_k.data(), stream));
    KVT_RETURN_IF_ERROR(gpu::GatherRowsCuda(values_.device_data() + begin * row, n, row, kvh, d, g.indices.data(), k,
                                            g.gather_v.data(), stream));
    const uint64_t bytes = 2 * g.gather_k.size() * sizeof(Half);
    ctx_->pcie_bytes += bytes;
    ctx_->attention_fetch_bytes += bytes;
    const int64_t recent_at = (t - p_.recent - win_first_) * row;
    segs_[0] = {sink_k_.data(), sink_v_.data(), begin, row, d};
    segs_[1] = {g.gather_k.data(), g.gather_v.data(), k, d, k * d};
    segs_[2] = {win_k_.data() + recent_at, win_v_.data() + recent_at, p_.recent, row, d};
    seg_count_ = 3;
    kept_ = begin + k + p_.recent;
    return Status::Ok();
  }

  int64_t Candidates() const { return tokens_ - p_.sinks - p_.recent; }

  Status Attention(std::span<const kernels::KvSegment<Half>> segs, int64_t total, const float* q, float* out,
                   cudaStream_t stream) {
    const size_t ws = gpu::DecodeAttentionWorkspaceBytesCuda(shape_, total);
    KVT_RETURN_IF_ERROR(gpu_->workspace.Resize(ws, gpu_->stream));
    return gpu::DecodeAttentionCuda(shape_, segs, q, out, gpu_->workspace.data(), ws, stream);
  }

  // After device appends the device maxima are ahead of absmax_: bring it up to date (waits).
  Status RefreshHostAbsMax() {
    if (!absmax_stale_) return Status::Ok();
    KVT_RETURN_IF_ERROR(absmax_dev_.CopyToHost(&absmax_, gpu_->stream));
    absmax_stale_ = false;
    return Status::Ok();
  }

  Status UploadAbsMax() {
    return gpu::CudaStatus(cudaMemcpyAsync(absmax_dev_.data(), absmax_.data(), absmax_.size() * sizeof(float),
                                           cudaMemcpyHostToDevice, gpu_->stream),
                           "cudaMemcpyAsync");
  }

  // `count` rows into a resident buffer, from host memory or (from_device_) device memory.
  Status Upload(DeviceArray<Half>& dst, int64_t at_row, const Half* rows, int64_t count) {
    if (count <= 0) return Status::Ok();
    return gpu::CudaStatus(cudaMemcpyAsync(dst.data() + at_row * kv_row(), rows,
                                           static_cast<size_t>(count * kv_row()) * sizeof(Half),
                                           from_device_ ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice,
                                           gpu_->stream),
                           "cudaMemcpyAsync");
  }

  // Room for `tokens` tokens in the host tier (K, V; scorer=channels: the transposed keys), tokens_
  // of them kept. Growth waits for the stream, so no queued kernel reads a range once it is freed.
  Status ReserveHostTier(int64_t tokens) {
    const size_t need = static_cast<size_t>(tokens * kv_row());
    auto wait_stream = [this] { return gpu_->Synchronize(); };
    KVT_RETURN_IF_ERROR(keys_.Reserve(need, wait_stream));
    KVT_RETURN_IF_ERROR(values_.Reserve(need, wait_stream));
    if (p_.scorer != Scorer::kChannels) return Status::Ok();
    return key_cm_.Reserve(tokens, tokens_, wait_stream);
  }

  // Host-tier rows, resident sinks and window, sketch; tokens_ is the count before these rows.
  // After ReserveHostTier(tokens_ + tokens). k, v [tokens][kv_heads][head_dim] fp16: host memory,
  // or device memory when `from_device` (then copied device -> pinned by DMA on the stream).
  Status AppendHalf(const Half* k, const Half* v, int64_t tokens, bool from_device) {
    cudaStream_t s = gpu_->stream;
    const int64_t row = kv_row();
    from_device_ = from_device;
    const size_t n = static_cast<size_t>(tokens * row);
    // The new rows lie past every row a queued kernel reads.
    if (from_device) {
      const size_t first = keys_.ExtendReserved(n);
      values_.ExtendReserved(n);
      KVT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(keys_.data() + first, k, n * sizeof(Half), cudaMemcpyDeviceToHost, s));
      KVT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(values_.data() + first, v, n * sizeof(Half), cudaMemcpyDeviceToHost, s));
    } else {
      keys_.AppendReserved(k, n);
      values_.AppendReserved(v, n);
    }
    // Sinks and the recent window (the CPU layer's KeepResident, in device memory).
    const int64_t to_sinks = std::clamp<int64_t>(p_.sinks - tokens_, 0, tokens);
    KVT_RETURN_IF_ERROR(Upload(sink_k_, tokens_, k, to_sinks));
    KVT_RETURN_IF_ERROR(Upload(sink_v_, tokens_, v, to_sinks));
    const int64_t r = p_.recent;
    if (tokens >= r) {
      KVT_RETURN_IF_ERROR(Upload(win_k_, 0, k + (tokens - r) * row, r));
      KVT_RETURN_IF_ERROR(Upload(win_v_, 0, v + (tokens - r) * row, r));
      win_count_ = r;
      win_first_ = tokens_ + tokens - r;
    } else {
      KVT_RETURN_IF_ERROR(Upload(win_k_, win_count_, k, tokens));
      KVT_RETURN_IF_ERROR(Upload(win_v_, win_count_, v, tokens));
      win_count_ += tokens;
      if (win_count_ > 2 * r) {  // keep the last r at the front (drop > r: the ranges do not overlap)
        const int64_t drop = win_count_ - r;
        for (auto* w : {&win_k_, &win_v_}) {
          KVT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(w->data(), w->data() + drop * row,
                                                   static_cast<size_t>(r * row) * sizeof(Half),
                                                   cudaMemcpyDeviceToDevice, s));
        }
        win_count_ = r;
        win_first_ += drop;
      }
    }
    if (p_.scorer == Scorer::kChannels) {
      if (from_device_) {
        KVT_RETURN_IF_ERROR(WriteChannelMajorFromDevice(k, tokens));
      } else {
        key_cm_.Write(k, tokens_, tokens);
      }
    }
    tokens_ += tokens;
    // Every newly complete group of keys joins the sketch, quantized from the mapped host rows.
    const int64_t add = p_.scorer == Scorer::kSketch ? tokens_ / sketch_.key_group - sketch_groups_ : 0;
    if (add > 0) {
      const int64_t kvh = shape_.kv_heads;
      const size_t code_off = sketch_codes_.size(), param_off = sketch_scale_.size();
      KVT_RETURN_IF_ERROR(sketch_codes_.Resize(code_off + add * kvh * sketch_.KeyGroupCodeBytes(), s));
      KVT_RETURN_IF_ERROR(sketch_scale_.Resize(param_off + add * kvh * sketch_.KeyGroupParams(), s));
      KVT_RETURN_IF_ERROR(sketch_zero_.Resize(sketch_scale_.size(), s));
      KVT_RETURN_IF_ERROR(gpu::KiviQuantizeKeysCuda(sketch_, keys_.device_data() + sketch_groups_ * sketch_.key_group * row,
                                                    row, add, sketch_codes_.data() + code_off,
                                                    sketch_scale_.data() + param_off, sketch_zero_.data() + param_off,
                                                    s));
      sketch_groups_ += add;
    }
    return Status::Ok();
  }

  // scorer=channels, rows k [tokens][row] from device memory (tokens_ is the count before them,
  // capacity reserved): a kernel writes them into the transposed copy through its device mapping.
  Status WriteChannelMajorFromDevice(const Half* k, int64_t tokens) {
    const int64_t row = kv_row();
    const int64_t blocks = std::min<int64_t>((tokens * row + 255) / 256, 1024);
    WriteChannelMajor<<<static_cast<unsigned>(blocks), 256, 0, gpu_->stream>>>(
        k, tokens, row, key_cm_.mutable_device_data(), key_cm_.capacity(), tokens_);
    return gpu::LaunchStatus("WriteChannelMajor");
  }

  LayerPlan p_;
  LayerContext* ctx_;
  HostTierArray<Half> keys_, values_;  // host tier, [tokens][kv_heads][head_dim]
  ChannelMajorHostTier key_cm_;        // scorer=channels: host tier, [kv_heads][head_dim][capacity]
  std::vector<float> absmax_;           // [kv_heads][head_dim], the host copy (saved)
  bool absmax_stale_ = false;           // device appends have moved absmax_dev_ past absmax_
  bool from_device_ = false;            // the rows AppendHalf is writing are device memory
  DeviceArray<float> absmax_dev_;
  kernels::KiviLayout sketch_;
  DeviceArray<uint8_t> sketch_codes_;
  DeviceArray<Half> sketch_scale_, sketch_zero_;
  int64_t sketch_groups_ = 0;
  DeviceArray<Half> sink_k_, sink_v_;   // [sinks][kv_heads][head_dim]
  DeviceArray<Half> win_k_, win_v_;     // [3 * recent][kv_heads][head_dim], win_count_ rows used
  int64_t win_count_ = 0, win_first_ = 0;
  int64_t tokens_ = 0;
  int64_t kept_ = 0;
  kernels::KvSegment<Half> segs_[3];  // the last selection, device pointers
  int seg_count_ = 0;
  std::vector<Half> sel_k_, sel_v_;  // Select: the gathered rows, copied back
};

}  // namespace

StatusOr<std::unique_ptr<LayerState>> NewGpuSparseLayer(const LayerPlan& plan, const kernels::AttentionShape& shape,
                                                        GpuContext* gpu, LayerContext* context) {
  if (plan.scorer == Scorer::kSketch) {
    kernels::KiviLayout l{shape, plan.sketch_bits, plan.sketch_group, shape.head_dim};
    KVT_RETURN_IF_ERROR(l.Validate());
  }
  std::unique_ptr<GpuSparseLayer> layer(new GpuSparseLayer(plan, shape, gpu, context));
  KVT_RETURN_IF_ERROR(layer->Init());
  return std::unique_ptr<LayerState>(std::move(layer));
}

}  // namespace kvt::sequence::internal
