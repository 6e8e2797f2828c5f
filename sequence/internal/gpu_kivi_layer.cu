// "kivi" on a GPU sequence: TailorKV's dense layers, resident in device memory in the storage rule
// of policies/internal/kivi_store.h (keys quantized per channel in blocks of `residual` tokens when
// their fp16 window fills, values per token as they leave their fp16 ring of `residual` rows),
// quantized on the device (KiviQuantize*Cuda) and attended on the packed codes
// (KiviDecodeAttentionCuda). A bulk append quantizes whole blocks straight from the staged rows
// instead of token by token; the result is the same state KiviStore reaches. AppendOnDevice
// converts the caller's device rows to fp16 on the device (the context's stage buffers) and runs
// the same pushes: nothing crosses PCIe. SelectOnDevice dequantizes on the device
// (KiviDequantize*Cuda, then fp16) into the context's gather buffers, followed by the fp16
// residual rows: one contiguous [tokens][kv_heads][head_dim] segment, reused by the next call.
//
// The suspend image is KiviStore's, field for field, so it moves between a CPU and a GPU sequence;
// the codes a GPU quantized equal the CPU's except where a value sits within float rounding of a
// code boundary (gpu/kernels/kivi_quantize.cuh).
#include <algorithm>
#include <vector>

#include "gpu/kernels/convert.cuh"
#include "gpu/kernels/kivi_attention.cuh"
#include "gpu/kernels/kivi_quantize.cuh"
#include "host/kernels/convert.h"
#include "policies/internal/kivi_store.h"
#include "sequence/internal/gpu_layer.cuh"

namespace kvt::sequence::internal {
namespace {

using kernels::Half;

class GpuKiviLayer final : public GpuLayer {
 public:
  GpuKiviLayer(const kernels::KiviLayout& l, int residual, GpuContext* gpu)
      : GpuLayer(l.shape, gpu), l_(l), residual_(residual) {}
  ~GpuKiviLayer() override { (void)Quiesce(); }

  Status Init() {
    const size_t window = static_cast<size_t>(residual_ * kv_row());
    KVT_RETURN_IF_ERROR(key_residual_.Resize(window, gpu_->stream));
    return value_ring_.Resize(window, gpu_->stream);
  }

  Status Append(const float* k, const float* v, int64_t tokens) override {
    ConvertAppended(k, v, tokens);
    cudaStream_t s = gpu_->stream;
    KVT_RETURN_IF_ERROR(gpu_->stage_k.Resize(hk_.size(), s));
    KVT_RETURN_IF_ERROR(gpu_->stage_v.Resize(hv_.size(), s));
    KVT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(gpu_->stage_k.data(), hk_.data(), hk_.size() * sizeof(Half),
                                             cudaMemcpyHostToDevice, s));
    KVT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(gpu_->stage_v.data(), hv_.data(), hv_.size() * sizeof(Half),
                                             cudaMemcpyHostToDevice, s));
    KVT_RETURN_IF_ERROR(PushKeys(gpu_->stage_k.data(), tokens));
    KVT_RETURN_IF_ERROR(PushValues(gpu_->stage_v.data(), tokens));
    tokens_ += tokens;
    return Status::Ok();
  }

  // KiviStore::Save's fields, in its order.
  Status Save(ByteWriter& w) const override {
    KVT_RETURN_IF_ERROR(gpu_->Synchronize());
    std::vector<uint8_t> key_codes, value_codes;
    std::vector<Half> key_scale, key_zero, key_residual, value_scale, value_zero, value_ring;
    cudaStream_t s = gpu_->stream;
    KVT_RETURN_IF_ERROR(key_codes_.CopyToHost(&key_codes, s));
    KVT_RETURN_IF_ERROR(key_scale_.CopyToHost(&key_scale, s));
    KVT_RETURN_IF_ERROR(key_zero_.CopyToHost(&key_zero, s));
    KVT_RETURN_IF_ERROR(key_residual_.CopyToHost(&key_residual, s));
    KVT_RETURN_IF_ERROR(value_codes_.CopyToHost(&value_codes, s));
    KVT_RETURN_IF_ERROR(value_scale_.CopyToHost(&value_scale, s));
    KVT_RETURN_IF_ERROR(value_zero_.CopyToHost(&value_zero, s));
    KVT_RETURN_IF_ERROR(value_ring_.CopyToHost(&value_ring, s));
    w.Put(tokens_);
    w.PutVector(key_codes);
    w.PutVector(key_scale);
    w.PutVector(key_zero);
    w.Put(key_groups_);
    w.PutVector(key_residual);
    w.Put(key_residual_count_);
    w.PutVector(value_codes);
    w.PutVector(value_scale);
    w.PutVector(value_zero);
    w.Put(value_tokens_);
    w.PutVector(value_ring);
    w.Put(ring_start_);
    w.Put(ring_count_);
    return Status::Ok();
  }

