// KvComposeCache — KVCompose: attention-guided composite tokens with a global, cross-layer budget.
//
// Until the plan is applied the cache is exact. Compress(observation) scores the prompt tokens
// (host/kernels/lowrank/observed_attention_scores.h, max over the observation queries, mean over
// each KV head's query heads; then every head's score gets the mean over KV heads added, which
// aligns heads on tokens that matter to the whole layer) and submits them to the sequence's
// KvComposePlanner. Once every layer has submitted, each layer's cache keeps, per head, that head's
// top-count tokens (count from the plan; the same for every head in the structured/composite
// variant) — a dense per-head cache of post-RoPE keys and values (the engine applied RoPE at each
// token's true position, so positions need not be kept), plus each kept token's append index
// (int32, for eviction bookkeeping and InspectableCache::SelectedTokens; counted in stored_bytes). Tokens appended later (decode) go to
// every head unchanged. K and V are stored in fp16, as a serving cache keeps them; attention is
// exact over what is kept (DenseAttentionF16, fp32 softmax), so ratio=1 is full attention over
// the fp16 cache.
//
// Wiring:
//   - MakeKvComposeCaches(shape, options): the L caches of one sequence sharing one planner (the
//     method as published). Call Compress on every layer after prefill; decode as usual.
//   - Registry spec "kvcompose:ratio=0.5,structured=1,global=1": with global=1 the factory must be
//     called for layers 0, 1, ..., L-1 of one sequence in order on one thread (what an engine's
//     per-sequence loop does); it shares one planner among them (a thread-local hand-off, reset at
//     layer 0). global=0 gives every layer its own budget round(ratio * tokens) (no cross-layer
//     allocation).
// Threading: a cache is used by one thread at a time; the planner is thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "host/kernels/half.h"
#include "policies/inspectable_cache.h"
#include "policies/layer_cache.h"
#include "policies/lowrank/kvcompose_planner.h"

namespace kvt::policies::lowrank {

struct KvComposeOptions {
  float ratio = 0.5f;       // kept fraction of prompt tokens, over all layers (rho)
  bool structured = true;   // composite tokens; false: unstructured per-head counts
};

class KvComposeCache final : public LayerCache, public InspectableCache {
 public:
  // `planner` shared by the sequence's layers; null: a private single-layer budget.
  static StatusOr<std::unique_ptr<KvComposeCache>> Create(const LayerShape& shape,
                                                          const KvComposeOptions& options,
                                                          std::shared_ptr<KvComposePlanner> planner);

  Status Append(const AppendBatch& batch) override;
  Status Compress(const Observation& observation) override;
  Status Attend(const float* query, float* out) override;
  int64_t tokens() const override { return tokens_; }
  int64_t kept_tokens() const override;  // mean over heads
  uint64_t stored_bytes() const override;
  std::string name() const override { return "kvcompose"; }
  std::vector<int64_t> SelectedTokens(int kv_head) const override;  // what head kv_head keeps

  bool plan_applied() const { return applied_; }
  // Submitted to a shared planner that has not decided yet (Save is UNSUPPORTED meanwhile).
  bool plan_pending() const { return submitted_ && !applied_; }
  std::vector<int64_t> head_tokens() const { return head_tokens_; }
  // Applies the shared planner's decision now if it is ready (otherwise a no-op); the cache does it
  // by itself at its next Append or Attend, with the same result. Lets a sequence that holds every
  // layer settle them all once the last one has compressed (sequence/internal/method_cache.h).
  Status ApplyPendingPlan() { return MaybeApply(); }

  // What attention reads, for a device mirror (sequence/internal/gpu_kvcompose_layer.cu): fp16 K/V
  // [kv_heads][capacity()][head_dim], head h's first head_token_counts()[h] slots in use; valid
  // until the next non-const call. Appends only fill slots past the counts; layout_version()
  // changes whenever anything else moves (growth, the plan applied, Load), so a mirror that saw
  // the same version copies only the new slots.
  const kernels::Half* key_data() const { return keys_.data(); }
  const kernels::Half* value_data() const { return values_.data(); }
  int64_t capacity() const { return capacity_; }
  const std::vector<int64_t>& head_token_counts() const { return head_tokens_; }
  uint64_t layout_version() const { return layout_version_; }

