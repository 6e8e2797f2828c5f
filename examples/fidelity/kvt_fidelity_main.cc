// kvt-fidelity — what each KV method costs and keeps, on the real stories260K model and real text.
// Captures real Q/K/V (kvt::llama capture API), replays them through every method for attention
// error and stored bytes, and runs perplexity with the method in the engine's loop. Writes
// fidelity.md, fidelity.csv (and fidelity.png when the plot is built) into --out.
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "examples/fidelity/attention_replay.h"
#include "examples/fidelity/fidelity_plot.h"
#include "examples/fidelity/fidelity_row.h"
#include "examples/fidelity/method_table.h"
#include "examples/llama/corpus.h"
#include "examples/llama/model_loader.h"
#include "examples/llama/perplexity.h"
#include "policies/lowrank/lorc_factors.h"

namespace {

using namespace kvt;

int Fail(const Status& s) {
  std::fprintf(stderr, "kvt-fidelity: %s\n", s.ToString().c_str());
  return 1;
}

bool WriteText(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  return static_cast<bool>(f);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kvt-fidelity: per-method cache size, attention error and perplexity on real data"};
  std::string model_path, tokenizer_path, text_path, out_dir = ".";
  int windows = 4, window = 512, prefill = 128, observation = 32;
  int64_t ppl_tokens = 20000;
  std::vector<std::string> only;
  app.add_option("--model", model_path, "checkpoint (.bin or .gguf)")->required();
  app.add_option("--tokenizer", tokenizer_path, "llama2.c tokenizer (optional for GGUF)");
  app.add_option("--text", text_path, "UTF-8 text")->required();
  app.add_option("--windows", windows, "captured windows for the attention replay")->check(CLI::Range(1, 1000));
  app.add_option("--window", window, "tokens per window")->check(CLI::Range(16, 1 << 16));
  app.add_option("--prefill", prefill, "prefill tokens per window (then decode)")->check(CLI::Range(1, 1 << 16));
  app.add_option("--obs-window", observation, "prefill queries given to Compress")->check(CLI::Range(0, 1 << 16));
  app.add_option("--ppl-tokens", ppl_tokens, "tokens for perplexity (0: skip perplexity)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 32));
  app.add_option("--only", only, "measure only these labels");
  app.add_option("--out", out_dir, "directory for fidelity.md / .csv / .png");
  CLI11_PARSE(app, argc, argv);
  if (prefill >= window) return Fail(InvalidArgument("--prefill must be smaller than --window"));

  auto model = llama::LoadModelWithTokenizer(model_path, tokenizer_path);
  if (!model.ok()) return Fail(model.status());
  auto text = llama::ReadTextFile(text_path);
  if (!text.ok()) return Fail(text.status());
  llama::Transformer t(model->weights);
  const llama::ModelConfig& c = t.config();
  const int64_t need = std::max<int64_t>(ppl_tokens, int64_t{windows} * window);
  const std::vector<int32_t> tokens = llama::TokenizeDocuments(*model->tokenizer, *text, need);
  if (static_cast<int64_t>(tokens.size()) < int64_t{windows} * window) {
    return Fail(InvalidArgument("text too short for the requested windows"));
  }

  // LoRC factors from the model's own W_k / W_v (progressive and uniform, half the rank).
  char tmpl[] = "/tmp/kvt-fidelity-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return Fail(ErrnoStatus("mkdtemp", errno));
  const std::string tmp = tmpl;
  std::string lorc_paths[2];
  policies::lowrank::LorcWeightsView view{c.n_layers, c.dim, c.n_kv_heads, c.head_dim(),
                                          model->weights.wk.data(), model->weights.wv.data()};
  const policies::lowrank::LorcSchedule schedules[2] = {policies::lowrank::LorcSchedule::kProgressive,
                                                        policies::lowrank::LorcSchedule::kUniform};
  for (int i = 0; i < 2; ++i) {
    auto f = policies::lowrank::ComputeLorcFactors(view, 0.5, 0.5, schedules[i]);
    if (!f.ok()) return Fail(f.status());
    lorc_paths[i] = tmp + (i == 0 ? "/lorc-progressive.bin" : "/lorc-uniform.bin");
    if (Status s = policies::lowrank::SaveLorcFactors(*f, lorc_paths[i]); !s.ok()) return Fail(s);
  }

  std::vector<llama::ActivationCapture> captures;
  for (int w = 0; w < windows; ++w) {
    auto cap = llama::CaptureActivations(t, std::span<const int32_t>(tokens).subspan(int64_t{w} * window, window));
    if (!cap.ok()) return Fail(cap.status());
    captures.push_back(std::move(cap).value());
  }

  const std::vector<fidelity::FidelityMethod> methods = fidelity::SmallModelMethods(lorc_paths[0], lorc_paths[1]);
  const std::vector<std::string> missing = fidelity::MissingMethods(methods);
  const double fp16_bytes = 2.0 * c.kv_dim() * 2.0;  // K and V, per token per layer
  std::vector<fidelity::FidelityRow> rows;
  llama::PerplexityOptions po;
  po.window = window;
  po.prefill = prefill;
  po.observation_window = observation;
  const std::span<const int32_t> ppl_span(tokens.data(), std::min<size_t>(tokens.size(), ppl_tokens));
  for (const fidelity::FidelityMethod& m : methods) {
    if (!fidelity::Registered(m.family)) continue;
    if (!only.empty() && std::find(only.begin(), only.end(), m.label) == only.end() && m.label != "full") continue;
    auto factory = llama::CacheFactoryForSpec(m.spec, t.ShapeForLayer(0, window));
    if (!factory.ok()) return Fail(factory.status());
    fidelity::FidelityRow row;
    row.label = m.label;
    // Factor files live in a temp dir: name them by what they hold.
    row.spec = m.spec;
    if (m.spec.rfind("lorc:factors=", 0) == 0) {
      row.spec = m.label.find("progressive") != std::string::npos ? "lorc:factors=<progressive, 0.5>"
                                                                  : "lorc:factors=<uniform, 0.5>";
    }
    row.layer_attention_error.assign(c.n_layers, 0.0);
    // Inspection figures: weighted by the layers (recon.) and the samples (recall / mass) behind
    // each window's figure, so a window where fewer layers answered counts for less.
    double k_sum = 0.0, v_sum = 0.0, recall_sum = 0.0, mass_sum = 0.0, samples = 0.0;
    int recon_layers = 0, selection_layers = 0;
    for (const llama::ActivationCapture& cap : captures) {
      auto r = fidelity::ReplayAttention(t, cap, *factory, prefill, observation);
      if (!r.ok()) return Fail(r.status().WithContext(m.label));
      for (int l = 0; l < c.n_layers; ++l) row.layer_attention_error[l] += r->layer_rel_error[l] / windows;
      row.bytes_per_token += r->stored_bytes_per_token / windows;
      row.kept_fraction += r->kept_fraction / windows;
      if (r->recon_layers > 0) {
        k_sum += r->key_recon_error * r->recon_layers;
        v_sum += r->value_recon_error * r->recon_layers;
        recon_layers += r->recon_layers;
      }
      if (r->selection_samples > 0) {
        const double n = static_cast<double>(r->selection_samples);
        recall_sum += r->topk_recall * n;
        mass_sum += r->attention_mass * n;
        samples += n;
      }
      selection_layers += r->selection_layers;
    }
    if (recon_layers > 0) {
      row.key_recon_error = k_sum / recon_layers;
      row.value_recon_error = v_sum / recon_layers;
    }
    if (samples > 0) {
      row.topk_recall = recall_sum / samples;
      row.attention_mass = mass_sum / samples;
    }
    row.recon_layers = static_cast<double>(recon_layers) / windows;
    row.selection_layers = static_cast<double>(selection_layers) / windows;
    for (double e : row.layer_attention_error) row.attention_error += e / c.n_layers;
    row.ratio_vs_fp16 = row.bytes_per_token > 0 ? fp16_bytes / row.bytes_per_token : 0.0;
    if (ppl_tokens > 0) {
      auto r = llama::EvaluatePerplexity(t, ppl_span, *factory, po);
      if (!r.ok()) return Fail(r.status().WithContext(m.label));
      row.have_ppl = true;
      row.nll = r->nll_per_token();
      row.ppl = r->ppl();
      if (!rows.empty() && rows[0].have_ppl) {
        row.delta_nll = row.nll - rows[0].nll;
        row.delta_ppl = row.ppl - rows[0].ppl;
      }
    }
    std::fprintf(stderr, "[kvt-fidelity] %-22s %7.1f B/token/layer  attn err %.4f  nll %.4f\n", m.label.c_str(),
                 row.bytes_per_token, row.attention_error, row.nll);
    rows.push_back(std::move(row));
  }
  std::filesystem::remove_all(tmp);

  std::string cmd;
  for (int i = 0; i < argc; ++i) cmd += (i ? " " : "") + std::string(argv[i]);
  char header[2048];
  std::snprintf(header, sizeof(header),
                "# KV method fidelity on stories260K (real model, real text)\n\n"
                "Command: `%s`\n\n"
                "Model %s (head_dim %d). Attention error: real Q/K/V captured from %d windows of %d tokens of "
                "the text, replayed per layer (prefill %d tokens, Compress with the last %d queries, then %d "
                "decode steps against exact attention). Perplexity: %lld tokens, same window protocol with the "
                "method in the engine's loop (see examples/llama/README.md). fp16 reference: %.0f bytes per "
                "token per layer. Settings are scaled to head_dim 8 and 512-token windows (equal budget of 64 "
                "tokens for the selection methods; see examples/fidelity/method_table.h). LoRC factors come "
                "from this model's W_k/W_v (kvt::policies_lowrank, half the rank on average).\n",
                cmd.c_str(), c.ToString().c_str(), c.head_dim(), windows, window, prefill, observation,
                window - prefill, static_cast<long long>(ppl_span.size()), fp16_bytes);
  std::filesystem::create_directories(out_dir);
  if (!WriteText(out_dir + "/fidelity.md", fidelity::RenderMarkdown(header, rows, missing)) ||
      !WriteText(out_dir + "/fidelity.csv", fidelity::RenderCsv(rows))) {
    return Fail(IoError("writing the report into " + out_dir));
  }
  if (Status s = fidelity::WriteFidelityPlot(rows, out_dir + "/fidelity.png"); !s.ok()) return Fail(s);
  std::fprintf(stderr, "[kvt-fidelity] wrote %s/fidelity.{md,csv,png}\n", out_dir.c_str());
  return 0;
}