  Status Load(ByteReader& r) override {
    {  // KiviStore's own checks of the image (sizes, counts) on a copy of the reader.
      ByteReader probe = r;
      policies::internal::KiviStore check(l_, residual_);
      KVT_RETURN_IF_ERROR(check.Load(probe));
    }
    std::vector<uint8_t> key_codes, value_codes;
    std::vector<Half> key_scale, key_zero, key_residual, value_scale, value_zero, value_ring;
    int64_t tokens = 0, key_groups = 0, key_residual_count = 0, value_tokens = 0, ring_start = 0, ring_count = 0;
    KVT_RETURN_IF_ERROR(r.Get(&tokens));
    KVT_RETURN_IF_ERROR(r.GetVector(&key_codes));
    KVT_RETURN_IF_ERROR(r.GetVector(&key_scale));
    KVT_RETURN_IF_ERROR(r.GetVector(&key_zero));
    KVT_RETURN_IF_ERROR(r.Get(&key_groups));
    KVT_RETURN_IF_ERROR(r.GetVector(&key_residual));
    KVT_RETURN_IF_ERROR(r.Get(&key_residual_count));
    KVT_RETURN_IF_ERROR(r.GetVector(&value_codes));
    KVT_RETURN_IF_ERROR(r.GetVector(&value_scale));
    KVT_RETURN_IF_ERROR(r.GetVector(&value_zero));
    KVT_RETURN_IF_ERROR(r.Get(&value_tokens));
    KVT_RETURN_IF_ERROR(r.GetVector(&value_ring));
    KVT_RETURN_IF_ERROR(r.Get(&ring_start));
    KVT_RETURN_IF_ERROR(r.Get(&ring_count));
    cudaStream_t s = gpu_->stream;
    KVT_RETURN_IF_ERROR(gpu_->Synchronize());
    for (auto* a : {&key_codes_, &value_codes_}) a->Clear();
    for (auto* a : {&key_scale_, &key_zero_, &key_residual_, &value_scale_, &value_zero_, &value_ring_}) a->Clear();
    KVT_RETURN_IF_ERROR(key_codes_.AppendFromHost(key_codes.data(), key_codes.size(), s));
    KVT_RETURN_IF_ERROR(key_scale_.AppendFromHost(key_scale.data(), key_scale.size(), s));
    KVT_RETURN_IF_ERROR(key_zero_.AppendFromHost(key_zero.data(), key_zero.size(), s));
    KVT_RETURN_IF_ERROR(key_residual_.AppendFromHost(key_residual.data(), key_residual.size(), s));
    KVT_RETURN_IF_ERROR(value_codes_.AppendFromHost(value_codes.data(), value_codes.size(), s));
    KVT_RETURN_IF_ERROR(value_scale_.AppendFromHost(value_scale.data(), value_scale.size(), s));
    KVT_RETURN_IF_ERROR(value_zero_.AppendFromHost(value_zero.data(), value_zero.size(), s));
    KVT_RETURN_IF_ERROR(value_ring_.AppendFromHost(value_ring.data(), value_ring.size(), s));
    tokens_ = tokens;
    key_groups_ = key_groups;
    key_residual_count_ = key_residual_count;
    value_tokens_ = value_tokens;
    ring_start_ = ring_start;
    ring_count_ = ring_count;
    return gpu_->Synchronize();
  }

