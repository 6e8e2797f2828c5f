#include "examples/llama/model_weights.h"

#include <cmath>
#include <string>

namespace kvt::llama {

void ModelWeights::Allocate(const ModelConfig& c, bool shared_classifier) {
  config = c;
  const size_t d = c.dim, h = c.hidden_dim, L = c.n_layers, kv = c.kv_dim(), v = c.vocab_size;
  tok_emb.assign(v * d, 0.0f);
  rms_att.assign(L * d, 0.0f);
  wq.assign(L * d * d, 0.0f);
  wk.assign(L * kv * d, 0.0f);
  wv.assign(L * kv * d, 0.0f);
  wo.assign(L * d * d, 0.0f);
  rms_ffn.assign(L * d, 0.0f);
  w1.assign(L * h * d, 0.0f);
  w2.assign(L * d * h, 0.0f);
  w3.assign(L * h * d, 0.0f);
  rms_final.assign(d, 0.0f);
  if (shared_classifier) {
    wcls.clear();
  } else {
    wcls.assign(v * d, 0.0f);
  }
}

Status ModelWeights::Validate() const {
  KVT_RETURN_IF_ERROR(config.Validate());
  const size_t d = config.dim, h = config.hidden_dim, L = config.n_layers, kv = config.kv_dim(),
               v = config.vocab_size;
  struct Item {
    const char* name;
    const std::vector<float>* t;
    size_t want;
  };
  const Item items[] = {{"tok_emb", &tok_emb, v * d}, {"rms_att", &rms_att, L * d},
                        {"wq", &wq, L * d * d},       {"wk", &wk, L * kv * d},
                        {"wv", &wv, L * kv * d},      {"wo", &wo, L * d * d},
                        {"rms_ffn", &rms_ffn, L * d}, {"w1", &w1, L * h * d},
                        {"w2", &w2, L * d * h},       {"w3", &w3, L * h * d},
                        {"rms_final", &rms_final, d}};
  for (const Item& it : items) {
    if (it.t->size() != it.want) {
      return InvalidArgument(std::string("weights: ") + it.name + " has " +
                             std::to_string(it.t->size()) + " values, expected " +
                             std::to_string(it.want));
    }
    for (float x : *it.t) {
      if (!std::isfinite(x)) return Corruption(std::string("weights: ") + it.name + " holds a non-finite value");
    }
  }
  if (!wcls.empty() && wcls.size() != v * d) {
    return InvalidArgument("weights: classifier has " + std::to_string(wcls.size()) +
                           " values, expected " + std::to_string(v * d));
  }
  for (float x : wcls) {
    if (!std::isfinite(x)) return Corruption("weights: classifier holds a non-finite value");
  }
  return Status::Ok();
}

}  // namespace kvt::llama
