// SequencePlan — how each layer of one model keeps its KV in the sequence plane, and its text form.
//
// A plan is built once per model by the Planner (planner.h) from a calibration run, saved next to
// the model, and handed to Sequence::Open for every sequence of that model.
//
// Layer kinds:
//   full     fp16 K/V resident (the baseline; "GPU" resident on the GPU path)
//   offload  fp16 K/V in the host tier; every Attend fetches the whole layer (full-offload baseline)
//   kivi     TailorKV dense layer: KIVI-quantized K/V resident. bits=1|2|4|8 (2), group=32 tokens
//            per key scale (multiple of 8), residual=128 fp16 tokens (multiple of group)
//   sparse   TailorKV sparse layer: fp16 K/V + a transposed key copy in the host tier; per step
//            critical channels score the tokens and the top-k are gathered. budget=192, sinks=8,
//            recent=56 (gathered = budget - sinks - recent), channels=8 (critical channels per KV
//            head, absolute), scorer=channels|sketch (channels: the published pipeline, channel
//            rows fetched from the host tier each step; sketch: score from a resident low-bit key
//            copy, nothing fetched to score), sketch_bits=2, sketch_group=64 (tokens per scale;
//            candidates past the last complete group have no sketch yet and are always kept).
//   tale     TALE (policies/lowrank/tale_cache.h): the layer is a TaleCache built by the policies
//            registry from the line's parameters, which are TALE's spec keys (window, sinks,
//            basis, f0, f1, f2, kbits, vbits), kept as text in LayerPlan::method_params.
//   kvcompose  KVCompose (policies/lowrank/kvcompose_cache.h): ratio=0.5, structured=1,
//            global=0|1 (default 0: each layer its own budget round(ratio * tokens); 1: the
//            cross-layer budget, one planner over the plan's global=1 kvcompose layers, owned by
//            the Sequence — sequence/internal/method_cache.h; those layers must agree on ratio
//            and structured).
//
// Text form (one layer per line, '#' starts a comment, parameters as in policies/method_params.h):
//   kvt-sequence-plan 1
//   model stories260K
//   shape layers=5,q_heads=8,kv_heads=4,head_dim=8
//   layer 0 kivi bits=2,group=32,residual=128,score=0.41   # score: the planner's dense preference
//   layer 1 sparse budget=96,sinks=4,recent=32,channels=2,scorer=channels
//   layer 2 tale window=64,sinks=4
//   layer 3 kvcompose ratio=0.5
// Thread-safe: plain values.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status_or.h"
#include "host/kernels/attention_shape.h"

namespace kvt::sequence {

enum class LayerKind { kFull, kOffload, kKivi, kSparse, kTale, kKvCompose };
// The statistics slots (protocol/sequence_stats.h policies, kvt_layer_policy_t, the transfer
// scheduler's per-kind times): full, offload, kivi, sparse. The shared-memory layout has exactly
// these four, so tale and kvcompose layers are counted in the slot of the resident layer their
// storage resembles: tale (quantized coefficients, resident) under kivi, kvcompose (fp16 kept
// tokens, resident) under full. Neither moves data through the transfer scheduler.
inline constexpr int kLayerKinds = 4;
int StatsSlot(LayerKind kind);  // in [0, kLayerKinds)
enum class Scorer { kChannels, kSketch };

struct LayerPlan {
  LayerKind kind = LayerKind::kFull;
  // kivi
  int bits = 2, group = 32, residual = 128;
  // sparse
  int budget = 192, sinks = 8, recent = 56, channels = 8;
  Scorer scorer = Scorer::kChannels;
  int sketch_bits = 2, sketch_group = 64;
  // tale, kvcompose: the method's spec keys as written in the plan ("window=64,sinks=4"), without
  // score; validated by building the cache (policies/registry.h) in SequencePlan::Validate.
  std::string method_params;
  // Informational: the dense-preference score the planner measured (negative: not measured).
  float score = -1.0f;

  int gathered() const { return budget - sinks - recent; }
};

struct SequencePlan {
  std::string model;
  int q_heads = 32, kv_heads = 8, head_dim = 128;
  std::vector<LayerPlan> layers;

  int num_layers() const { return static_cast<int>(layers.size()); }
  kernels::AttentionShape shape() const { return {q_heads, kv_heads, head_dim}; }
  // Shapes, ranges and per-kind constraints; INVALID_ARGUMENT names the layer.
  Status Validate() const;
};

std::string_view LayerKindName(LayerKind kind);

// One layer's spec, "kivi:bits=1" / "sparse:budget=96,scorer=sketch" / "full" / "offload" /
// "tale:window=64" / "kvcompose:ratio=0.25".
StatusOr<LayerPlan> ParseLayerSpec(std::string_view spec);
std::string FormatLayerSpec(const LayerPlan& layer);  // "kind params" separated by one space
// tale / kvcompose: the policies registry spec (policies/registry.h) the layer's cache is built
// from, "tale:window=64" / "kvcompose:global=0,ratio=0.5" (global=0 unless the plan line sets
// global); empty for the other kinds. A global=1 layer is built around the sequence's planner, not
// from this spec alone (its spec builds a layer with a private budget).
std::string MethodSpec(const LayerPlan& layer);
// A kvcompose layer with global=1 (the sequence's cross-layer budget).
bool KvComposeGlobal(const LayerPlan& layer);

// Every layer the same spec.
StatusOr<SequencePlan> UniformPlan(std::string_view spec, int layers, const kernels::AttentionShape& shape,
                                   std::string model = "");

std::string FormatPlan(const SequencePlan& plan);
StatusOr<SequencePlan> ParsePlan(std::string_view text);  // validated
Status SavePlan(const SequencePlan& plan, const std::string& path);
StatusOr<SequencePlan> LoadPlan(const std::string& path);

}  // namespace kvt::sequence