  // Dequantized K/V (fp16) for an engine running its own kernel, as the CPU kivi layer gives them:
  // the state goes through its image into a host KiviStore, which reconstructs it (slow; not a
  // decode-step path).
  Status Select(const float* query, SelectedKv* out) override {
    std::vector<uint8_t> image;
    ByteWriter w(&image);
    KVT_RETURN_IF_ERROR(Save(w));
    policies::internal::KiviStore store(l_, residual_);
    ByteReader r(image);
    KVT_RETURN_IF_ERROR(store.Load(r));
    std::vector<float> k(static_cast<size_t>(tokens_ * kv_row())), v(k.size());
    KVT_RETURN_IF_ERROR(store.Reconstruct(k.data(), v.data()));
    sel_k_.resize(k.size());
    sel_v_.resize(v.size());
    kernels::ConvertToHalf(k.data(), sel_k_.data(), static_cast<int64_t>(k.size()));
    kernels::ConvertToHalf(v.data(), sel_v_.data(), static_cast<int64_t>(v.size()));
    out->segments.assign(1, kernels::KvSegment<Half>{sel_k_.data(), sel_v_.data(), tokens_, kv_row(), shape_.head_dim});
    out->tokens = tokens_;
    return Status::Ok();
  }

  int64_t tokens() const override { return tokens_; }
  uint64_t device_bytes() const override {
    return key_codes_.size() + value_codes_.size() +
           (key_scale_.size() + key_zero_.size() + value_scale_.size() + value_zero_.size() + key_residual_.size() +
            value_ring_.size()) * sizeof(Half);
  }

 protected:
  Status AppendFromDevice(const float* k, const float* v, int64_t tokens) override {
    KVT_RETURN_IF_ERROR(StageFromDevice(k, v, tokens));
    KVT_RETURN_IF_ERROR(PushKeys(gpu_->stage_k.data(), tokens));
    KVT_RETURN_IF_ERROR(PushValues(gpu_->stage_v.data(), tokens));
    tokens_ += tokens;
    return Status::Ok();
  }

  // KiviStore::Reconstruct on the device, rounded to fp16 as the host Select rounds it.
  Status SelectDevice(const float* query, DeviceSelectedKv* out) override {
    GpuContext& g = *gpu_;
    cudaStream_t s = g.stream;
    const int64_t row = kv_row(), qk = key_groups_ * l_.key_group, qv = value_tokens_;
    if (qk + key_residual_count_ != tokens_ || qv + ring_count_ != tokens_) {
      return Internal("kivi layer: token counts disagree");
    }
    KVT_RETURN_IF_ERROR(g.gather_k.Resize(static_cast<size_t>(tokens_ * row), s));
    KVT_RETURN_IF_ERROR(g.gather_v.Resize(g.gather_k.size(), s));
    KVT_RETURN_IF_ERROR(g.dequant.Resize(static_cast<size_t>(std::max<int64_t>({qk, qv, 1}) * row), s));
    if (qk > 0) {
      KVT_RETURN_IF_ERROR(gpu::KiviDequantizeKeysCuda(l_, key_codes_.data(), key_scale_.data(), key_zero_.data(),
                                                      key_groups_, g.dequant.data(), s));
      KVT_RETURN_IF_ERROR(gpu::ConvertToHalfCuda(g.dequant.data(), g.gather_k.data(), qk * row, s));
    }
    KVT_RETURN_IF_ERROR(CopyRows(g.gather_k.data() + qk * row, key_residual_.data(), key_residual_count_));
    if (qv > 0) {
      KVT_RETURN_IF_ERROR(gpu::KiviDequantizeValuesCuda(l_, value_codes_.data(), value_scale_.data(),
                                                        value_zero_.data(), qv, g.dequant.data(), s));
      KVT_RETURN_IF_ERROR(gpu::ConvertToHalfCuda(g.dequant.data(), g.gather_v.data(), qv * row, s));
    }
    const int64_t first = std::min<int64_t>(ring_count_, residual_ - ring_start_);  // up to the ring's end
    KVT_RETURN_IF_ERROR(CopyRows(g.gather_v.data() + qv * row, value_ring_.data() + ring_start_ * row, first));
    KVT_RETURN_IF_ERROR(CopyRows(g.gather_v.data() + (qv + first) * row, value_ring_.data(), ring_count_ - first));
    out->segments.assign(1, kernels::KvSegment<Half>{g.gather_k.data(), g.gather_v.data(), tokens_, row,
                                                     shape_.head_dim});
    out->memory.assign(1, KvMemory::kDevice);
    out->tokens = tokens_;
    return Status::Ok();
  }

