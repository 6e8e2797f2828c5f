// "full" and "offload" on a GPU sequence: fp16 K/V [tokens][kv_heads][head_dim] in device memory
// (full) or in the host tier — pinned, mapped host memory from the sequence's HostTierMemory, maybe
// the client's registered shared heap (offload: every step's attention reads the whole layer over
// PCIe, zero-copy, and counts it as fetched). Room for appended rows is reserved in both K and V
// before either is written, so a full host tier fails the append with nothing changed.
// AppendOnDevice converts on the device straight into the storage: device memory (full), or the
// host tier through its device mapping (offload: the conversion kernel writes over PCIe; no host
// staging). SelectOnDevice hands back the storage itself (device memory, or the mapped host tier:
// zero-copy) and enqueues nothing. Suspend images are the CPU layers' (fp16 K, then fp16 V), so an
// image moves between a CPU and a GPU sequence unchanged.
#include <vector>

#include "gpu/kernels/convert.cuh"
#include "gpu/kernels/decode_attention.cuh"
#include "sequence/internal/gpu_layer.cuh"
#include "sequence/internal/host_tier_array.h"

namespace kvt::sequence::internal {
namespace {

using kernels::Half;

class GpuFullLayer final : public GpuLayer {
 public:
  GpuFullLayer(const kernels::AttentionShape& s, bool offload, GpuContext* gpu, LayerContext* ctx)
      : GpuLayer(s, gpu), offload_(offload), ctx_(ctx), pk_(ctx->host_memory), pv_(ctx->host_memory) {}
  ~GpuFullLayer() override { (void)Quiesce(); }

  Status Append(const float* k, const float* v, int64_t tokens) override {
    ConvertAppended(k, v, tokens);
    return AppendHalf(hk_.data(), hv_.data(), tokens);
  }

  Status Save(ByteWriter& w) const override {
    std::vector<Half> k, v;
    KVT_RETURN_IF_ERROR(Download(&k, &v));
    w.PutVector(k);
    w.PutVector(v);
    return Status::Ok();
  }

  Status Load(ByteReader& r) override {
    std::vector<Half> k, v;
    KVT_RETURN_IF_ERROR(r.GetVector(&k));
    KVT_RETURN_IF_ERROR(r.GetVector(&v));
    if (k.size() != v.size() || k.size() % static_cast<size_t>(kv_row()) != 0) {
      return Corruption("full layer image: bad sizes");
    }
    KVT_RETURN_IF_ERROR(gpu_->Synchronize());
    dk_.Clear();
    dv_.Clear();
    pk_.Clear();
    pv_.Clear();
    tokens_ = 0;
    return AppendHalf(k.data(), v.data(), static_cast<int64_t>(k.size()) / kv_row());
  }

  // Offload: the pinned host tier itself; full: a host copy of the device K/V.
  Status Select(const float* query, SelectedKv* out) override {
    KVT_RETURN_IF_ERROR(gpu_->Synchronize());
    const Half* k = pk_.data();
    const Half* v = pv_.data();
    if (!offload_) {
      KVT_RETURN_IF_ERROR(Download(&sel_k_, &sel_v_));
      k = sel_k_.data();
      v = sel_v_.data();
    }
    out->segments.assign(1, kernels::KvSegment<Half>{k, v, tokens_, kv_row(), shape_.head_dim});
    out->tokens = tokens_;
    return Status::Ok();
  }

  int64_t tokens() const override { return tokens_; }
  uint64_t device_bytes() const override { return offload_ ? 0 : bytes(); }
  uint64_t host_bytes() const override { return offload_ ? bytes() : 0; }

 protected:
  Status AppendFromDevice(const float* k, const float* v, int64_t tokens) override {
    const size_t n = static_cast<size_t>(tokens * kv_row());
    cudaStream_t s = gpu_->stream;
    Half *dk = nullptr, *dv = nullptr;
    if (offload_) {  // room in both first (growth waits for the stream), then the tails' device addresses
      auto wait_stream = [this] { return gpu_->Synchronize(); };
      KVT_RETURN_IF_ERROR(pk_.Reserve(pk_.size() + n, wait_stream));
      KVT_RETURN_IF_ERROR(pv_.Reserve(pv_.size() + n, wait_stream));
      dk = pk_.mutable_device_data() + pk_.ExtendReserved(n);
      dv = pv_.mutable_device_data() + pv_.ExtendReserved(n);
    } else {
      KVT_RETURN_IF_ERROR(dk_.Grow(n, s, &dk));
      KVT_RETURN_IF_ERROR(dv_.Grow(n, s, &dv));
    }
    tokens_ += tokens;  // the sizes grew: counted now, so a failed launch below leaves them consistent
    KVT_RETURN_IF_ERROR(gpu::ConvertToHalfCuda(k, dk, static_cast<int64_t>(n), s));
    return gpu::ConvertToHalfCuda(v, dv, static_cast<int64_t>(n), s);
  }

