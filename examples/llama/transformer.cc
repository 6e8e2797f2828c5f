#include "examples/llama/transformer.h"

#include "policies/hintable_cache.h"

#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "examples/llama/ops.h"

namespace kvt::llama {

policies::LayerShape Transformer::ShapeForLayer(int layer, int max_tokens) const {
  policies::LayerShape s;
  s.layer = layer;
  s.num_layers = c_.n_layers;
  s.num_kv_heads = c_.n_kv_heads;
  s.num_q_heads = c_.n_heads;
  s.head_dim = c_.head_dim();
  s.max_tokens = max_tokens;
  s.rope.theta = c_.rope_theta;
  return s;
}

StatusOr<Sequence> Transformer::NewSequence(const CacheFactory& factory, int max_tokens) const {
  Sequence seq;
  for (int l = 0; l < c_.n_layers; ++l) {
    auto cache = factory(ShapeForLayer(l, max_tokens));
    if (!cache.ok()) return cache.status().WithContext("creating the cache of layer " + std::to_string(l));
    if (*cache == nullptr) return Internal("cache factory returned null for layer " + std::to_string(l));
    if (device_ != nullptr && (*cache)->name() != "exact" && (*cache)->name() != "full") {
      return Unsupported("the " + device_->name() + " forward keeps an uncompressed float32 K/V cache on the device; KV method '" +
                         (*cache)->name() + "' runs on the cpu device only");
    }
    seq.caches_.push_back(std::move(cache).value());
  }
  if (device_ != nullptr) {
    auto state = device_->NewSequenceState(max_tokens);
    if (!state.ok()) return state.status().WithContext("sequence on " + device_->name());
    seq.device_ = std::move(state).value();
  }
  seq.dense_k_.resize(c_.n_layers);
  seq.dense_v_.resize(c_.n_layers);
  const int d = c_.dim, kv = c_.kv_dim(), h = c_.hidden_dim;
  seq.x_.resize(d);
  seq.xb_.resize(d);
  seq.q_.resize(d);
  seq.k_.resize(kv);
  seq.k_pre_.resize(kv);
  seq.v_.resize(kv);
  seq.att_.resize(d);
  seq.hb_.resize(h);
  seq.hb2_.resize(h);
  return seq;
}

Status Transformer::CheckToken(int32_t token) const {
  if (token < 0 || token >= c_.vocab_size) {
    return InvalidArgument("token id " + std::to_string(token) + " outside the vocabulary [0, " +
                           std::to_string(c_.vocab_size) + ")");
  }
  return Status::Ok();
}

Status Transformer::DeviceForward(Sequence& seq, std::span<const int32_t> tokens, bool all_logits,
                                  float* logits) const {
  if (device_ == nullptr) return InvalidArgument("a sequence made on a device, run by a cpu Transformer");
  if (seq.observer_ != nullptr) return Unsupported("activation capture runs on the cpu device only");
  if (seq.device_->tokens() != seq.position_) return Internal("device cache out of step with the sequence");
  if (Status s = device_->Forward(*seq.device_, tokens, all_logits, logits); !s.ok()) {
    return s.WithContext("forward on " + device_->name());
  }
  seq.position_ += static_cast<int64_t>(tokens.size());
  return Status::Ok();
}

// out[t] = softmax(q[t]·K[0..base+t]ᵀ / √hd)·V over the sequence's dense K/V, where base is the
// number of tokens before this batch (the batch's own K/V are already appended).
void Transformer::CausalAttention(const Sequence& seq, int layer, const float* q, int tokens,
                                  float* out) const {
  const int hd = c_.head_dim(), nh = c_.n_heads, kv_dim = c_.kv_dim(), group = c_.group();
  const float* keys = seq.dense_k_[layer].data();
  const float* values = seq.dense_v_[layer].data();
  const int64_t total = static_cast<int64_t>(seq.dense_k_[layer].size() / kv_dim);
  const int64_t base = total - tokens;
  const float sqrt_hd = std::sqrt(static_cast<float>(hd));
  auto rows = [&](int t0, int t1) {
    std::vector<float> scores(total);
    for (int t = t0; t < t1; ++t) {
      const int64_t n = base + t + 1;
      for (int h = 0; h < nh; ++h) {
        const float* qh = q + (static_cast<int64_t>(t) * nh + h) * hd;
        const int64_t koff = static_cast<int64_t>(h / group) * hd;
        for (int64_t j = 0; j < n; ++j) scores[j] = ops::Dot(qh, keys + j * kv_dim + koff, hd) / sqrt_hd;
        ops::Softmax(scores.data(), static_cast<int>(n));
        float* o = out + (static_cast<int64_t>(t) * nh + h) * hd;
        std::fill(o, o + hd, 0.0f);
        for (int64_t j = 0; j < n; ++j) ops::Axpy(scores[j], values + j * kv_dim + koff, o, hd);
      }
    }
  };
  const int64_t work = static_cast<int64_t>(tokens) * (base + tokens) * nh * hd;
  if (work < (1 << 17)) {
    rows(0, tokens);
  } else {
    tbb::parallel_for(tbb::blocked_range<int>(0, tokens, 8),
                      [&](const tbb::blocked_range<int>& r) { rows(r.begin(), r.end()); });
  }
}

Status Transformer::Prefill(Sequence& seq, std::span<const int32_t> tokens,
                            const PrefillOptions& options, float* logits) const {
  if (tokens.empty()) return InvalidArgument("Prefill: no tokens");
  if (static_cast<int>(seq.caches_.size()) != c_.n_layers) return InvalidArgument("Prefill: sequence not from this model");
  for (int32_t t : tokens) KVT_RETURN_IF_ERROR(CheckToken(t));
  if (seq.on_device()) return DeviceForward(seq, tokens, options.all_logits, logits);
  const int V = c_.vocab_size;
  if (!seq.dense_valid_) {
    // After a decode the history lives only in the caches: go through them token by token.
    for (size_t i = 0; i < tokens.size(); ++i) {
      const bool keep = options.all_logits || i + 1 == tokens.size();
      std::vector<float> scratch;
      float* dst = logits;
      if (options.all_logits) {
        dst = logits + i * V;
      } else if (!keep) {
        scratch.resize(V);
        dst = scratch.data();
      }
      KVT_RETURN_IF_ERROR(Decode(seq, tokens[i], dst));
    }
    return Status::Ok();
  }

  const int T = static_cast<int>(tokens.size());
  const int d = c_.dim, kv = c_.kv_dim(), hd = c_.head_dim(), hid = c_.hidden_dim;
  const int64_t pos0 = seq.position_;
  std::vector<float> x(static_cast<size_t>(T) * d), xb(x.size()), q(x.size()), att(x.size());
  std::vector<float> k(static_cast<size_t>(T) * kv), k_pre(k.size()), v(k.size());
  std::vector<float> h1(static_cast<size_t>(T) * hid), h3(h1.size());
  std::vector<int32_t> positions(T);
  for (int t = 0; t < T; ++t) {
    std::copy_n(w_.tok_emb.data() + static_cast<size_t>(tokens[t]) * d, d, x.data() + static_cast<size_t>(t) * d);
    positions[t] = static_cast<int32_t>(pos0 + t);
  }
  for (int l = 0; l < c_.n_layers; ++l) {
    const size_t ld = static_cast<size_t>(l);
    for (int t = 0; t < T; ++t) {
      ops::RmsNorm(x.data() + t * d, w_.rms_att.data() + ld * d, xb.data() + t * d, d, c_.rms_eps);
    }
    ops::MatMul(xb.data(), w_.wq.data() + ld * d * d, q.data(), T, d, d);
    ops::MatMul(xb.data(), w_.wk.data() + ld * kv * d, k.data(), T, kv, d);
    ops::MatMul(xb.data(), w_.wv.data() + ld * kv * d, v.data(), T, kv, d);
    k_pre = k;
    for (int t = 0; t < T; ++t) {
      ops::Rope(q.data() + t * d, c_.n_heads, hd, positions[t], c_.rope_theta);
      ops::Rope(k.data() + t * kv, c_.n_kv_heads, hd, positions[t], c_.rope_theta);
    }
    if (seq.observer_ != nullptr) {
      seq.observer_->OnLayer({l, pos0, T, q.data(), k_pre.data(), k.data(), v.data()});
    }
    seq.dense_k_[l].insert(seq.dense_k_[l].end(), k.begin(), k.end());
    seq.dense_v_[l].insert(seq.dense_v_[l].end(), v.begin(), v.end());
    CausalAttention(seq, l, q.data(), T, att.data());

    policies::AppendBatch batch;
    batch.keys = k.data();
    batch.keys_pre_rope = k_pre.data();
    batch.values = v.data();
    batch.positions = positions.data();
    batch.tokens = T;
    if (Status s = seq.caches_[l]->Append(batch); !s.ok()) {
      return s.WithContext("layer " + std::to_string(l) + " Append");
    }
    if (options.observation_window > 0) {
      const int w = std::min(options.observation_window, T);
      policies::Observation obs;
      obs.queries = q.data() + static_cast<size_t>(T - w) * d;
      obs.window = w;
      if (Status s = seq.caches_[l]->Compress(obs); !s.ok()) {
        return s.WithContext("layer " + std::to_string(l) + " Compress");
      }
    }

    ops::MatMul(att.data(), w_.wo.data() + ld * d * d, xb.data(), T, d, d);
    for (size_t i = 0; i < x.size(); ++i) x[i] += xb[i];
    for (int t = 0; t < T; ++t) {
      ops::RmsNorm(x.data() + t * d, w_.rms_ffn.data() + ld * d, xb.data() + t * d, d, c_.rms_eps);
    }
    ops::MatMul(xb.data(), w_.w1.data() + ld * hid * d, h1.data(), T, hid, d);
    ops::MatMul(xb.data(), w_.w3.data() + ld * hid * d, h3.data(), T, hid, d);
    ops::SwiGlu(h1.data(), h3.data(), T * hid);
    ops::MatMul(h1.data(), w_.w2.data() + ld * d * hid, xb.data(), T, d, hid);
    for (size_t i = 0; i < x.size(); ++i) x[i] += xb[i];
  }
  seq.position_ += T;
  if (options.all_logits) {
    for (int t = 0; t < T; ++t) {
      ops::RmsNorm(x.data() + t * d, w_.rms_final.data(), xb.data() + t * d, d, c_.rms_eps);
    }
    ops::MatMul(xb.data(), w_.classifier(), logits, T, V, d);
  } else {
    const float* last = x.data() + static_cast<size_t>(T - 1) * d;
    ops::RmsNorm(last, w_.rms_final.data(), xb.data(), d, c_.rms_eps);
    ops::MatVec(w_.classifier(), xb.data(), logits, V, d);
  }
  return Status::Ok();
}

Status Transformer::Decode(Sequence& seq, int32_t token, float* logits) const {
  KVT_RETURN_IF_ERROR(CheckToken(token));
  if (static_cast<int>(seq.caches_.size()) != c_.n_layers) return InvalidArgument("Decode: sequence not from this model");
  if (seq.on_device()) {
    seq.dense_valid_ = false;
    return DeviceForward(seq, std::span<const int32_t>(&token, 1), false, logits);
  }
  if (seq.dense_valid_) {
    seq.dense_valid_ = false;
    for (auto& k : seq.dense_k_) std::vector<float>().swap(k);
    for (auto& v : seq.dense_v_) std::vector<float>().swap(v);
  }
  const int d = c_.dim, kv = c_.kv_dim(), hd = c_.head_dim(), hid = c_.hidden_dim;
  const int32_t pos = static_cast<int32_t>(seq.position_);
  float* x = seq.x_.data();
  float* xb = seq.xb_.data();
  std::copy_n(w_.tok_emb.data() + static_cast<size_t>(token) * d, d, x);
  std::vector<float> spec_x, spec_q;  // speculative next-layer query (HintableCache), when wanted
  for (int l = 0; l < c_.n_layers; ++l) {
    const size_t ld = static_cast<size_t>(l);
    if (l + 1 < c_.n_layers) {
      if (auto* h = dynamic_cast<policies::HintableCache*>(seq.caches_[l + 1].get())) {
        // TailorKV: layer l+1's query from layer l's input, so l+1's rows move while l computes.
        spec_x.resize(d);
        spec_q.resize(d);
        ops::RmsNorm(x, w_.rms_att.data() + (ld + 1) * d, spec_x.data(), d, c_.rms_eps);
        ops::MatVec(w_.wq.data() + (ld + 1) * d * d, spec_x.data(), spec_q.data(), d, d);
        ops::Rope(spec_q.data(), c_.n_heads, hd, pos, c_.rope_theta);
        if (Status s = h->HintQuery(spec_q.data()); !s.ok()) return s.WithContext("layer " + std::to_string(l + 1) + " hint");
      }
    }
    ops::RmsNorm(x, w_.rms_att.data() + ld * d, xb, d, c_.rms_eps);
    ops::MatVec(w_.wq.data() + ld * d * d, xb, seq.q_.data(), d, d);
    ops::MatVec(w_.wk.data() + ld * kv * d, xb, seq.k_.data(), kv, d);
    ops::MatVec(w_.wv.data() + ld * kv * d, xb, seq.v_.data(), kv, d);
    seq.k_pre_ = seq.k_;
    ops::Rope(seq.q_.data(), c_.n_heads, hd, pos, c_.rope_theta);
    ops::Rope(seq.k_.data(), c_.n_kv_heads, hd, pos, c_.rope_theta);
    if (seq.observer_ != nullptr) {
      seq.observer_->OnLayer({l, pos, 1, seq.q_.data(), seq.k_pre_.data(), seq.k_.data(), seq.v_.data()});
    }
    policies::AppendBatch batch;
    batch.keys = seq.k_.data();
    batch.keys_pre_rope = seq.k_pre_.data();
    batch.values = seq.v_.data();
    batch.positions = &pos;
    batch.tokens = 1;
    if (Status s = seq.caches_[l]->Append(batch); !s.ok()) {
      return s.WithContext("layer " + std::to_string(l) + " Append");
    }
    if (Status s = seq.caches_[l]->Attend(seq.q_.data(), seq.att_.data()); !s.ok()) {
      return s.WithContext("layer " + std::to_string(l) + " Attend");
    }
    ops::MatVec(w_.wo.data() + ld * d * d, seq.att_.data(), xb, d, d);
    for (int i = 0; i < d; ++i) x[i] += xb[i];
    ops::RmsNorm(x, w_.rms_ffn.data() + ld * d, xb, d, c_.rms_eps);
    ops::MatVec(w_.w1.data() + ld * hid * d, xb, seq.hb_.data(), hid, d);
    ops::MatVec(w_.w3.data() + ld * hid * d, xb, seq.hb2_.data(), hid, d);
    ops::SwiGlu(seq.hb_.data(), seq.hb2_.data(), hid);
    ops::MatVec(w_.w2.data() + ld * d * hid, seq.hb_.data(), xb, d, hid);
    for (int i = 0; i < d; ++i) x[i] += xb[i];
  }
  seq.position_ += 1;
  ops::RmsNorm(x, w_.rms_final.data(), xb, d, c_.rms_eps);
  ops::MatVec(w_.classifier(), xb, logits, c_.vocab_size, d);
  return Status::Ok();
}

Status Transformer::AppendKv(Sequence& seq, int tokens, const float* keys, const float* values) const {
  if (seq.on_device()) return Unsupported("AppendKv: a sequence on a device takes no K/V from the host");
  if (!seq.dense_valid_) return InvalidArgument("AppendKv: only before the first decode step");
  if (tokens <= 0 || keys == nullptr || values == nullptr) return InvalidArgument("AppendKv: empty input");
  const int kv = c_.kv_dim(), hd = c_.head_dim();
  const int64_t pos0 = seq.position_;
  std::vector<int32_t> positions(tokens);
  for (int t = 0; t < tokens; ++t) positions[t] = static_cast<int32_t>(pos0 + t);
  const size_t per_layer = static_cast<size_t>(tokens) * kv;
  std::vector<float> k_pre(per_layer);
  for (int l = 0; l < c_.n_layers; ++l) {
    const float* k = keys + l * per_layer;
    const float* v = values + l * per_layer;
    std::copy_n(k, per_layer, k_pre.data());
    for (int t = 0; t < tokens; ++t) {
      ops::RopeInverse(k_pre.data() + static_cast<size_t>(t) * kv, c_.n_kv_heads, hd, positions[t], c_.rope_theta);
    }
    seq.dense_k_[l].insert(seq.dense_k_[l].end(), k, k + per_layer);
    seq.dense_v_[l].insert(seq.dense_v_[l].end(), v, v + per_layer);
    policies::AppendBatch batch;
    batch.keys = k;
    batch.keys_pre_rope = k_pre.data();
    batch.values = v;
    batch.positions = positions.data();
    batch.tokens = tokens;
    if (Status s = seq.caches_[l]->Append(batch); !s.ok()) {
      return s.WithContext("layer " + std::to_string(l) + " Append");
    }
  }
  seq.position_ += tokens;
  return Status::Ok();
}

}  // namespace kvt::llama
