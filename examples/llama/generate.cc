#include "examples/llama/generate.h"

#include <algorithm>
#include <chrono>

#include "examples/llama/sampler.h"

namespace kvt::llama {
namespace {

double Since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The prompt's KV as the sequence holds it densely after its prefill.
PrefixKv DensePrefix(const Transformer& model, const Sequence& seq, int tokens) {
  const ModelConfig& c = model.config();
  PrefixKv kv;
  kv.layers = c.n_layers;
  kv.tokens = tokens;
  kv.kv_heads = c.n_kv_heads;
  kv.head_dim = c.head_dim();
  kv.data.resize(kv.LayerStride() * kv.layers);
  const size_t n = static_cast<size_t>(tokens) * c.kv_dim();
  for (int l = 0; l < c.n_layers; ++l) {
    std::copy_n(seq.dense_keys(l).data(), n, kv.keys(l));
    std::copy_n(seq.dense_values(l).data(), n, kv.values(l));
  }
  return kv;
}

// Takes the longest stored prefix (all but the prompt's last token, which must be computed for
// its logits). Any failure is a miss: returns 0 and the caller computes everything.
int ReusePrefix(const Transformer& model, Sequence& seq, std::span<const int32_t> prompt,
                PrefixKvStore& store) {
  if (prompt.size() < 2) return 0;
  auto found = store.Lookup(prompt.first(prompt.size() - 1));
  if (!found.ok() || *found <= 0) return 0;
  const int n = std::min<int>(*found, static_cast<int>(prompt.size()) - 1);
  auto kv = store.Retrieve(prompt, n);
  const ModelConfig& c = model.config();
  if (!kv.ok() || kv->tokens != n || kv->layers != c.n_layers || kv->kv_heads != c.n_kv_heads ||
      kv->head_dim != c.head_dim() || kv->data.size() != kv->LayerStride() * kv->layers) {
    return 0;
  }
  // AppendKv wants [layers][tokens][kv] keys and values separately.
  const size_t per_layer = static_cast<size_t>(n) * c.kv_dim();
  std::vector<float> keys(per_layer * c.n_layers), values(keys.size());
  for (int l = 0; l < c.n_layers; ++l) {
    std::copy_n(kv->keys(l), per_layer, keys.data() + l * per_layer);
    std::copy_n(kv->values(l), per_layer, values.data() + l * per_layer);
  }
  if (!model.AppendKv(seq, n, keys.data(), values.data()).ok()) return -1;
  return n;
}

}  // namespace

StatusOr<GenerateResult> Generate(const Transformer& model, const Tokenizer& tokenizer,
                                  const CacheFactory& caches, const GenerateOptions& options,
                                  PrefixKvStore* prefix_store) {
  const ModelConfig& c = model.config();
  if (tokenizer.vocab_size() != c.vocab_size) {
    return InvalidArgument("tokenizer has " + std::to_string(tokenizer.vocab_size()) +
                           " tokens, the model " + std::to_string(c.vocab_size));
  }
  if (options.steps <= 0) return InvalidArgument("steps must be positive");
  const int steps = std::min(options.steps, c.seq_len);
  std::vector<int32_t> prompt = tokenizer.Encode(options.prompt, /*bos=*/true, /*eos=*/false);
  const int m = std::min<int>(static_cast<int>(prompt.size()), steps);

  GenerateResult result;
  result.prompt_tokens = m;
  KVT_ASSIGN_OR_RETURN(Sequence seq, model.NewSequence(caches, steps + 1));
  std::vector<float> logits(c.vocab_size);
  const std::span<const int32_t> head(prompt.data(), m);

  auto t0 = std::chrono::steady_clock::now();
  int reused = prefix_store ? ReusePrefix(model, seq, head, *prefix_store) : 0;
  if (reused < 0) {  // a partial append: start over without the store
    KVT_ASSIGN_OR_RETURN(seq, model.NewSequence(caches, steps + 1));
    reused = 0;
  }
  result.reused_prefix_tokens = reused;
  PrefillOptions prefill;
  prefill.observation_window = options.observation_window;
  KVT_RETURN_IF_ERROR(model.Prefill(seq, head.subspan(reused), prefill, logits.data()));
  if (prefix_store != nullptr && !seq.on_device()) {  // a device sequence keeps no host K/V to offer
    prefix_store->Store(head, DensePrefix(model, seq, m)).IgnoreError();  // a failed offer costs nothing
  }
  result.prefill_seconds = Since(t0);

  // llama2.c's loop: the logits at position p choose the token at p + 1; `steps` forward passes,
  // so the sequence ends with `steps` tokens after BOS unless BOS/EOS comes first.
  result.tokens.assign(head.begin(), head.end());
  Sampler sampler(options.temperature, options.seed);
  t0 = std::chrono::steady_clock::now();
  int forwarded = m;
  while (true) {
    const int32_t next = forwarded < static_cast<int>(prompt.size())
                             ? prompt[forwarded]
                             : sampler.Sample(logits.data(), c.vocab_size);
    if (next == Tokenizer::kBos || next == Tokenizer::kEos) break;
    result.tokens.push_back(next);
    if (forwarded >= steps) break;
    KVT_RETURN_IF_ERROR(model.Decode(seq, next, logits.data()));
    ++forwarded;
    ++result.decoded_tokens;
  }
  result.decode_seconds = Since(t0);
  result.text = tokenizer.Decode(std::span<const int32_t>(result.tokens).subspan(1), Tokenizer::kBos);
  return result;
}

}  // namespace kvt::llama
