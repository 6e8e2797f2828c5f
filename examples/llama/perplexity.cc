#include "examples/llama/perplexity.h"

#include <oneapi/tbb/parallel_for.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

namespace kvt::llama {

double PerplexityResult::ppl() const { return std::exp(nll_per_token()); }

double TokenNll(const float* logits, int vocab, int32_t target) {
  double mx = logits[0];
  for (int i = 1; i < vocab; ++i) mx = std::max<double>(mx, logits[i]);
  double sum = 0.0;
  for (int i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - mx);
  return mx + std::log(sum) - static_cast<double>(logits[target]);
}

namespace {

struct WindowResult {
  Status status;
  PerplexityResult r;
};

WindowResult RunWindow(const Transformer& model, std::span<const int32_t> w,
                       const CacheFactory& caches, const PerplexityOptions& o) {
  WindowResult out;
  const int len = static_cast<int>(w.size());
  const int vocab = model.config().vocab_size;
  auto seq = model.NewSequence(caches, len);
  if (!seq.ok()) {
    out.status = seq.status();
    return out;
  }
  const int p = std::min(o.prefill, len - 1);
  std::vector<float> logits(static_cast<size_t>(std::max(p, 1)) * vocab);
  if (p > 0) {
    PrefillOptions po;
    po.all_logits = true;
    po.observation_window = o.observation_window;
    out.status = model.Prefill(*seq, w.first(p), po, logits.data());
    if (!out.status.ok()) return out;
    for (int i = 0; i < p; ++i) out.r.nll_sum += TokenNll(logits.data() + static_cast<size_t>(i) * vocab, vocab, w[i + 1]);
    out.r.tokens += p;
  }
  for (int i = p; i + 1 < len; ++i) {
    out.status = model.Decode(*seq, w[i], logits.data());
    if (!out.status.ok()) return out;
    const double nll = TokenNll(logits.data(), vocab, w[i + 1]);
    out.r.nll_sum += nll;
    out.r.decode_nll_sum += nll;
    ++out.r.tokens;
    ++out.r.decode_tokens;
  }
  const int64_t appended = seq->position() * seq->num_layers();
  out.r.stored_bytes_per_token = appended ? static_cast<double>(seq->stored_bytes()) / seq->position() : 0.0;
  out.r.kept_fraction = appended ? static_cast<double>(seq->kept_tokens()) / appended : 0.0;
  out.r.windows = 1;
  return out;
}

}  // namespace

StatusOr<PerplexityResult> EvaluatePerplexity(const Transformer& model,
                                              std::span<const int32_t> tokens,
                                              const CacheFactory& caches,
                                              const PerplexityOptions& options) {
  if (options.window < 2) return InvalidArgument("perplexity window must be at least 2 tokens");
  if (options.prefill < 0 || options.observation_window < 0) {
    return InvalidArgument("prefill and observation window must be non-negative");
  }
  for (int32_t t : tokens) {
    if (t < 0 || t >= model.config().vocab_size) return InvalidArgument("token id out of the vocabulary");
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::span<const int32_t>> windows;
  for (size_t s = 0; s + 1 < tokens.size(); s += options.window) {
    windows.push_back(tokens.subspan(s, std::min<size_t>(options.window, tokens.size() - s)));
  }
  std::vector<WindowResult> results(windows.size());
  auto run = [&](size_t i) { results[i] = RunWindow(model, windows[i], caches, options); };
  if (options.parallel) {
    tbb::parallel_for(size_t{0}, windows.size(), run);
  } else {
    for (size_t i = 0; i < windows.size(); ++i) run(i);
  }
  PerplexityResult total;
  for (size_t i = 0; i < results.size(); ++i) {
    if (!results[i].status.ok()) return results[i].status.WithContext("window " + std::to_string(i));
    const PerplexityResult& r = results[i].r;
    total.tokens += r.tokens;
    total.nll_sum += r.nll_sum;
    total.decode_tokens += r.decode_tokens;
    total.decode_nll_sum += r.decode_nll_sum;
    total.windows += r.windows;
    total.stored_bytes_per_token += r.stored_bytes_per_token;
    total.kept_fraction += r.kept_fraction;
  }
  if (total.windows > 0) {
    total.stored_bytes_per_token /= total.windows;
    total.kept_fraction /= total.windows;
  }
  total.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return total;
}

}  // namespace kvt::llama
