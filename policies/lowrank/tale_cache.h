// TaleCache — TALE: token-adaptive low-rank KV cache with reconstruction-free attention.
//
// What it stores, per KV head (see host/kernels/lowrank/tale_format.h for the bytes):
//   - a key basis (RoPE-pair-aware by default, or post-RoPE PCA) and a value basis (PCA),
//     [head_dim][head_dim] float32 each, computed once from the prompt (calibration);
//   - compressed tokens as basis coefficients truncated to their rank level (full, d/2, d/4, d/8)
//     and quantized per segment (default bits 8,8,4,4: leading coefficients get more bits);
//   - the recent tokens exact (float32 K/V), between `window` and 2*`window` of them (lazy
//     truncation: a token is compressed only when it leaves the window; the window is flushed in
//     batches of `window` tokens so eviction cost is amortized).
// Rank level of a token = importance quantile: importance = attention the token received, from the
// prompt's observation queries (Compress) and/or from every decode query while it sat in the window,
// normalized by 1/tokens (uniform attention = 1). Fractions of tokens per level default to
// 10% / 20% / 30% / 40% (full, d/2, d/4, d/8), computed over the tokens compressed so far; the first
// `sinks` positions are always full rank.
// Calibration happens at Compress(observation), or, if the caller never compresses, at the first
// Attend that finds more than 2*window exact tokens (importance then comes from decode attention).
// Before calibration every token is exact.
//
// Spec (policies/registry.h): "tale" with keys
//   window=64 (exact recent tokens), sinks=4, basis=pairs|post (default pairs: measured, README.md),
//   f0=0.1,f1=0.2,f2=0.3 (fractions at full, d/2, d/4; d/8 gets the rest),
//   kbits=8-8-4-4, vbits=8-8-4-4 (bits of segments [0,d/8) [d/8,d/4) [d/4,d/2) [d/2,d): 2|4|8|16|32)
//
// Inspection (policies::InspectableCache::ReconstructKv): every token is kept, so K (post-RoPE)
// and V are rebuilt as B c' from each record's decoded coefficients (truncated and quantized), and
// the exact window as is. Records are grouped by rank level, so to put them back in token order
// the cache keeps each record's level: 2 bits per (compressed token, KV head), in eviction order,
// which is append order (the window is evicted oldest first). Those bits are counted in
// stored_bytes (kv_heads/4 bytes per compressed token; attention does not read them).
//
// Threading: one thread at a time (LayerCache contract); Attend runs heads in parallel on oneTBB.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "host/kernels/lowrank/tale_attention.h"
#include "host/kernels/lowrank/tale_format.h"
#include "policies/inspectable_cache.h"
#include "policies/layer_cache.h"
#include "policies/lowrank/tale_basis.h"

namespace kvt::policies::lowrank {

struct TaleOptions {
  int window = 64;
  int sinks = 4;
  std::array<float, 4> fractions = {0.1f, 0.2f, 0.3f, 0.4f};
  std::array<int, 4> key_bits = {8, 8, 4, 4};
  std::array<int, 4> value_bits = {8, 8, 4, 4};
  TaleBasisKind basis = TaleBasisKind::kRopePairs;  // measured best reconstruction-free choice (README)
};

struct TaleStats {
  int64_t compressed_tokens = 0;             // token x head records, all levels
  std::array<int64_t, 4> level_records = {0, 0, 0, 0};
  double avg_rank = 0.0;                     // mean rank over compressed records
  double compressed_bits_per_element = 0.0;  // record bytes * 8 / (records * 2 * head_dim), K and V
  double bits_per_element = 0.0;             // stored_bytes * 8 / (tokens * kv_heads * 2 * head_dim)
};

class TaleCache final : public LayerCache, public InspectableCache {
 public:
  static StatusOr<std::unique_ptr<TaleCache>> Create(const LayerShape& shape,
                                                     const TaleOptions& options);

