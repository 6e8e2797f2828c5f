// LoRC factors — per-head truncated SVD of W_k and W_v with a progressive (or uniform) rank schedule.
//
// For layer l and KV head h, W = W_{k,l}[h*d:(h+1)*d][:] ([head_dim][dim]) is factored as
// W = U S V^T (through the eigen-decomposition of W W^T, [d][d]); keeping rank r gives
//   up   = U_r          [head_dim][r]   (orthonormal columns)
//   down = U_r^T W      [r][dim]        (= S_r V_r^T)
// so the latent of a token is c = down x = U_r^T k_pre, and k_pre ~ up c (exact at r = head_dim).
// Keys are factored BEFORE RoPE: the latent cannot be rotated, so the key is rebuilt as
// RoPE(up c) at attention time. Values: attention weights are applied to the latents and `up` runs
// once per query; a full deployment folds value `up` into W_o.
//
// Rank schedule (LoRC, "progressive compression"): per layer the condition number kappa_l
// (geometric mean over heads of sigma_max / sigma_min), the cumulative condition number from l to
// the last layer C_l = prod_{j >= l} kappa_j (sums of logs), normalized s_l = log C_l / log C_0 and
// mapped to [kLorcScheduleFloor, 1] (s_l <- f + (1 - f) s_l, so the deepest layer is not starved),
// and ranks r_l = clamp(round(alpha * s_l * head_dim), 1, head_dim) with alpha chosen so that
// sum_l r_l = round(budget * L * head_dim): shallow layers (whose errors propagate through more
// layers) keep more. kUniform gives every layer the same rank at the same total (remainder to the
// shallowest layers). Keys and values get separate schedules.
//
// File format (little-endian, written by kvt-lorc, read by LoadLorcFactors):
//   char[8] "KVTLORC1"; u32 version=1; u32 num_layers, dim, num_kv_heads, head_dim; u32 schedule
//   (0 progressive, 1 uniform); f64 key_budget, value_budget;
//   u32 key_rank[L], value_rank[L];
//   per layer l: f32 key_singular[kv][d], value_singular[kv][d],
//                f32 key_up[kv][d][rk_l], key_down[kv][rk_l][dim],
//                f32 value_up[kv][d][rv_l], value_down[kv][rv_l][dim];
//   u64 FNV-1a 64 of every preceding byte.
// A short, mismatched or corrupt file is CORRUPTION; never a crash.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status_or.h"

namespace kvt::policies::lowrank {

inline constexpr double kLorcScheduleFloor = 0.4;

enum class LorcSchedule : uint32_t { kProgressive = 0, kUniform = 1 };

StatusOr<LorcSchedule> ParseLorcSchedule(std::string_view word);  // "progressive", "uniform"

struct LorcLayerFactors {
  int key_rank = 0, value_rank = 0;
  std::vector<float> key_singular, value_singular;  // [kv][d], descending per head
  std::vector<float> key_up, key_down;              // [kv][d][rk], [kv][rk][dim]
  std::vector<float> value_up, value_down;          // [kv][d][rv], [kv][rv][dim]
};

struct LorcFactors {
  int num_layers = 0, dim = 0, num_kv_heads = 0, head_dim = 0;
  LorcSchedule schedule = LorcSchedule::kProgressive;
  double key_budget = 0.0, value_budget = 0.0;  // kept fraction of head_dim, over all layers
  std::vector<LorcLayerFactors> layers;
};

// The model's K/V projections: wk, wv [num_layers][num_kv_heads * head_dim][dim] row-major.
struct LorcWeightsView {
  int num_layers = 0, dim = 0, num_kv_heads = 0, head_dim = 0;
  const float* wk = nullptr;
  const float* wv = nullptr;
};

// Ranks per layer for a schedule. `log_cond[l]` = log of layer l's condition number (>= 0).
// INVALID_ARGUMENT for budget outside (0, 1] or empty input.
StatusOr<std::vector<int>> LorcRanks(const std::vector<double>& log_cond, int head_dim,
                                     double budget, LorcSchedule schedule);

// Factors every layer and head. Budgets are fractions of head_dim kept on average.
StatusOr<LorcFactors> ComputeLorcFactors(const LorcWeightsView& weights, double key_budget,
                                         double value_budget, LorcSchedule schedule);

Status SaveLorcFactors(const LorcFactors& factors, const std::string& path);
StatusOr<LorcFactors> LoadLorcFactors(const std::string& path);
// Parses a file image (the loader's core; fuzzable).
StatusOr<LorcFactors> ParseLorcFactors(const uint8_t* data, size_t size);

}  // namespace kvt::policies::lowrank