  Status SelectDevice(const float* query, DeviceSelectedKv* out) override {
    out->segments.assign(1, kernels::KvSegment<Half>{keys(), values(), tokens_, kv_row(), shape_.head_dim});
    out->memory.assign(1, offload_ ? KvMemory::kMappedHost : KvMemory::kDevice);
    out->tokens = tokens_;
    return Status::Ok();
  }

  Status AttendOn(const float* query, float* out, cudaStream_t stream) override {
    const kernels::KvSegment<Half> seg{keys(), values(), tokens_, kv_row(), shape_.head_dim};
    const size_t ws = gpu::DecodeAttentionWorkspaceBytesCuda(shape_, tokens_);
    KVT_RETURN_IF_ERROR(gpu_->workspace.Resize(ws, gpu_->stream));
    KVT_RETURN_IF_ERROR(gpu::DecodeAttentionCuda(shape_, std::span(&seg, 1), query, out, gpu_->workspace.data(), ws,
                                                 stream));
    if (offload_) {
      ctx_->pcie_bytes += bytes();
      ctx_->attention_fetch_bytes += bytes();
    }
    return Status::Ok();
  }

 private:
  uint64_t bytes() const { return static_cast<uint64_t>(2 * tokens_ * kv_row()) * sizeof(Half); }
  const Half* keys() const { return offload_ ? pk_.device_data() : dk_.data(); }
  const Half* values() const { return offload_ ? pv_.device_data() : dv_.data(); }

  Status AppendHalf(const Half* k, const Half* v, int64_t tokens) {
    const size_t n = static_cast<size_t>(tokens * kv_row());
    if (offload_) {
      // Growth waits for the stream: no queued kernel reads the old range when it is freed.
      auto wait_stream = [this] { return gpu_->Synchronize(); };
      KVT_RETURN_IF_ERROR(pk_.Reserve(pk_.size() + n, wait_stream));
      KVT_RETURN_IF_ERROR(pv_.Reserve(pv_.size() + n, wait_stream));
      // The new rows lie past every row a queued kernel reads.
      pk_.AppendReserved(k, n);
      pv_.AppendReserved(v, n);
    } else {
      KVT_RETURN_IF_ERROR(dk_.Reserve(dk_.size() + n, gpu_->stream));
      KVT_RETURN_IF_ERROR(dv_.Reserve(dv_.size() + n, gpu_->stream));
      KVT_RETURN_IF_ERROR(dk_.AppendFromHost(k, n, gpu_->stream));
      KVT_RETURN_IF_ERROR(dv_.AppendFromHost(v, n, gpu_->stream));
    }
    tokens_ += tokens;
    return Status::Ok();
  }

  Status Download(std::vector<Half>* k, std::vector<Half>* v) const {
    KVT_RETURN_IF_ERROR(gpu_->Synchronize());
    if (offload_) {
      k->assign(pk_.data(), pk_.data() + pk_.size());
      v->assign(pv_.data(), pv_.data() + pv_.size());
      return Status::Ok();
    }
    KVT_RETURN_IF_ERROR(dk_.CopyToHost(k, gpu_->stream));
    return dv_.CopyToHost(v, gpu_->stream);
  }

  bool offload_;
  LayerContext* ctx_;
  DeviceArray<Half> dk_, dv_;  // full
  HostTierArray<Half> pk_, pv_;  // offload: the host tier
  int64_t tokens_ = 0;
  std::vector<Half> sel_k_, sel_v_;  // full: what Select returns
};

}  // namespace

StatusOr<std::unique_ptr<LayerState>> NewGpuFullLayer(const kernels::AttentionShape& shape, bool offload,
                                                      GpuContext* gpu, LayerContext* context) {
  return std::unique_ptr<LayerState>(new GpuFullLayer(shape, offload, gpu, context));
}

}  // namespace kvt::sequence::internal
