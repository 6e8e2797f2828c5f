#include "examples/fidelity/attention_replay.h"

#include <cmath>

#include "examples/llama/exact_layer_cache.h"

namespace kvt::fidelity {

StatusOr<ReplayResult> ReplayAttention(const llama::Transformer& model,
                                       const llama::ActivationCapture& capture,
                                       const llama::CacheFactory& factory, int prefill,
                                       int observation) {
  const llama::ModelConfig& c = model.config();
  const int n = static_cast<int>(capture.tokens.size());
  if (prefill < 1 || prefill >= n) return InvalidArgument("replay: prefill must be in [1, tokens)");
  std::vector<std::unique_ptr<policies::LayerCache>> caches;
  for (int l = 0; l < c.n_layers; ++l) {
    KVT_ASSIGN_OR_RETURN(auto cache, factory(model.ShapeForLayer(l, n)));
    caches.push_back(std::move(cache));
  }
  std::vector<int32_t> positions(n);
  for (int i = 0; i < n; ++i) positions[i] = i;
  const int kv = c.kv_dim(), qd = c.dim;
  ReplayResult result;
  result.layer_rel_error.assign(c.n_layers, 0.0);
  result.decode_steps = n - prefill;
  std::vector<float> out(qd), ref(qd);
  for (int l = 0; l < c.n_layers; ++l) {
    const llama::LayerCapture& lc = capture.layers[l];
    llama::ExactLayerCache exact(model.ShapeForLayer(l, n));
    auto append = [&](policies::LayerCache& cache, int from, int count) {
      policies::AppendBatch b;
      b.keys = lc.k.data() + static_cast<size_t>(from) * kv;
      b.keys_pre_rope = lc.k_pre.data() + static_cast<size_t>(from) * kv;
      b.values = lc.v.data() + static_cast<size_t>(from) * kv;
      b.positions = positions.data() + from;
      b.tokens = count;
      return cache.Append(b);
    };
    KVT_RETURN_IF_ERROR(append(*caches[l], 0, prefill));
    KVT_RETURN_IF_ERROR(append(exact, 0, prefill));
    policies::Observation obs;
    obs.window = std::min(observation, prefill);
    obs.queries = lc.q.data() + static_cast<size_t>(prefill - obs.window) * qd;
    if (obs.window > 0) KVT_RETURN_IF_ERROR(caches[l]->Compress(obs));
    double err_sum = 0.0;
    for (int t = prefill; t < n; ++t) {
      KVT_RETURN_IF_ERROR(append(*caches[l], t, 1));
      KVT_RETURN_IF_ERROR(append(exact, t, 1));
      const float* q = lc.q.data() + static_cast<size_t>(t) * qd;
      KVT_RETURN_IF_ERROR(caches[l]->Attend(q, out.data()));
      KVT_RETURN_IF_ERROR(exact.Attend(q, ref.data()));
      double num = 0.0, den = 0.0;
      for (int i = 0; i < qd; ++i) {
        num += (static_cast<double>(out[i]) - ref[i]) * (static_cast<double>(out[i]) - ref[i]);
        den += static_cast<double>(ref[i]) * ref[i];
      }
      err_sum += den > 0 ? std::sqrt(num / den) : 0.0;
    }
    result.layer_rel_error[l] = err_sum / (n - prefill);
    result.stored_bytes_per_token += static_cast<double>(caches[l]->stored_bytes()) / n / c.n_layers;
    result.kept_fraction += static_cast<double>(caches[l]->kept_tokens()) / n / c.n_layers;
  }
  return result;
}

}  // namespace kvt::fidelity
