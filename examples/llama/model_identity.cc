#include "examples/llama/model_identity.h"

#include <xxhash.h>

#include <cinttypes>
#include <cstdio>

namespace kvt::llama {
namespace {

void Update(XXH3_state_t* s, const std::vector<float>& t) {
  const uint64_t n = t.size();
  XXH3_128bits_update(s, &n, sizeof n);  // tensor boundaries are part of the identity
  if (n > 0) XXH3_128bits_update(s, t.data(), n * sizeof(float));
}

}  // namespace

std::string ModelKvIdentity(const ModelWeights& w) {
  const ModelConfig& c = w.config;
  XXH3_state_t* s = XXH3_createState();
  if (s == nullptr) return {};  // allocation failure: an empty id, which namespace_open rejects
  XXH3_128bits_reset(s);
  const int32_t ints[] = {c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size,
                          kEngineKvVersion};
  const float floats[] = {c.rope_theta, c.rms_eps};
  XXH3_128bits_update(s, ints, sizeof ints);
  XXH3_128bits_update(s, floats, sizeof floats);
  for (const std::vector<float>* t : {&w.tok_emb, &w.rms_att, &w.wq, &w.wk, &w.wv, &w.wo,
                                      &w.rms_ffn, &w.w1, &w.w2, &w.w3}) {
    Update(s, *t);
  }
  const XXH128_hash_t h = XXH3_128bits_digest(s);
  XXH3_freeState(s);
  char id[128];
  std::snprintf(id, sizeof id, "kvt-llama/%dL%dx%d@xxh3-128:%016" PRIx64 "%016" PRIx64 "/kv%d",
                c.n_layers, c.n_kv_heads, c.head_dim(), static_cast<uint64_t>(h.high64),
                static_cast<uint64_t>(h.low64), kEngineKvVersion);
  return id;
}

}  // namespace kvt::llama
