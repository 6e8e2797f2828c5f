// MakeLayerCache — the one entry point that builds a KV method's LayerCache from a spec string.
//
// Spec grammar:  name[:key=value[,key=value]...]
//   "full"                                  uncompressed, exact (float32 K/V, exact softmax)
//   "kivi2", "kivi4"                        KIVI: bits=2|4, group=32, residual=128
//   "kivi1", "kivi8"                        same with 1 or 8 bits
//   "tailorkv1", "tailorkv2"                TailorKV: bits=1|2 (dense layers, KIVI group=64 residual=128),
//                                           mode=auto|dense|sparse, tau=0.2, top_frac=0.05,
//                                           obs=32, budget=192, sinks=8, recent=56 (gathered = budget -
//                                           sinks - recent = 128), channels=8 (per 128 of head_dim)
//   "quest"                                 Quest: budget=2048 (tokens), page=16
//   "snapkv"                                SnapKV: budget=1024 (prefix tokens kept per KV head, the
//                                           observation window is kept on top), window=32, pool=7
//   "streamingllm"                          StreamingLLM: sinks=4, recent=1020
// Values: integers, floats, or words; unknown keys and malformed values are INVALID_ARGUMENT,
// unknown names are NOT_FOUND. A table entry may carry default parameters ("kivi2" is the KIVI
// factory with "bits=2"); parameters in the spec override them.
//
// Adding a method: write its factory (signature LayerCacheFactory) in its own folder and add one
// row to the table in policies/registry.cc.
//
// Threading: MakeLayerCache is thread-safe (the table is immutable); each returned cache is used by
// one thread at a time (see layer_cache.h).
#pragma once

#include <memory>
#include <span>
#include <string_view>

#include "common/status_or.h"
#include "policies/layer_cache.h"
#include "policies/method_params.h"

namespace kvt::policies {

using LayerCacheFactory = StatusOr<std::unique_ptr<LayerCache>> (*)(MethodParams& params,
                                                                     const LayerShape& shape);

struct MethodEntry {
  std::string_view name;      // what a spec names: "kivi2"
  LayerCacheFactory make;
  std::string_view defaults;  // parameters applied before the spec's own: "bits=2"
  std::string_view help;      // one line for --help listings
};

// Builds a cache for one layer of one sequence. Validates the shape (positive sizes, q_heads a
// multiple of kv_heads) and the parameters; never aborts on bad input.
StatusOr<std::unique_ptr<LayerCache>> MakeLayerCache(std::string_view method_spec,
                                                     const LayerShape& shape);

// Every registered method, in table order.
std::span<const MethodEntry> RegisteredMethods();

}  // namespace kvt::policies
