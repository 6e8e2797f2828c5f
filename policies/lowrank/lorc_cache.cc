#include "policies/lowrank/lorc_cache.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "host/kernels/lowrank/lorc_attention.h"
#include "policies/lowrank/internal/checks.h"
#include "policies/lowrank/tale_basis.h"

namespace kvt::policies::lowrank {

namespace klr = kernels::lowrank;

LorcCache::LorcCache(const LayerShape& shape)
    : shape_(shape), d_(shape.head_dim), kv_(shape.num_kv_heads) {}

StatusOr<std::unique_ptr<LorcCache>> LorcCache::FromFactors(const LayerShape& shape,
                                                            std::shared_ptr<const LorcFactors> f) {
  KVT_RETURN_IF_ERROR(internal::CheckShape(shape, "lorc"));
  if (shape.head_dim % 2 != 0) return InvalidArgument("lorc: RoPE needs an even head_dim");
  if (f == nullptr) return InvalidArgument("lorc: no factors");
  if (f->num_layers != shape.num_layers || f->num_kv_heads != shape.num_kv_heads ||
      f->head_dim != shape.head_dim || static_cast<int>(f->layers.size()) != f->num_layers) {
    return InvalidArgument("lorc: factors were made for a different model (layers " +
                           std::to_string(f->num_layers) + ", kv_heads " + std::to_string(f->num_kv_heads) +
                           ", head_dim " + std::to_string(f->head_dim) + ")");
  }
  std::unique_ptr<LorcCache> c(new LorcCache(shape));
  const LorcLayerFactors& lf = f->layers[shape.layer];
  c->key_rank_ = lf.key_rank;
  c->value_rank_ = lf.value_rank;
  c->key_up_ = lf.key_up;
  c->value_up_ = lf.value_up;
  return c;
}

StatusOr<std::unique_ptr<LorcCache>> LorcCache::Calibrated(const LayerShape& shape, float key_ratio,
                                                           float value_ratio, int calib_tokens) {
  KVT_RETURN_IF_ERROR(internal::CheckShape(shape, "lorc"));
  if (shape.head_dim % 2 != 0) return InvalidArgument("lorc: RoPE needs an even head_dim");
  if (!(key_ratio > 0.0f && key_ratio <= 1.0f) || !(value_ratio > 0.0f && value_ratio <= 1.0f)) {
    return InvalidArgument("lorc: ratios must be in (0, 1]");
  }
  if (calib_tokens < 1) return InvalidArgument("lorc: calib must be >= 1");
  std::unique_ptr<LorcCache> c(new LorcCache(shape));
  const int d = shape.head_dim;
  c->target_key_rank_ = std::clamp(static_cast<int>(std::lround(key_ratio * d)), 1, d);
  c->target_value_rank_ = std::clamp(static_cast<int>(std::lround(value_ratio * d)), 1, d);
  c->calib_tokens_ = calib_tokens;
  c->calibrated_ = false;
  // Until calibration the latents are the vectors themselves (identity factors, rank d).
  c->key_rank_ = c->value_rank_ = d;
  c->key_up_.assign(static_cast<size_t>(c->kv_) * d * d, 0.0f);
  for (int h = 0; h < c->kv_; ++h) {
    for (int i = 0; i < d; ++i) c->key_up_[(static_cast<size_t>(h) * d + i) * d + i] = 1.0f;
  }
  c->value_up_ = c->key_up_;
  return c;
}

void LorcCache::Reserve(int64_t need) {
  if (need <= capacity_) return;
  const int64_t cap = std::max<int64_t>({64, capacity_ * 2, need});
  auto relayout = [&](std::vector<kernels::Half>& buf, int r) {
    std::vector<kernels::Half> nb(static_cast<size_t>(kv_) * cap * r);
    // Nothing to move on the first reservation (and buf.data() may be null: memcpy's UB).
    for (int h = 0; h < kv_ && tokens_ > 0; ++h) {
      std::memcpy(nb.data() + static_cast<size_t>(h) * cap * r, buf.data() + static_cast<size_t>(h) * capacity_ * r,
                  static_cast<size_t>(tokens_) * r * sizeof(kernels::Half));
    }
    buf.swap(nb);
  };
  relayout(key_lat_, key_rank_);
  relayout(value_lat_, value_rank_);
  rope_.resize(static_cast<size_t>(cap) * d_);
  capacity_ = cap;
}

Status LorcCache::Append(const AppendBatch& b) {
  KVT_RETURN_IF_ERROR(internal::CheckBatch(b, true, "lorc"));
  if (b.tokens == 0) return Status::Ok();
  Reserve(tokens_ + b.tokens);
  for (int t = 0; t < b.tokens; ++t) {
    const int64_t slot = tokens_ + t;
    for (int h = 0; h < kv_; ++h) {
      const float* kp = b.keys_pre_rope + (static_cast<size_t>(t) * kv_ + h) * d_;
      const float* v = b.values + (static_cast<size_t>(t) * kv_ + h) * d_;
      kernels::Half* ck = key_lat_.data() + (static_cast<size_t>(h) * capacity_ + slot) * key_rank_;
      kernels::Half* cv = value_lat_.data() + (static_cast<size_t>(h) * capacity_ + slot) * value_rank_;
      const float* uk = key_up_.data() + static_cast<size_t>(h) * d_ * key_rank_;
      const float* uv = value_up_.data() + static_cast<size_t>(h) * d_ * value_rank_;
      for (int j = 0; j < key_rank_; ++j) {
        float s = 0.0f;
        for (int i = 0; i < d_; ++i) s += uk[i * key_rank_ + j] * kp[i];
        ck[j] = kernels::FloatToHalf(s);
      }
      for (int j = 0; j < value_rank_; ++j) {
        float s = 0.0f;
        for (int i = 0; i < d_; ++i) s += uv[i * value_rank_ + j] * v[i];
        cv[j] = kernels::FloatToHalf(s);
      }
    }
    klr::LorcRopeTable(b.positions[t], d_, shape_.rope.theta, rope_.data() + slot * d_);
    positions_.push_back(b.positions[t]);
  }
  tokens_ += b.tokens;
  if (!calibrated_ && tokens_ >= calib_tokens_) return Calibrate();
  return Status::Ok();
}

Status LorcCache::Compress(const Observation&) {
  if (!calibrated_ && tokens_ > 0) return Calibrate();
  return Status::Ok();
}

Status LorcCache::Calibrate() {
  // Latents are still the raw pre-RoPE keys / values (identity factors): PCA them per head, then
  // re-project every stored token to the target ranks.
  std::vector<float> nku(static_cast<size_t>(kv_) * d_ * target_key_rank_);
  std::vector<float> nvu(static_cast<size_t>(kv_) * d_ * target_value_rank_);
  std::vector<kernels::Half> nkl(static_cast<size_t>(kv_) * capacity_ * target_key_rank_);
  std::vector<kernels::Half> nvl(static_cast<size_t>(kv_) * capacity_ * target_value_rank_);
  std::vector<float> basis(static_cast<size_t>(d_) * d_);
  std::vector<float> rows_f(static_cast<size_t>(tokens_) * d_);
  for (int m = 0; m < 2; ++m) {
    const int r = m == 0 ? target_key_rank_ : target_value_rank_;
    const std::vector<kernels::Half>& lat = m == 0 ? key_lat_ : value_lat_;
    std::vector<float>& up = m == 0 ? nku : nvu;
    std::vector<kernels::Half>& nl = m == 0 ? nkl : nvl;
    for (int h = 0; h < kv_; ++h) {
      const kernels::Half* held = lat.data() + static_cast<size_t>(h) * capacity_ * d_;
      for (size_t i = 0; i < rows_f.size(); ++i) rows_f[i] = kernels::HalfToFloat(held[i]);
      const float* rows = rows_f.data();
      KVT_RETURN_IF_ERROR(PcaBasis(rows, tokens_, d_, d_, basis.data()));
      for (int i = 0; i < d_; ++i) {
        for (int j = 0; j < r; ++j) up[(static_cast<size_t>(h) * d_ + i) * r + j] = basis[i * d_ + j];
      }
      for (int64_t t = 0; t < tokens_; ++t) {
        const float* x = rows + t * d_;
        kernels::Half* c = nl.data() + (static_cast<size_t>(h) * capacity_ + t) * r;
        for (int j = 0; j < r; ++j) {
          float s = 0.0f;
          for (int i = 0; i < d_; ++i) s += basis[i * d_ + j] * x[i];
          c[j] = kernels::FloatToHalf(s);
        }
      }
    }
  }
  key_up_.swap(nku);
  value_up_.swap(nvu);
  key_lat_.swap(nkl);
  value_lat_.swap(nvl);
  key_rank_ = target_key_rank_;
  value_rank_ = target_value_rank_;
  calibrated_ = true;
  return Status::Ok();
}

Status LorcCache::Attend(const float* query, float* out) {
  if (query == nullptr || out == nullptr) return InvalidArgument("lorc: null query or output");
  if (tokens_ == 0) return InvalidArgument("lorc: Attend on an empty cache");
  klr::LorcAttentionArgs a;
  a.num_kv_heads = kv_;
  a.num_q_heads = shape_.num_q_heads;
  a.head_dim = d_;
  a.key_rank = key_rank_;
  a.value_rank = value_rank_;
  a.capacity = capacity_;
  a.tokens = tokens_;
  a.key_up = key_up_.data();
  a.value_up = value_up_.data();
  a.key_latents = key_lat_.data();
  a.value_latents = value_lat_.data();
  a.rope = rope_.data();
  a.query = query;
  a.out = out;
  const size_t bytes = klr::LorcAttentionWorkspaceBytes(a);
  if (workspace_.size() * sizeof(float) < bytes) workspace_.resize(bytes / sizeof(float) + 1);
  return klr::LorcAttention(a, workspace_.data(), workspace_.size() * sizeof(float));
}

bool LorcCache::ReconstructKv(float* keys, float* values) const {
  for (int64_t t = 0; t < tokens_; ++t) {
    const float* cs = rope_.data() + t * d_;
    for (int h = 0; h < kv_; ++h) {
      const kernels::Half* ck = key_lat_.data() + (static_cast<size_t>(h) * capacity_ + t) * key_rank_;
      const kernels::Half* cv = value_lat_.data() + (static_cast<size_t>(h) * capacity_ + t) * value_rank_;
      const float* uk = key_up_.data() + static_cast<size_t>(h) * d_ * key_rank_;
      const float* uv = value_up_.data() + static_cast<size_t>(h) * d_ * value_rank_;
      float* k = keys + (static_cast<size_t>(t) * kv_ + h) * d_;
      float* v = values + (static_cast<size_t>(t) * kv_ + h) * d_;
      for (int i = 0; i < d_; ++i) {
        float sk = 0.0f, sv = 0.0f;
        for (int j = 0; j < key_rank_; ++j) sk += uk[i * key_rank_ + j] * kernels::HalfToFloat(ck[j]);
        for (int j = 0; j < value_rank_; ++j) sv += uv[i * value_rank_ + j] * kernels::HalfToFloat(cv[j]);
        k[i] = sk;
        v[i] = sv;
      }
      for (int i = 0; i < d_ / 2; ++i) {  // the interleaved-pair rotation LorcAttention applies
        const float x0 = k[2 * i], x1 = k[2 * i + 1];
        k[2 * i] = x0 * cs[2 * i] - x1 * cs[2 * i + 1];
        k[2 * i + 1] = x0 * cs[2 * i + 1] + x1 * cs[2 * i];
      }
    }
  }
  return true;
}

uint64_t LorcCache::stored_bytes() const {
  return static_cast<uint64_t>(tokens_) *
             (static_cast<uint64_t>(kv_) * (key_rank_ + value_rank_) * sizeof(kernels::Half) + 4) +
         (key_up_.size() + value_up_.size()) * 4;
}

}  // namespace kvt::policies::lowrank
