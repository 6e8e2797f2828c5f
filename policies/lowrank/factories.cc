#include "policies/lowrank/factories.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <string>

#include "policies/lowrank/internal/checks.h"
#include "policies/lowrank/kvcompose_cache.h"
#include "policies/lowrank/lorc_cache.h"
#include "policies/lowrank/tale_cache.h"

namespace kvt::policies::lowrank {

StatusOr<std::unique_ptr<LayerCache>> MakeTaleLayerCache(MethodParams& params, const LayerShape& shape) {
  TaleOptions o;
  KVT_ASSIGN_OR_RETURN(o.window, params.Int("window", o.window, 1, 1 << 20));
  KVT_ASSIGN_OR_RETURN(o.sinks, params.Int("sinks", o.sinks, 0, 1 << 20));
  KVT_ASSIGN_OR_RETURN(const std::string basis, params.Word("basis", "pairs"));
  KVT_ASSIGN_OR_RETURN(o.basis, ParseTaleBasisKind(basis));
  KVT_ASSIGN_OR_RETURN(o.fractions[0], params.Float("f0", o.fractions[0], 0.0f, 1.0f));
  KVT_ASSIGN_OR_RETURN(o.fractions[1], params.Float("f1", o.fractions[1], 0.0f, 1.0f));
  KVT_ASSIGN_OR_RETURN(o.fractions[2], params.Float("f2", o.fractions[2], 0.0f, 1.0f));
  o.fractions[3] = 1.0f - o.fractions[0] - o.fractions[1] - o.fractions[2];
  if (o.fractions[3] < -1e-4f) return InvalidArgument("tale: f0 + f1 + f2 must not exceed 1");
  o.fractions[3] = std::max(0.0f, o.fractions[3]);
  KVT_ASSIGN_OR_RETURN(const std::string kbits, params.Word("kbits", "8-8-4-4"));
  KVT_ASSIGN_OR_RETURN(o.key_bits, internal::ParseBits(kbits, "kbits"));
  KVT_ASSIGN_OR_RETURN(const std::string vbits, params.Word("vbits", "8-8-4-4"));
  KVT_ASSIGN_OR_RETURN(o.value_bits, internal::ParseBits(vbits, "vbits"));
  KVT_RETURN_IF_ERROR(params.Finish());
  KVT_ASSIGN_OR_RETURN(auto cache, TaleCache::Create(shape, o));
  return std::unique_ptr<LayerCache>(std::move(cache));
}

StatusOr<std::unique_ptr<LayerCache>> MakeLorcLayerCache(MethodParams& params, const LayerShape& shape) {
  KVT_ASSIGN_OR_RETURN(const std::string path, params.Word("factors", ""));
  if (!path.empty()) {
    KVT_RETURN_IF_ERROR(params.Finish());
    // Factor files are loaded once per process and shared by every layer and sequence.
    static std::mutex mu;
    static std::map<std::string, std::shared_ptr<const LorcFactors>> loaded;
    std::shared_ptr<const LorcFactors> factors;
    {
      std::lock_guard<std::mutex> lock(mu);
      auto it = loaded.find(path);
      if (it == loaded.end()) {
        KVT_ASSIGN_OR_RETURN(LorcFactors f, LoadLorcFactors(path));
        it = loaded.emplace(path, std::make_shared<const LorcFactors>(std::move(f))).first;
      }
      factors = it->second;
    }
    KVT_ASSIGN_OR_RETURN(auto cache, LorcCache::FromFactors(shape, std::move(factors)));
    return std::unique_ptr<LayerCache>(std::move(cache));
  }
  KVT_ASSIGN_OR_RETURN(const float kratio, params.Float("kratio", 0.5f, 1e-6f, 1.0f));
  KVT_ASSIGN_OR_RETURN(const float vratio, params.Float("vratio", 0.5f, 1e-6f, 1.0f));
  KVT_ASSIGN_OR_RETURN(const int calib, params.Int("calib", 64, 1, 1 << 24));
  KVT_RETURN_IF_ERROR(params.Finish());
  KVT_ASSIGN_OR_RETURN(auto cache, LorcCache::Calibrated(shape, kratio, vratio, calib));
  return std::unique_ptr<LayerCache>(std::move(cache));
}

namespace {

// Hands one planner to the layers of a sequence created in order on this thread.
struct PlannerHandoff {
  std::shared_ptr<KvComposePlanner> planner;
  int next_layer = 0;
  int num_layers = 0;
};
thread_local PlannerHandoff t_handoff;

}  // namespace

StatusOr<KvComposeSpec> ParseKvComposeSpec(MethodParams& params) {
  KvComposeSpec spec;
  KVT_ASSIGN_OR_RETURN(spec.options.ratio, params.Float("ratio", spec.options.ratio, 1e-6f, 1.0f));
  KVT_ASSIGN_OR_RETURN(const int structured, params.Int("structured", 1, 0, 1));
  KVT_ASSIGN_OR_RETURN(const int global, params.Int("global", 1, 0, 1));
  KVT_RETURN_IF_ERROR(params.Finish());
  spec.options.structured = structured != 0;
  spec.global = global != 0;
  return spec;
}

StatusOr<std::unique_ptr<LayerCache>> MakeKvComposeLayerCache(MethodParams& params,
                                                              const LayerShape& shape) {
  KVT_ASSIGN_OR_RETURN(const KvComposeSpec spec, ParseKvComposeSpec(params));
  KVT_RETURN_IF_ERROR(internal::CheckShape(shape, "kvcompose"));
  const KvComposeOptions& o = spec.options;
  std::shared_ptr<KvComposePlanner> planner;
  if (spec.global && shape.num_layers > 1) {
    PlannerHandoff& h = t_handoff;
    if (shape.layer == 0) {
      h.planner = std::make_shared<KvComposePlanner>(shape.num_layers, shape.num_kv_heads, o.ratio,
                                                     o.structured);
      h.next_layer = 0;
      h.num_layers = shape.num_layers;
    }
    if (h.planner == nullptr || h.next_layer != shape.layer || h.num_layers != shape.num_layers) {
      return InvalidArgument(
          "kvcompose: with global=1 the layers of a sequence must be created 0..L-1 in order on one "
          "thread (or use MakeKvComposeCaches, or global=0)");
    }
    planner = h.planner;
    if (++h.next_layer == h.num_layers) h.planner.reset();
  }
  KVT_ASSIGN_OR_RETURN(auto cache, KvComposeCache::Create(shape, o, std::move(planner)));
  return std::unique_ptr<LayerCache>(std::move(cache));
}

}  // namespace kvt::policies::lowrank