  Status Append(const AppendBatch& batch) override;
  Status Compress(const Observation& observation) override;
  Status Attend(const float* query, float* out) override;
  int64_t tokens() const override { return tokens_; }
  uint64_t stored_bytes() const override;
  std::string name() const override { return "tale"; }
  // K = B_k c'_k and V = B_v c'_v per compressed (token, head), then the exact window; always true.
  bool ReconstructKv(float* keys, float* values) const override;

  TaleStats stats() const;
  bool calibrated() const { return calibrated_; }

  // Attend in three steps, for a device mirror of the cache (sequence/internal/gpu_tale_layer.cu):
  // Attend(q, out) is PrepareAttend(), TaleAttention over AttentionView() with q / out /
  // window_attention filled in, then AddWindowAttention(window_attention). A caller running the
  // attention elsewhere (TaleAttentionCuda) and feeding its window weights back keeps the cache's
  // state as Attend would, up to the rounding of those weights.
  //   PrepareAttend: what Attend does before attending — calibrate and compress when the cache
  //     was never calibrated and holds more than 2*window exact tokens. INVALID_ARGUMENT when empty.
  //   AttentionView: host pointers into the cache (bases, level records at their capacity, level
  //     counts, exact window), valid until the next non-const call; query, out and
  //     window_attention are left null; max_head_tokens is set.
  //   AddWindowAttention: `window_attention` [kv_heads][window_tokens()] (TaleAttentionArgs::
  //     window_attention of an attention over the current state) accumulated as token importance.
  Status PrepareAttend();
  kernels::lowrank::TaleAttentionArgs AttentionView() const;
  void AddWindowAttention(const float* window_attention);
  int64_t window_tokens() const { return static_cast<int64_t>(exact_pos_.size()); }
  // Tokens evicted from the exact window so far: window row i is token compressed_tokens() + i.
  int64_t compressed_tokens() const { return compressed_; }

  // The cache's state as an image, for suspending a sequence (sequence/internal/method_layer.cc):
  // through any writer/reader with Put/PutVector and Get/GetVector returning Status
  // (sequence/internal/bytes.h). Bases, level records (each head's compacted), the exact window
  // with its importances, the level map and the quantile reservoirs; a cache created with the
  // same shape and options that Loads the image continues bit for bit. Load, into a fresh cache,
  // rejects an image whose sizes disagree with the shape (CORRUPTION); after a failed Load the
  // cache is to be discarded.
  template <typename Writer>
  void Save(Writer& w) const;
  template <typename Reader>
  Status Load(Reader& r);

 private:
  struct Level {
    std::vector<uint8_t> keys, values;  // [kv_heads][capacity][record_bytes]
    std::vector<int32_t> tokens;        // [kv_heads]
    int64_t capacity = 0;
  };

  TaleCache(const LayerShape& shape, const TaleOptions& options, kernels::lowrank::TaleLayout kl,
            kernels::lowrank::TaleLayout vl);
  Status Calibrate();
  void Evict(int64_t count);
  int LevelFor(int head, float relative_importance) const;
  void UpdateThresholds();
  void Grow(Level& level, int l);
  // After Load: every size consistent with the shape and with each other; lays the compacted
  // level records out per head at capacity.
  using LevelBytes = std::array<std::vector<uint8_t>, kernels::lowrank::kTaleLevels>;
  Status CheckLoaded(const LevelBytes& keys, const LevelBytes& values, const std::vector<uint64_t>& reservoir_next);

