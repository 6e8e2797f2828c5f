#include "policies/registry.h"

#include <string>

#include "host/kernels/cpu_requirements.h"
#include "policies/baselines/quest_cache.h"
#include "policies/baselines/snapkv_cache.h"
#include "policies/baselines/streaming_llm_cache.h"
#include "policies/full_cache.h"
#include "policies/kivi/kivi_cache.h"
#include "policies/lowrank/factories.h"
#include "policies/tailorkv/tailorkv_cache.h"

namespace kvt::policies {
namespace {

// One row per method name. Adding a method: include its header above and add its row here.
constexpr MethodEntry kMethods[] = {
    {"full", MakeFullCache, "", "uncompressed float32 K/V, exact attention"},
    {"kivi1", MakeKiviCache, "bits=1", "KIVI 1-bit: group=32 residual=128"},
    {"kivi2", MakeKiviCache, "bits=2", "KIVI 2-bit: group=32 residual=128"},
    {"kivi4", MakeKiviCache, "bits=4", "KIVI 4-bit: group=32 residual=128"},
    {"kivi8", MakeKiviCache, "bits=8", "KIVI 8-bit: group=32 residual=128"},
    {"tailorkv1", MakeTailorKvCache, "bits=1", "TailorKV, 1-bit dense layers: mode tau budget sinks recent channels"},
    {"tailorkv2", MakeTailorKvCache, "bits=2", "TailorKV, 2-bit dense layers: mode tau budget sinks recent channels"},
    {"quest", MakeQuestCache, "", "Quest page selection: budget=2048 page=16"},
    {"snapkv", MakeSnapKvCache, "", "SnapKV prompt compression: budget=1024 window=32 pool=7"},
    {"streamingllm", MakeStreamingLlmCache, "", "StreamingLLM sinks + window: sinks=4 recent=1020"},
    {"tale", lowrank::MakeTaleLayerCache, "", "TALE low-rank, reconstruction-free: window=64 sinks=4 basis=pairs kbits=8-8-4-4"},
    {"lorc", lowrank::MakeLorcLayerCache, "", "LoRC rank-r latents: factors=FILE (kvt-lorc) or kratio=0.5 vratio=0.5"},
    {"kvcompose", lowrank::MakeKvComposeLayerCache, "", "KVCompose composite tokens: ratio=0.5 structured=1 global=1"},
};

}  // namespace

std::span<const MethodEntry> RegisteredMethods() { return kMethods; }

StatusOr<std::unique_ptr<LayerCache>> MakeLayerCache(std::string_view method_spec,
                                                     const LayerShape& shape) {
  KVT_RETURN_IF_ERROR(kernels::RequireHostKernelCpu());
  const size_t colon = method_spec.find(':');
  const std::string_view name = method_spec.substr(0, colon);
  const std::string_view args = colon == std::string_view::npos ? std::string_view() : method_spec.substr(colon + 1);
  for (const MethodEntry& m : kMethods) {
    if (m.name != name) continue;
    KVT_ASSIGN_OR_RETURN(MethodParams params, MethodParams::Parse(m.defaults));
    KVT_RETURN_IF_ERROR(params.Merge(args));
    auto cache = m.make(params, shape);
    if (!cache.ok()) return cache.status().WithContext(std::string(name));
    return cache;
  }
  std::string known;
  for (const MethodEntry& m : kMethods) known += (known.empty() ? "" : ", ") + std::string(m.name);
  return NotFound("unknown KV method '" + std::string(name) + "' (known: " + known + ")");
}

}  // namespace kvt::policies
