#include <cstdio>

#include "examples/llama/cache_factory.h"
#include "examples/llama/cli_commands.h"
#include "examples/llama/device_choice.h"
#include "examples/llama/generate.h"
#include "examples/llama/kvtier_prefix_store.h"
#include "examples/llama/model_identity.h"
#include "examples/llama/model_loader.h"

namespace kvt::llama::cli {

CLI::App* AddGenerateCommand(CLI::App& app, GenerateArgs& a) {
  CLI::App* c = app.add_subcommand(
      "generate",
      "Generate text (llama2.c-compatible). Only the text goes to stdout; statistics to stderr.\n"
      "The prompt is prefilled in one batch, then each token is decoded with its attention read\n"
      "from the --policy's cache.");
  c->add_option("--model", a.model, "checkpoint: llama2.c .bin or GGUF (F32/F16)")->required();
  c->add_option("--tokenizer", a.tokenizer, "llama2.c tokenizer (optional for a GGUF that embeds one)");
  c->add_option("--prompt", a.prompt, "prompt text (default: empty, BOS only)");
  c->add_option("--steps", a.steps, "positions to run, BOS included (capped at the model's context)")
      ->check(CLI::Range(1, 1 << 24));
  c->add_option("--temperature", a.temperature, "0: greedy")->check(CLI::Range(0.0f, 100.0f));
  c->add_option("--seed", a.seed, "sampling seed");
  c->add_option("--policy", a.policy, "KV method spec (exact, full, kivi2, snapkv:budget=64, ...)");
  c->add_option("--obs-window", a.observation_window,
                "queries of the prompt passed to the method's Compress (0: no Compress)")
      ->check(CLI::Range(0, 1 << 20));
  c->add_flag("--kvtier", a.kvtier,
              "reuse the prompt's longest stored prefix from kv-tierd (block plane) and store the\n"
              "prompt's KV back; prints the reused token count to stderr. No daemon: a warning, then\n"
              "the prompt is computed as usual");
  c->add_option("--socket", a.socket, "kv-tierd socket (default: $KVT_SOCKET, else the daemon's default)");
  c->add_option("--kvtier-chunk", a.kvtier_chunk, "tokens per block-plane chunk")
      ->check(CLI::Range(1, 1 << 16));
  c->add_option("--kvtier-model-id", a.kvtier_model_id,
                "namespace model id (default: a hash of the config and weights, see model_identity.h)");
  AddDeviceOption(*c, a.device);
  return c;
}

int RunGenerate(const GenerateArgs& a) {
  auto model = LoadModelWithTokenizer(a.model, a.tokenizer);
  if (!model.ok()) {
    std::fprintf(stderr, "kvt-llama: %s\n", model.status().ToString().c_str());
    return 1;
  }
  auto kind = ParseDeviceKind(a.device);
  if (!kind.ok()) {
    std::fprintf(stderr, "kvt-llama: %s\n", kind.status().ToString().c_str());
    return 1;
  }
  const std::string policies[] = {a.policy};
  auto device = ChooseDevice({*kind, policies, a.kvtier}, model->weights);
  if (!device.ok()) {
    std::fprintf(stderr, "kvt-llama: %s\n", device.status().ToString().c_str());
    return 1;
  }
  std::fprintf(stderr, "[kvt-llama] device: %s\n", device->description.c_str());
  Transformer transformer(model->weights, device->backend.get());
  auto caches = CacheFactoryForSpec(a.policy, transformer.ShapeForLayer(0, a.steps));
  if (!caches.ok()) {
    std::fprintf(stderr, "kvt-llama: %s\n", caches.status().ToString().c_str());
    return 1;
  }
  GenerateOptions o;
  o.prompt = a.prompt;
  o.steps = a.steps;
  o.temperature = a.temperature;
  o.seed = a.seed;
  o.observation_window = a.observation_window;
  std::unique_ptr<KvtierPrefixStore> store;
  if (a.kvtier) {
    KvtierStoreOptions so;
    so.socket_path = a.socket;
    so.model_id = a.kvtier_model_id.empty() ? ModelKvIdentity(model->weights) : a.kvtier_model_id;
    so.tokens_per_chunk = a.kvtier_chunk;
    auto opened = KvtierPrefixStore::Open(so, transformer.config());
    if (opened.ok()) {
      store = std::move(opened).value();
    } else {  // serving goes on without reuse
      std::fprintf(stderr, "kvt-llama: warning: kv-tierd unavailable, computing the prompt: %s\n",
                   opened.status().ToString().c_str());
    }
  }
  auto r = Generate(transformer, *model->tokenizer, *caches, o, store.get());
  if (!r.ok()) {
    std::fprintf(stderr, "kvt-llama: %s\n", r.status().ToString().c_str());
    return 1;
  }
  std::fwrite(r->text.data(), 1, r->text.size(), stdout);
  std::fflush(stdout);
  const double tps = r->decode_seconds > 0 ? r->decoded_tokens / r->decode_seconds : 0.0;
  std::fprintf(stderr,
               "\n[kvt-llama] model %s, policy %s: prompt %d tokens (prefill %.2f ms), %d decoded "
               "in %.3f s (%.1f tokens/s)\n",
               transformer.config().ToString().c_str(), a.policy.c_str(), r->prompt_tokens,
               r->prefill_seconds * 1e3, r->decoded_tokens, r->decode_seconds, tps);
  if (store != nullptr) {
    std::fprintf(stderr,
                 "[kvt-llama] kvtier: reused %d of %d prompt tokens (%lld chunks of %d retrieved, "
                 "%lld stored, %lld failed requests; model_id %s)\n",
                 r->reused_prefix_tokens, r->prompt_tokens,
                 static_cast<long long>(store->retrieved_chunks()), store->tokens_per_chunk(),
                 static_cast<long long>(store->stored_chunks()),
                 static_cast<long long>(store->failures()), store->model_id().c_str());
  }
  return 0;
}

}  // namespace kvt::llama::cli
