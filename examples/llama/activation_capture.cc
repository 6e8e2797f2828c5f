#include "examples/llama/activation_capture.h"

namespace kvt::llama {

void CapturingObserver::OnLayer(const LayerActivationsView& view) {
  if (view.layer < 0 || view.layer >= static_cast<int>(layers_.size())) return;
  LayerCapture& c = layers_[view.layer];
  const size_t nq = static_cast<size_t>(view.tokens) * q_dim_;
  const size_t nk = static_cast<size_t>(view.tokens) * kv_dim_;
  c.q.insert(c.q.end(), view.q, view.q + nq);
  c.k_pre.insert(c.k_pre.end(), view.k_pre, view.k_pre + nk);
  c.k.insert(c.k.end(), view.k, view.k + nk);
  c.v.insert(c.v.end(), view.v, view.v + nk);
}

StatusOr<ActivationCapture> CaptureActivations(const Transformer& model,
                                               std::span<const int32_t> tokens) {
  const ModelConfig& c = model.config();
  if (tokens.empty()) return InvalidArgument("CaptureActivations: no tokens");
  if (static_cast<int64_t>(tokens.size()) > c.seq_len) {
    return InvalidArgument("CaptureActivations: " + std::to_string(tokens.size()) +
                           " tokens, more than the model's context " + std::to_string(c.seq_len));
  }
  KVT_ASSIGN_OR_RETURN(Sequence seq, model.NewSequence(ExactCacheFactory(), static_cast<int>(tokens.size())));
  CapturingObserver observer(c.n_layers, c.dim, c.kv_dim());
  seq.set_observer(&observer);
  ActivationCapture capture;
  capture.config = c;
  capture.tokens.assign(tokens.begin(), tokens.end());
  capture.logits.resize(tokens.size() * static_cast<size_t>(c.vocab_size));
  PrefillOptions options;
  options.all_logits = true;
  KVT_RETURN_IF_ERROR(model.Prefill(seq, tokens, options, capture.logits.data()));
  capture.layers = std::move(observer.layers());
  return capture;
}

}  // namespace kvt::llama