  Status AttendOn(const float* query, float* out, cudaStream_t stream) override {
    kernels::KiviCacheView view;
    view.key_codes = key_codes_.data();
    view.key_scale = key_scale_.data();
    view.key_zero = key_zero_.data();
    view.key_groups = key_groups_;
    view.key_residual = key_residual_.data();
    view.key_residual_tokens = key_residual_count_;
    view.value_codes = value_codes_.data();
    view.value_scale = value_scale_.data();
    view.value_zero = value_zero_.data();
    view.value_tokens = value_tokens_;
    view.value_residual = value_ring_.data();
    view.value_residual_tokens = ring_count_;
    view.value_ring_start = ring_start_;
    view.value_ring_capacity = residual_;
    const size_t ws = gpu::KiviAttentionWorkspaceBytesCuda(l_, tokens_);
    KVT_RETURN_IF_ERROR(gpu_->workspace.Resize(ws, gpu_->stream));
    return gpu::KiviDecodeAttentionCuda(l_, view, query, out, gpu_->workspace.data(), ws, stream);
  }

 private:
  // `count` rows, device to device, on the sequence's stream.
  Status CopyRows(Half* dst, const Half* src, int64_t count) {
    if (count <= 0) return Status::Ok();
    return gpu::CudaStatus(cudaMemcpyAsync(dst, src, static_cast<size_t>(count * kv_row()) * sizeof(Half),
                                           cudaMemcpyDeviceToDevice, gpu_->stream),
                           "cudaMemcpyAsync");
  }

  // Quantizes `groups` key groups of rows at `keys` (token stride one row) onto the codes.
  Status QuantizeKeyGroups(const Half* keys, int64_t groups) {
    const int64_t kvh = l_.shape.kv_heads;
    const size_t code_off = key_codes_.size(), param_off = key_scale_.size();
    cudaStream_t s = gpu_->stream;
    KVT_RETURN_IF_ERROR(key_codes_.Resize(code_off + groups * kvh * l_.KeyGroupCodeBytes(), s));
    KVT_RETURN_IF_ERROR(key_scale_.Resize(param_off + groups * kvh * l_.KeyGroupParams(), s));
    KVT_RETURN_IF_ERROR(key_zero_.Resize(key_scale_.size(), s));
    KVT_RETURN_IF_ERROR(gpu::KiviQuantizeKeysCuda(l_, keys, kv_row(), groups, key_codes_.data() + code_off,
                                                  key_scale_.data() + param_off, key_zero_.data() + param_off, s));
    key_groups_ += groups;
    return Status::Ok();
  }

