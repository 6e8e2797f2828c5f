#include <cstdio>
#include <string>

#include "examples/llama/cache_factory.h"
#include "examples/llama/cli_commands.h"
#include "examples/llama/corpus.h"
#include "examples/llama/device_choice.h"
#include "examples/llama/model_loader.h"
#include "examples/llama/perplexity.h"

namespace kvt::llama::cli {
namespace {

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

}  // namespace

CLI::App* AddPplCommand(CLI::App& app, PplArgs& a) {
  CLI::App* c = app.add_subcommand(
      "ppl",
      "Negative log-likelihood per token and perplexity of a UTF-8 text with KV methods in the loop.\n"
      "Text: split into documents at blank lines, each encoded with BOS, concatenated, cut to\n"
      "--max-tokens, then into consecutive windows of --window tokens. Each window is a fresh\n"
      "sequence: its first --prefill tokens run as one exact prefill (K/V appended to every layer's\n"
      "cache, then Compress gets the last --obs-window queries), every later token is decoded alone\n"
      "with its attention read from the method's cache. All tokens after a window's first are scored;\n"
      "decode_* fields cover only the decoded ones (where methods differ).");
  c->add_option("--model", a.model, "checkpoint: llama2.c .bin or GGUF")->required();
  c->add_option("--tokenizer", a.tokenizer, "llama2.c tokenizer (optional for a GGUF that embeds one)");
  c->add_option("--text", a.text, "UTF-8 text file")->required();
  c->add_option("--policy", a.policies, "KV method spec, repeatable (default: full)");
  c->add_option("--window", a.window, "tokens per window")->check(CLI::Range(2, 1 << 20));
  c->add_option("--prefill", a.prefill, "tokens of each window prefilled exactly (0: decode all)")
      ->check(CLI::Range(0, 1 << 20));
  c->add_option("--obs-window", a.observation_window, "prefill queries passed to Compress")
      ->check(CLI::Range(0, 1 << 20));
  c->add_option("--max-tokens", a.max_tokens, "tokens of the text to use (0: all)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  c->add_flag("--json", a.json, "print one JSON object instead of a table");
  c->add_flag("--serial", a.serial, "run windows one after another (default: in parallel)");
  AddDeviceOption(*c, a.device);
  return c;
}

int RunPpl(const PplArgs& a) {
  auto model = LoadModelWithTokenizer(a.model, a.tokenizer);
  if (!model.ok()) {
    std::fprintf(stderr, "kvt-llama: %s\n", model.status().ToString().c_str());
    return 1;
  }
  auto text = ReadTextFile(a.text);
  if (!text.ok()) {
    std::fprintf(stderr, "kvt-llama: %s\n", text.status().ToString().c_str());
    return 1;
  }
  std::vector<std::string> policies = a.policies;
  if (policies.empty()) policies.push_back("full");
  auto kind = ParseDeviceKind(a.device);
  if (!kind.ok()) {
    std::fprintf(stderr, "kvt-llama: %s\n", kind.status().ToString().c_str());
    return 1;
  }
  auto device = ChooseDevice({*kind, policies, false}, model->weights);
  if (!device.ok()) {
    std::fprintf(stderr, "kvt-llama: %s\n", device.status().ToString().c_str());
    return 1;
  }
  std::fprintf(stderr, "[kvt-llama] device: %s\n", device->description.c_str());
  Transformer transformer(model->weights, device->backend.get());
  if (a.window > transformer.config().seq_len) {
    std::fprintf(stderr, "kvt-llama: note: window %d exceeds the model's context %d\n", a.window,
                 transformer.config().seq_len);
  }
  const std::vector<int32_t> tokens = TokenizeDocuments(*model->tokenizer, *text, a.max_tokens);
  PerplexityOptions o;
  o.window = a.window;
  o.prefill = a.prefill;
  o.observation_window = a.observation_window;
  o.parallel = !a.serial;

  std::string json = "{\"model\": " + JsonString(a.model) + ", \"text\": " + JsonString(a.text) +
                     ", \"tokens_evaluated\": " + std::to_string(tokens.size()) +
                     ", \"window\": " + std::to_string(a.window) + ", \"prefill\": " +
                     std::to_string(a.prefill) + ", \"observation_window\": " +
                     std::to_string(a.observation_window) + ", \"policies\": [";
  if (!a.json) {
    std::printf("%-28s %10s %8s %9s %11s %9s %12s %8s\n", "policy", "nll/token", "ppl", "tokens",
                "decode_nll", "decode_n", "bytes/token", "seconds");
  }
  for (size_t i = 0; i < policies.size(); ++i) {
    auto caches = CacheFactoryForSpec(policies[i], transformer.ShapeForLayer(0, a.window));
    if (!caches.ok()) {
      std::fprintf(stderr, "kvt-llama: %s\n", caches.status().ToString().c_str());
      return 1;
    }
    auto r = EvaluatePerplexity(transformer, tokens, *caches, o);
    if (!r.ok()) {
      std::fprintf(stderr, "kvt-llama: policy %s: %s\n", policies[i].c_str(), r.status().ToString().c_str());
      return 1;
    }
    char buf[512];
    std::snprintf(buf, sizeof(buf),
                  "%s{\"policy\": %s, \"nll_per_token\": %.6f, \"ppl\": %.6f, \"tokens\": %lld, "
                  "\"decode_nll_per_token\": %.6f, \"decode_tokens\": %lld, \"windows\": %d, "
                  "\"stored_bytes_per_token\": %.2f, \"kept_fraction\": %.4f, \"seconds\": %.3f}",
                  i ? ", " : "", JsonString(policies[i]).c_str(), r->nll_per_token(), r->ppl(),
                  static_cast<long long>(r->tokens), r->decode_nll_per_token(),
                  static_cast<long long>(r->decode_tokens), r->windows, r->stored_bytes_per_token,
                  r->kept_fraction, r->seconds);
    json += buf;
    if (!a.json) {
      std::printf("%-28s %10.4f %8.4f %9lld %11.4f %9lld %12.1f %8.2f\n", policies[i].c_str(),
                  r->nll_per_token(), r->ppl(), static_cast<long long>(r->tokens),
                  r->decode_nll_per_token(), static_cast<long long>(r->decode_tokens),
                  r->stored_bytes_per_token, r->seconds);
    }
    std::fprintf(stderr, "[kvt-llama] %s: %lld tokens in %.2f s (%.0f tokens/s)\n", policies[i].c_str(),
                 static_cast<long long>(r->tokens), r->seconds, r->seconds > 0 ? r->tokens / r->seconds : 0.0);
  }
  json += "]}";
  if (a.json) std::printf("%s\n", json.c_str());
  return 0;
}

}  // namespace kvt::llama::cli
