// kvt-llama plan — builds and saves the model's TailorKV sequence plan from a calibration text.
#include <cstdio>

#include "examples/llama/cli_commands.h"
#include "examples/llama/corpus.h"
#include "examples/llama/model_loader.h"
#if KVT_LLAMA_HAVE_SEQUENCE
#include "examples/llama/plan_calibration.h"
#endif

namespace kvt::llama::cli {

CLI::App* AddPlanCommand(CLI::App& app, PlanArgs& a) {
  CLI::App* c = app.add_subcommand(
      "plan",
      "Classify every layer (TailorKV dense-preference score over the last --obs queries of\n"
      "--windows calibration windows; > --tau: dense, else sparse) and write the sequence plan; use\n"
      "it as --policy plan:FILE. Dense layers become --dense (default KIVI 1-bit; tale:... keeps\n"
      "every token in low rank), sparse ones --sparse (default: offloaded fp16 with dominant-token\n"
      "selection; kvcompose:... evicts tokens).");
  c->add_option("--model", a.model, "checkpoint: llama2.c .bin or GGUF")->required();
  c->add_option("--tokenizer", a.tokenizer, "llama2.c tokenizer (optional for a GGUF that embeds one)");
  c->add_option("--text", a.text, "calibration text (UTF-8)")->required();
  c->add_option("--out", a.out, "plan file to write")->required();
  c->add_option("--window", a.window, "tokens per calibration window")->check(CLI::Range(2, 1 << 20));
  c->add_option("--windows", a.windows, "calibration windows")->check(CLI::Range(1, 1 << 16));
  c->add_option("--obs", a.observation, "last queries of a window scored")->check(CLI::Range(1, 4096));
  c->add_option("--tau", a.tau, "dense-preference threshold")->check(CLI::Range(0.0f, 1.0f));
  c->add_option("--dense", a.dense, "layer spec of dense layers (kivi:bits=1, tale:window=64, ...)");
  c->add_option("--sparse", a.sparse, "layer spec of sparse layers (sparse:budget=192, kvcompose:ratio=0.5, ...)");
  return c;
}

int RunPlan(const PlanArgs& a) {
#if KVT_LLAMA_HAVE_SEQUENCE
  auto model = LoadModelWithTokenizer(a.model, a.tokenizer);
  auto text = model.ok() ? ReadTextFile(a.text) : StatusOr<std::string>(model.status());
  if (!text.ok()) {
    std::fprintf(stderr, "kvt-llama: %s\n", text.status().ToString().c_str());
    return 1;
  }
  Transformer transformer(model->weights);
  const std::vector<int32_t> tokens = TokenizeDocuments(*model->tokenizer, *text, 0);
  PlanCalibration o;
  o.window = a.window;
  o.windows = a.windows;
  o.planner.tau = a.tau;
  o.planner.observation = a.observation;
  auto dense = sequence::ParseLayerSpec(a.dense);
  auto sparse = sequence::ParseLayerSpec(a.sparse);
  if (!dense.ok() || !sparse.ok()) {
    std::fprintf(stderr, "kvt-llama: %s\n", (dense.ok() ? sparse.status() : dense.status()).ToString().c_str());
    return 1;
  }
  o.planner.dense = *dense;
  o.planner.sparse = *sparse;
  std::string name = a.model.substr(a.model.find_last_of('/') + 1);
  auto plan = PlanFromCalibration(transformer, tokens, o, name);
  Status s = plan.ok() ? sequence::SavePlan(*plan, a.out) : plan.status();
  if (!s.ok()) {
    std::fprintf(stderr, "kvt-llama: %s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("%s", sequence::FormatPlan(*plan).c_str());
  return 0;
#else
  std::fprintf(stderr, "kvt-llama: plan needs the sequence plane, not built into this engine\n");
  return 1;
#endif
}

}  // namespace kvt::llama::cli