  // KiviStore::PushKey for `tokens` rows of device memory at a time.
  Status PushKeys(const Half* rows, int64_t tokens) {
    const int64_t row = kv_row(), per_block = residual_ / l_.key_group;
    int64_t done = 0;
    while (done < tokens) {
      if (key_residual_count_ == 0 && tokens - done >= residual_) {  // whole blocks, straight from the rows
        const int64_t blocks = (tokens - done) / residual_;
        KVT_RETURN_IF_ERROR(QuantizeKeyGroups(rows + done * row, blocks * per_block));
        done += blocks * residual_;
        continue;
      }
      const int64_t take = std::min<int64_t>(residual_ - key_residual_count_, tokens - done);
      KVT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(key_residual_.data() + key_residual_count_ * row, rows + done * row,
                                               static_cast<size_t>(take * row) * sizeof(Half),
                                               cudaMemcpyDeviceToDevice, gpu_->stream));
      key_residual_count_ += take;
      done += take;
      if (key_residual_count_ == residual_) {
        KVT_RETURN_IF_ERROR(QuantizeKeyGroups(key_residual_.data(), per_block));
        key_residual_count_ = 0;
      }
    }
    return Status::Ok();
  }

  // Quantizes `count` value tokens at `rows` (token stride one row) onto the codes.
  Status QuantizeValueTokens(const Half* rows, int64_t count) {
    if (count == 0) return Status::Ok();
    const int64_t kvh = l_.shape.kv_heads;
    const size_t code_off = value_codes_.size(), param_off = value_scale_.size();
    cudaStream_t s = gpu_->stream;
    KVT_RETURN_IF_ERROR(value_codes_.Resize(code_off + count * kvh * l_.ValueTokenCodeBytes(), s));
    KVT_RETURN_IF_ERROR(value_scale_.Resize(param_off + count * kvh * l_.ValueGroups(), s));
    KVT_RETURN_IF_ERROR(value_zero_.Resize(value_scale_.size(), s));
    KVT_RETURN_IF_ERROR(gpu::KiviQuantizeValuesCuda(l_, rows, kv_row(), count, value_codes_.data() + code_off,
                                                    value_scale_.data() + param_off, value_zero_.data() + param_off,
                                                    s));
    value_tokens_ += count;
    return Status::Ok();
  }

  // KiviStore::PushValue for `tokens` rows at a time: of the ring's tokens followed by the new
  // ones, all but the last `residual` are quantized (oldest first), the rest end in the ring at
  // the slots one-at-a-time pushes would have put them.
  Status PushValues(const Half* rows, int64_t tokens) {
    const int64_t row = kv_row(), r = residual_;
    const int64_t total = ring_count_ + tokens;
    const int64_t keep = std::min<int64_t>(r, total);
    const int64_t to_quantize = total - keep;
    const int64_t from_ring = std::min<int64_t>(ring_count_, to_quantize);
    const int64_t first = std::min<int64_t>(from_ring, r - ring_start_);  // up to the ring's end
    KVT_RETURN_IF_ERROR(QuantizeValueTokens(value_ring_.data() + ring_start_ * row, first));
    KVT_RETURN_IF_ERROR(QuantizeValueTokens(value_ring_.data(), from_ring - first));
    const int64_t from_rows = to_quantize - from_ring;
    KVT_RETURN_IF_ERROR(QuantizeValueTokens(rows, from_rows));
    // New token i (i >= from_rows) goes to slot (ring_start_ + ring_count_ + i) % r.
    for (int64_t i = from_rows; i < tokens;) {
      const int64_t slot = (ring_start_ + ring_count_ + i) % r;
      const int64_t run = std::min<int64_t>(tokens - i, r - slot);
      KVT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(value_ring_.data() + slot * row, rows + i * row,
                                               static_cast<size_t>(run * row) * sizeof(Half),
                                               cudaMemcpyDeviceToDevice, gpu_->stream));
      i += run;
    }
    ring_start_ = (ring_start_ + to_quantize) % r;
    ring_count_ = keep;
    return Status::Ok();
  }

  kernels::KiviLayout l_;
  int64_t residual_;
  int64_t tokens_ = 0;
  DeviceArray<uint8_t> key_codes_, value_codes_;
  DeviceArray<Half> key_scale_, key_zero_, value_scale_, value_zero_;
  DeviceArray<Half> key_residual_;  // [residual][kv_heads][head_dim], the first key_residual_count_ rows used
  DeviceArray<Half> value_ring_;    // [residual][kv_heads][head_dim], a ring
  int64_t key_groups_ = 0, key_residual_count_ = 0, value_tokens_ = 0, ring_start_ = 0, ring_count_ = 0;
  std::vector<Half> sel_k_, sel_v_;  // what Select returns
};

}  // namespace

StatusOr<std::unique_ptr<LayerState>> NewGpuKiviLayer(const LayerPlan& plan, const kernels::AttentionShape& shape,
                                                      GpuContext* gpu) {
  // The same layout as the CPU kivi layer (kivi_layer.cc).
  kernels::KiviLayout layout{shape, plan.bits, plan.group, std::min(plan.group, shape.head_dim)};
  KVT_RETURN_IF_ERROR(policies::internal::KiviStore::CheckConfig(layout, plan.residual));
  std::unique_ptr<GpuKiviLayer> layer(new GpuKiviLayer(layout, plan.residual, gpu));
  KVT_RETURN_IF_ERROR(layer->Init());
  return std::unique_ptr<LayerState>(std::move(layer));
}

}  // namespace kvt::sequence::internal
