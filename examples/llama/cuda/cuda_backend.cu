// CudaBackend: the model's weights on device 0 and the forward pass over llama_kernels.cuh.
#include "examples/llama/cuda/cuda_backend.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "examples/llama/cuda/llama_kernels.cuh"
#include "gpu/kernels/cuda_status.h"

namespace kvt::llama {
namespace {

// An owned cudaMalloc'd array of T (empty until Allocate).
template <typename T>
class DeviceArray {
 public:
  DeviceArray() = default;
  ~DeviceArray() { Release(); }
  DeviceArray(DeviceArray&& o) noexcept
      : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  DeviceArray& operator=(DeviceArray&& o) noexcept {
    if (this != &o) {
      Release();
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  // Drops the old contents; at least one element so the pointer is never null.
  Status Allocate(size_t n) {
    Release();
    void* p = nullptr;
    KVT_CUDA_RETURN_IF_ERROR(cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(T)));
    p_ = static_cast<T*>(p);
    n_ = n;
    return Status::Ok();
  }
  Status Upload(const std::vector<T>& host) {
    KVT_RETURN_IF_ERROR(Allocate(host.size()));
    if (!host.empty()) {
      KVT_CUDA_RETURN_IF_ERROR(
          cudaMemcpy(p_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
    }
    return Status::Ok();
  }
  T* get() const { return p_; }
  size_t size() const { return n_; }

 private:
  void Release() {
    if (p_ != nullptr) (void)cudaFree(p_);  // a failed free at teardown has no one to report to
    p_ = nullptr;
    n_ = 0;
  }
  T* p_ = nullptr;
  size_t n_ = 0;
};

using Floats = DeviceArray<float>;

// One sequence: its K/V per layer [capacity][kv_dim] (post-RoPE keys), scratch sized for the
// largest batch so far, and its own stream.
class CudaSequenceState final : public DeviceSequenceState {
 public:
  ~CudaSequenceState() override {
    if (stream_ != nullptr) {
      (void)cudaStreamSynchronize(stream_);
      (void)cudaStreamDestroy(stream_);
    }
  }
  int64_t tokens() const override { return tokens_; }
  uint64_t stored_bytes() const override {
    return static_cast<uint64_t>(tokens_) * kv_dim_ * 2 * sizeof(float) * k_.size();
  }

  cudaStream_t stream_ = nullptr;
  int64_t tokens_ = 0, capacity_ = 0;
  int kv_dim_ = 0;
  std::vector<Floats> k_, v_;
  int scratch_rows_ = 0;
  Floats x_, xb_, q_, att_, h1_, h3_, scores_, logits_;
  DeviceArray<int32_t> ids_;
};

class CudaBackend final : public DeviceBackend {
 public:
  explicit CudaBackend(const ModelConfig& c, std::string name) : c_(c), name_(std::move(name)) {}

  Status Upload(const ModelWeights& w) {
    const std::pair<Floats*, const std::vector<float>*> tensors[] = {{&tok_emb_, &w.tok_emb},
                                                                     {&rms_att_, &w.rms_att},
                                                                     {&wq_, &w.wq},
                                                                     {&wk_, &w.wk},
                                                                     {&wv_, &w.wv},
                                                                     {&wo_, &w.wo},
                                                                     {&rms_ffn_, &w.rms_ffn},
                                                                     {&w1_, &w.w1},
                                                                     {&w2_, &w.w2},
                                                                     {&w3_, &w.w3},
                                                                     {&rms_final_, &w.rms_final},
                                                                     {&wcls_, &w.wcls}};
    for (auto [dev, host] : tensors) KVT_RETURN_IF_ERROR(dev->Upload(*host));
    classifier_ = w.wcls.empty() ? tok_emb_.get() : wcls_.get();
    return Status::Ok();
  }

  std::string name() const override { return name_; }

  StatusOr<std::unique_ptr<DeviceSequenceState>> NewSequenceState(int max_tokens) const override {
    auto s = std::make_unique<CudaSequenceState>();
    KVT_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&s->stream_, cudaStreamNonBlocking));
    s->kv_dim_ = c_.kv_dim();
    s->k_.resize(c_.n_layers);
    s->v_.resize(c_.n_layers);
    KVT_RETURN_IF_ERROR(Reserve(*s, max_tokens > 0 ? max_tokens : c_.seq_len));
    return std::unique_ptr<DeviceSequenceState>(std::move(s));
  }

  Status Forward(DeviceSequenceState& state, std::span<const int32_t> tokens, bool all_logits,
                 float* logits) const override;

 private:
  // Cache room for `tokens` positions (existing rows kept) and the score scratch to match.
  Status Reserve(CudaSequenceState& s, int64_t tokens) const;
  Status EnsureScratch(CudaSequenceState& s, int rows) const;

  ModelConfig c_;
  std::string name_;
  Floats tok_emb_, rms_att_, wq_, wk_, wv_, wo_, rms_ffn_, w1_, w2_, w3_, rms_final_, wcls_;
  const float* classifier_ = nullptr;
};

Status CudaBackend::Reserve(CudaSequenceState& s, int64_t tokens) const {
  if (tokens <= s.capacity_) return Status::Ok();
  const int64_t capacity = std::max<int64_t>(tokens, 2 * s.capacity_);
  const size_t kv = static_cast<size_t>(c_.kv_dim());
  for (int l = 0; l < c_.n_layers; ++l) {
    for (std::vector<Floats>* side : {&s.k_, &s.v_}) {
      Floats grown;
      KVT_RETURN_IF_ERROR(grown.Allocate(static_cast<size_t>(capacity) * kv));
      if (s.tokens_ > 0) {
        KVT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(
            grown.get(), (*side)[l].get(), static_cast<size_t>(s.tokens_) * kv * sizeof(float),
            cudaMemcpyDeviceToDevice, s.stream_));
        KVT_CUDA_RETURN_IF_ERROR(
            cudaStreamSynchronize(s.stream_));  // before the old rows are freed
      }
      (*side)[l] = std::move(grown);
    }
  }
  s.capacity_ = capacity;
  if (s.scratch_rows_ > 0) {  // the score rows are capacity long
    KVT_RETURN_IF_ERROR(
        s.scores_.Allocate(static_cast<size_t>(s.scratch_rows_) * c_.n_heads * capacity));
  }
  return Status::Ok();
}

Status CudaBackend::EnsureScratch(CudaSequenceState& s, int rows) const {
  if (rows <= s.scratch_rows_) return Status::Ok();
  const size_t r = static_cast<size_t>(rows);
  KVT_RETURN_IF_ERROR(s.x_.Allocate(r * c_.dim));
  KVT_RETURN_IF_ERROR(s.xb_.Allocate(r * c_.dim));
  KVT_RETURN_IF_ERROR(s.q_.Allocate(r * c_.dim));
  KVT_RETURN_IF_ERROR(s.att_.Allocate(r * c_.dim));
  KVT_RETURN_IF_ERROR(s.h1_.Allocate(r * c_.hidden_dim));
  KVT_RETURN_IF_ERROR(s.h3_.Allocate(r * c_.hidden_dim));
  KVT_RETURN_IF_ERROR(s.scores_.Allocate(r * c_.n_heads * static_cast<size_t>(s.capacity_)));
  KVT_RETURN_IF_ERROR(s.logits_.Allocate(r * c_.vocab_size));
  KVT_RETURN_IF_ERROR(s.ids_.Allocate(r));
  s.scratch_rows_ = rows;
  return Status::Ok();
}

Status CudaBackend::Forward(DeviceSequenceState& state, std::span<const int32_t> tokens,
                            bool all_logits, float* logits) const {
  auto& s = static_cast<CudaSequenceState&>(state);
  if (tokens.empty() || logits == nullptr)
    return InvalidArgument("Forward: no tokens or no logits buffer");
  if (tokens.size() > (1u << 20))
    return InvalidArgument("Forward: more than 1M tokens in one batch");
  const int T = static_cast<int>(tokens.size());
  const int d = c_.dim, kv = c_.kv_dim(), hd = c_.head_dim(), hid = c_.hidden_dim,
            V = c_.vocab_size;
  const int64_t pos0 = s.tokens_;
  KVT_RETURN_IF_ERROR(Reserve(s, pos0 + T));
  KVT_RETURN_IF_ERROR(EnsureScratch(s, T));
  cudaStream_t st = s.stream_;
  const size_t td = static_cast<size_t>(T) * d, th = static_cast<size_t>(T) * hid;

  KVT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(
      s.ids_.get(), tokens.data(), tokens.size() * sizeof(int32_t), cudaMemcpyHostToDevice, st));
  KVT_RETURN_IF_ERROR(cuda::EmbedRows(s.ids_.get(), tok_emb_.get(), s.x_.get(), T, d, st));
  for (int l = 0; l < c_.n_layers; ++l) {
    const size_t ld = static_cast<size_t>(l);
    // This batch's K/V rows go straight into the cache at pos0.
    float* k = s.k_[l].get() + static_cast<size_t>(pos0) * kv;
    float* v = s.v_[l].get() + static_cast<size_t>(pos0) * kv;
    KVT_RETURN_IF_ERROR(
        cuda::RmsNormRows(s.x_.get(), rms_att_.get() + ld * d, s.xb_.get(), T, d, c_.rms_eps, st));
    KVT_RETURN_IF_ERROR(
        cuda::MatMulRows(s.xb_.get(), wq_.get() + ld * d * d, s.q_.get(), T, d, d, st));
    KVT_RETURN_IF_ERROR(cuda::MatMulRows(s.xb_.get(), wk_.get() + ld * kv * d, k, T, kv, d, st));
    KVT_RETURN_IF_ERROR(cuda::MatMulRows(s.xb_.get(), wv_.get() + ld * kv * d, v, T, kv, d, st));
    KVT_RETURN_IF_ERROR(cuda::RopeRows(s.q_.get(), T, c_.n_heads, hd, pos0, c_.rope_theta, st));
    KVT_RETURN_IF_ERROR(cuda::RopeRows(k, T, c_.n_kv_heads, hd, pos0, c_.rope_theta, st));
    cuda::CausalAttentionArgs a;
    a.q = s.q_.get();
    a.keys = s.k_[l].get();
    a.values = s.v_[l].get();
    a.scores = s.scores_.get();
    a.out = s.att_.get();
    a.rows = T;
    a.pos0 = pos0;
    a.q_heads = c_.n_heads;
    a.kv_heads = c_.n_kv_heads;
    a.head_dim = hd;
    a.score_stride = s.capacity_;
    KVT_RETURN_IF_ERROR(cuda::CausalAttention(a, st));
    KVT_RETURN_IF_ERROR(
        cuda::MatMulRows(s.att_.get(), wo_.get() + ld * d * d, s.xb_.get(), T, d, d, st));
    KVT_RETURN_IF_ERROR(cuda::AddInPlace(s.x_.get(), s.xb_.get(), td, st));
    KVT_RETURN_IF_ERROR(
        cuda::RmsNormRows(s.x_.get(), rms_ffn_.get() + ld * d, s.xb_.get(), T, d, c_.rms_eps, st));
    KVT_RETURN_IF_ERROR(
        cuda::MatMulRows(s.xb_.get(), w1_.get() + ld * hid * d, s.h1_.get(), T, hid, d, st));
    KVT_RETURN_IF_ERROR(
        cuda::MatMulRows(s.xb_.get(), w3_.get() + ld * hid * d, s.h3_.get(), T, hid, d, st));
    KVT_RETURN_IF_ERROR(cuda::SwiGluInPlace(s.h1_.get(), s.h3_.get(), th, st));
    KVT_RETURN_IF_ERROR(
        cuda::MatMulRows(s.h1_.get(), w2_.get() + ld * d * hid, s.xb_.get(), T, d, hid, st));
    KVT_RETURN_IF_ERROR(cuda::AddInPlace(s.x_.get(), s.xb_.get(), td, st));
  }
  // The classifier over every row, or the last row only.
  const int out_rows = all_logits ? T : 1;
  const float* first = s.x_.get() + static_cast<size_t>(T - out_rows) * d;
  KVT_RETURN_IF_ERROR(
      cuda::RmsNormRows(first, rms_final_.get(), s.xb_.get(), out_rows, d, c_.rms_eps, st));
  KVT_RETURN_IF_ERROR(
      cuda::MatMulRows(s.xb_.get(), classifier_, s.logits_.get(), out_rows, V, d, st));
  KVT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(logits, s.logits_.get(),
                                           static_cast<size_t>(out_rows) * V * sizeof(float),
                                           cudaMemcpyDeviceToHost, st));
  KVT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(st));
  s.tokens_ += T;
  return Status::Ok();
}

}  // namespace

int CudaDeviceCount() { return gpu::DeviceCount(); }

bool CudaPathBuilt() { return true; }

StatusOr<std::unique_ptr<DeviceBackend>> MakeCudaBackend(const ModelWeights& weights) {
  KVT_RETURN_IF_ERROR(weights.config.Validate());
  if (gpu::DeviceCount() == 0) return Unsupported("no CUDA device (driver or device missing)");
  KVT_CUDA_RETURN_IF_ERROR(cudaSetDevice(0));
  cudaDeviceProp prop{};
  KVT_CUDA_RETURN_IF_ERROR(cudaGetDeviceProperties(&prop, 0));
  auto backend =
      std::make_unique<CudaBackend>(weights.config, std::string("cuda:0 (") + prop.name + ")");
  if (Status s = backend->Upload(weights); !s.ok()) return s.WithContext("uploading the weights");
  return std::unique_ptr<DeviceBackend>(std::move(backend));
}

}  // namespace kvt::llama
