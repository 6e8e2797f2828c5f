// LorcCache — LoRC's KV cache: each token kept as rank-r latents of its pre-RoPE key and its value.
//
//   key latent   ck = Uk^T k_pre   [key_rank]     (k_pre from AppendBatch::keys_pre_rope)
//   value latent cv = Uv^T v       [value_rank]
// Attention rebuilds each key before RoPE and rotates it at the token's true position
// (RoPE(Uk ck), LayerShape::rope); values stay latent and Uv is applied once per query
// (host/kernels/lowrank/lorc_attention.h). Latents are stored as fp16 (projections and attention
// run in float32; each latent is rounded to nearest once when stored, relative error <= 2^-11 per
// element, so ||c' - c||_2 <= 2^-11 ||c||_2 and, Uk/Uv having orthonormal columns, the rebuilt
// vector moves by at most 2^-11 of the token's norm). Tokens appended before calibration are
// rounded twice (raw, then projected): <= 2^-10. stored_bytes counts latents (2 bytes each) and
// positions (the cos/sin table is a cache of the positions, like the engine's own RoPE table, and
// is not counted), plus the per-layer factors Uk, Uv (float32).
//
// Two sources of Uk/Uv:
//   FromFactors: the offline SVD of W_k / W_v written by kvt-lorc (policies/lowrank/lorc_factors.h),
//     with that file's per-layer ranks (progressive or uniform schedule). Spec:
//     "lorc:factors=/path/model.lorc".
//   Calibrated: no weights at hand; Uk/Uv are the PCA of the prompt's pre-RoPE keys / values (the
//     same subspace the weights' SVD spans, weighted by the data) at uniform rank
//     round(ratio * head_dim). Tokens are exact until calibration (at Compress, or once `calib`
//     tokens are held). Spec: "lorc:kratio=0.5,vratio=0.5,calib=64".
// Threading: one thread at a time; Attend may use oneTBB.
#pragma once

#include <memory>
#include <vector>

#include "host/kernels/half.h"
#include "policies/inspectable_cache.h"
#include "policies/layer_cache.h"
#include "policies/lowrank/lorc_factors.h"

namespace kvt::policies::lowrank {

class LorcCache final : public LayerCache, public InspectableCache {
 public:
  static StatusOr<std::unique_ptr<LorcCache>> FromFactors(const LayerShape& shape,
                                                          std::shared_ptr<const LorcFactors> factors);
  static StatusOr<std::unique_ptr<LorcCache>> Calibrated(const LayerShape& shape, float key_ratio,
                                                         float value_ratio, int calib_tokens);

  Status Append(const AppendBatch& batch) override;
  Status Compress(const Observation& observation) override;
  Status Attend(const float* query, float* out) override;
  int64_t tokens() const override { return tokens_; }
  uint64_t stored_bytes() const override;
  std::string name() const override { return "lorc"; }
  // Every token is kept: K = RoPE(Uk ck) at the token's position, V = Uv cv, as attention sees them.
  bool ReconstructKv(float* keys, float* values) const override;

  int key_rank() const { return key_rank_; }
  int value_rank() const { return value_rank_; }

 private:
  explicit LorcCache(const LayerShape& shape);
  void Reserve(int64_t tokens);
  Status Calibrate();

  LayerShape shape_;
  int d_, kv_;
  int key_rank_ = 0, value_rank_ = 0;
  bool calibrated_ = true;
  int target_key_rank_ = 0, target_value_rank_ = 0, calib_tokens_ = 0;
  std::vector<float> key_up_, value_up_;            // [kv][d][rank]
  std::vector<kernels::Half> key_lat_, value_lat_;  // [kv][capacity][rank], fp16
  std::vector<float> rope_;                         // [capacity][d]: (cos, sin) per pair
  std::vector<int32_t> positions_;
  int64_t capacity_ = 0;
  int64_t tokens_ = 0;
  std::vector<float> workspace_;
};

}  // namespace kvt::policies::lowrank