  LayerShape shape_;
  TaleOptions opt_;
  kernels::lowrank::TaleLayout key_layout_, value_layout_;
  int d_, kv_, group_;
  bool calibrated_ = false;
  int64_t tokens_ = 0;
  std::vector<float> key_basis_, value_basis_;  // [kv][d][d]
  // Exact recent tokens, oldest first.
  std::vector<float> exact_k_, exact_v_;  // [n][kv][d]
  std::vector<int32_t> exact_pos_;        // [n]
  std::vector<float> exact_imp_;          // [n][kv] accumulated attention * tokens at the time
  std::vector<int32_t> exact_obs_;        // [n] queries that observed the token
  std::array<Level, kernels::lowrank::kTaleLevels> levels_;
  // Level of each compressed (token, head) record, 2 bits each, index token * kv + head, in
  // eviction (= append) order: the map from level-grouped records back to tokens.
  std::vector<uint8_t> record_levels_;
  int64_t compressed_ = 0;  // tokens evicted from the window so far
  std::vector<std::vector<float>> reservoir_;  // [kv] relative importances of compressed tokens
  std::vector<size_t> reservoir_next_;
  std::vector<std::array<float, 3>> thresholds_;  // [kv]
  std::vector<float> window_attention_;
  std::vector<float> workspace_;
};

template <typename Writer>
void TaleCache::Save(Writer& w) const {
  w.Put(static_cast<uint8_t>(calibrated_));
  w.Put(tokens_);
  w.Put(compressed_);
  w.PutVector(key_basis_);
  w.PutVector(value_basis_);
  w.PutVector(exact_k_);
  w.PutVector(exact_v_);
  w.PutVector(exact_pos_);
  w.PutVector(exact_imp_);
  w.PutVector(exact_obs_);
  for (int l = 0; l < kernels::lowrank::kTaleLevels; ++l) {
    const Level& level = levels_[l];
    const size_t kb = key_layout_.levels[l].record_bytes, vb = value_layout_.levels[l].record_bytes;
    std::vector<uint8_t> k, v;
    for (int h = 0; h < kv_; ++h) {
      const size_t from = static_cast<size_t>(h) * level.capacity, n = static_cast<size_t>(level.tokens[h]);
      k.insert(k.end(), level.keys.begin() + from * kb, level.keys.begin() + (from + n) * kb);
      v.insert(v.end(), level.values.begin() + from * vb, level.values.begin() + (from + n) * vb);
    }
    w.PutVector(level.tokens);
    w.PutVector(k);
    w.PutVector(v);
  }
  w.PutVector(record_levels_);
  for (const auto& res : reservoir_) w.PutVector(res);
  w.PutVector(std::vector<uint64_t>(reservoir_next_.begin(), reservoir_next_.end()));
  w.PutVector(thresholds_);
}

template <typename Reader>
Status TaleCache::Load(Reader& r) {
  uint8_t calibrated = 0;
  KVT_RETURN_IF_ERROR(r.Get(&calibrated));
  if (calibrated > 1) return Corruption("tale image: bad calibration flag");
  calibrated_ = calibrated != 0;
  KVT_RETURN_IF_ERROR(r.Get(&tokens_));
  KVT_RETURN_IF_ERROR(r.Get(&compressed_));
  KVT_RETURN_IF_ERROR(r.GetVector(&key_basis_));
  KVT_RETURN_IF_ERROR(r.GetVector(&value_basis_));
  KVT_RETURN_IF_ERROR(r.GetVector(&exact_k_));
  KVT_RETURN_IF_ERROR(r.GetVector(&exact_v_));
  KVT_RETURN_IF_ERROR(r.GetVector(&exact_pos_));
  KVT_RETURN_IF_ERROR(r.GetVector(&exact_imp_));
  KVT_RETURN_IF_ERROR(r.GetVector(&exact_obs_));
  LevelBytes keys, values;
  for (int l = 0; l < kernels::lowrank::kTaleLevels; ++l) {
    KVT_RETURN_IF_ERROR(r.GetVector(&levels_[l].tokens));
    KVT_RETURN_IF_ERROR(r.GetVector(&keys[l]));
    KVT_RETURN_IF_ERROR(r.GetVector(&values[l]));
  }
  KVT_RETURN_IF_ERROR(r.GetVector(&record_levels_));
  for (auto& res : reservoir_) KVT_RETURN_IF_ERROR(r.GetVector(&res));
  std::vector<uint64_t> reservoir_next;
  KVT_RETURN_IF_ERROR(r.GetVector(&reservoir_next));
  KVT_RETURN_IF_ERROR(r.GetVector(&thresholds_));
  return CheckLoaded(keys, values, reservoir_next);
}

}  // namespace kvt::policies::lowrank
