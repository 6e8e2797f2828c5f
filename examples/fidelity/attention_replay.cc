#include "examples/fidelity/attention_replay.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "examples/llama/exact_layer_cache.h"
#include "policies/inspectable_cache.h"

namespace kvt::fidelity {
namespace {

// Exact attention importance of tokens 0..t-1 for one KV head: softmax probabilities of each
// query head of its group, averaged. keys [tokens][kv_heads][head_dim], q [q_heads][head_dim].
void Importance(const llama::ModelConfig& c, const float* q, const float* keys, int t, int kv_head,
                std::vector<double>& imp) {
  const int d = c.head_dim(), kv = c.kv_dim(), g = c.group();
  imp.assign(t, 0.0);
  std::vector<double> s(t);
  for (int h = kv_head * g; h < (kv_head + 1) * g; ++h) {
    double mx = -1e300;
    for (int j = 0; j < t; ++j) {
      double dot = 0.0;
      for (int i = 0; i < d; ++i) dot += static_cast<double>(q[h * d + i]) * keys[static_cast<size_t>(j) * kv + kv_head * d + i];
      s[j] = dot / std::sqrt(static_cast<double>(d));
      mx = std::max(mx, s[j]);
    }
    double z = 0.0;
    for (int j = 0; j < t; ++j) z += (s[j] = std::exp(s[j] - mx));
    for (int j = 0; j < t; ++j) imp[j] += s[j] / z / g;
  }
}

double RelFrobenius(const float* got, const float* ref, size_t n) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < n; ++i) {
    num += (static_cast<double>(got[i]) - ref[i]) * (static_cast<double>(got[i]) - ref[i]);
    den += static_cast<double>(ref[i]) * ref[i];
  }
  return den > 0 ? std::sqrt(num / den) : 0.0;
}

}  // namespace

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
  double recall_sum = 0.0, mass_sum = 0.0, k_err_sum = 0.0, v_err_sum = 0.0;
  int64_t sel_count = 0;
  int recon_layers = 0;
  std::vector<double> imp;
  std::vector<int> order;
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
    bool selected = false;
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
      const auto* inspect = dynamic_cast<const policies::InspectableCache*>(caches[l].get());
      if (inspect == nullptr) continue;
      for (int h = 0; h < c.n_kv_heads; ++h) {
        const std::vector<int64_t> sel = inspect->SelectedTokens(h);
        const int k = static_cast<int>(sel.size());
        if (k == 0) break;  // not a selection method
        Importance(c, q, lc.k.data(), t + 1, h, imp);
        order.resize(t + 1);
        std::iota(order.begin(), order.end(), 0);
        const int kk = std::min(k, t + 1);
        std::nth_element(order.begin(), order.begin() + (kk - 1), order.end(),
                         [&](int a, int b) { return imp[a] > imp[b]; });
        const double threshold = imp[order[kk - 1]];
        int hits = 0;
        double mass = 0.0;
        for (int64_t j : sel) {
          if (j < 0 || j > t) continue;
          mass += imp[j];
          hits += imp[j] >= threshold;
        }
        recall_sum += std::min(1.0, static_cast<double>(hits) / kk);
        mass_sum += mass;
        ++sel_count;
        selected = true;
      }
    }
    if (const auto* inspect = dynamic_cast<const policies::InspectableCache*>(caches[l].get())) {
      std::vector<float> rk(static_cast<size_t>(n) * kv), rv(rk.size());
      if (inspect->ReconstructKv(rk.data(), rv.data())) {
        k_err_sum += RelFrobenius(rk.data(), lc.k.data(), rk.size());
        v_err_sum += RelFrobenius(rv.data(), lc.v.data(), rv.size());
        ++recon_layers;
      }
    }
    result.selection_layers += selected;
    result.layer_rel_error[l] = err_sum / (n - prefill);
    result.stored_bytes_per_token += static_cast<double>(caches[l]->stored_bytes()) / n / c.n_layers;
    result.kept_fraction += static_cast<double>(caches[l]->kept_tokens()) / n / c.n_layers;
  }
  result.recon_layers = recon_layers;
  result.selection_samples = sel_count;
  if (sel_count > 0) {
    result.topk_recall = recall_sum / sel_count;
    result.attention_mass = mass_sum / sel_count;
  }
  if (recon_layers > 0) {
    result.key_recon_error = k_err_sum / recon_layers;
    result.value_recon_error = v_err_sum / recon_layers;
  }
  return result;
}

}  // namespace kvt::fidelity