  // The cache's state as an image, for suspending a sequence (sequence/internal/method_layer.cc):
  // through any writer/reader with Put/PutVector and Get/GetVector returning Status
  // (sequence/internal/bytes.h). A cache created with the same shape and options that Loads the
  // image continues bit for bit. Save is UNSUPPORTED while a shared (global=1) planner's plan is
  // pending (submitted, not yet applied); a private planner applies at Compress, so never then.
  // Load, into a fresh cache, rejects an image whose sizes disagree with the shape (CORRUPTION);
  // after a failed Load the cache is to be discarded.
  template <typename Writer>
  Status Save(Writer& w) const;
  template <typename Reader>
  Status Load(Reader& r);

 private:
  // After Load: sizes consistent with the shape; lays the compacted heads out at capacity.
  Status Unpack(std::vector<kernels::Half> keys, std::vector<kernels::Half> values, std::vector<int32_t> index);

  KvComposeCache(const LayerShape& shape, const KvComposeOptions& options,
                 std::shared_ptr<KvComposePlanner> planner);
  Status MaybeApply();
  void Reserve(int64_t per_head);

  LayerShape shape_;
  KvComposeOptions opt_;
  std::shared_ptr<KvComposePlanner> planner_;
  int planner_layer_;
  int d_, kv_;
  int64_t tokens_ = 0;
  int64_t capacity_ = 0;
  std::vector<kernels::Half> keys_, values_;  // [kv][capacity][d], fp16
  std::vector<int32_t> token_index_;          // [kv][capacity], append index of each kept token
  std::vector<int64_t> head_tokens_;     // [kv]
  std::vector<float> scores_;            // [kv][scored tokens] until applied
  int64_t scored_ = 0;
  bool submitted_ = false, applied_ = false;
  uint64_t layout_version_ = 0;
  std::vector<float> workspace_;
};

template <typename Writer>
Status KvComposeCache::Save(Writer& w) const {
  if (submitted_ && !applied_) return Unsupported("kvcompose: cannot save while the cross-layer plan is pending");
  // Each head's kept tokens, compacted (head after head).
  std::vector<kernels::Half> k, v;
  std::vector<int32_t> idx;
  for (int h = 0; h < kv_; ++h) {
    const size_t from = static_cast<size_t>(h) * capacity_, n = static_cast<size_t>(head_tokens_[h]);
    k.insert(k.end(), keys_.begin() + from * d_, keys_.begin() + (from + n) * d_);
    v.insert(v.end(), values_.begin() + from * d_, values_.begin() + (from + n) * d_);
    idx.insert(idx.end(), token_index_.begin() + from, token_index_.begin() + from + n);
  }
  w.Put(tokens_);
  w.Put(static_cast<uint8_t>(submitted_));
  w.Put(static_cast<uint8_t>(applied_));
  w.PutVector(head_tokens_);
  w.PutVector(k);
  w.PutVector(v);
  w.PutVector(idx);
  return Status::Ok();
}

template <typename Reader>
Status KvComposeCache::Load(Reader& r) {
  uint8_t submitted = 0, applied = 0;
  std::vector<kernels::Half> k, v;
  std::vector<int32_t> idx;
  KVT_RETURN_IF_ERROR(r.Get(&tokens_));
  KVT_RETURN_IF_ERROR(r.Get(&submitted));
  KVT_RETURN_IF_ERROR(r.Get(&applied));
  KVT_RETURN_IF_ERROR(r.GetVector(&head_tokens_));
  KVT_RETURN_IF_ERROR(r.GetVector(&k));
  KVT_RETURN_IF_ERROR(r.GetVector(&v));
  KVT_RETURN_IF_ERROR(r.GetVector(&idx));
  if (submitted > 1 || applied != submitted) return Corruption("kvcompose image: bad state flags");
  submitted_ = applied_ = applied != 0;
  return Unpack(std::move(k), std::move(v), std::move(idx));
}

// The caches of one sequence (layers 0 .. shape.num_layers-1, shape.layer ignored) sharing a planner.
StatusOr<std::vector<std::unique_ptr<LayerCache>>> MakeKvComposeCaches(
    const LayerShape& shape, const KvComposeOptions& options);

}  // namespace kvt::policies::lowrank
