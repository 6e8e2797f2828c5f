// kvt-lorc — LoRC's offline pass: reads a checkpoint (llama2.c .bin or GGUF, through kvt::llama's
// loader), factors every layer's W_k and W_v per KV head by truncated SVD with a progressive (or
// uniform) rank schedule, and writes the factors file (format: policies/lowrank/lorc_factors.h).
//
//   kvt-lorc --model M --out FILE [--budget 0.5] [--key-budget B] [--value-budget B]
//            [--schedule progressive|uniform] [--json]
// Prints the schedule (ranks per layer, condition numbers) as JSON with --json.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "policies/lowrank/lorc_factors.h"
#if KVT_LORC_HAVE_LLAMA
#include "examples/llama/model_loader.h"
#endif

namespace {

int Usage() {
  std::fprintf(stderr,
               "usage: kvt-lorc --model M --out FILE [--budget 0.5] [--key-budget B] [--value-budget B]\n"
               "                [--schedule progressive|uniform] [--json]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace kvt::policies::lowrank;
  std::string model, out, schedule = "progressive";
  double budget = 0.5, kb = -1.0, vb = -1.0;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a == "--json") {
      json = true;
    } else if ((a == "--model" || a == "--out" || a == "--schedule" || a == "--budget" || a == "--key-budget" ||
                a == "--value-budget") && (v = next()) != nullptr) {
      if (a == "--model") model = v;
      else if (a == "--out") out = v;
      else if (a == "--schedule") schedule = v;
      else if (a == "--budget") budget = std::atof(v);
      else if (a == "--key-budget") kb = std::atof(v);
      else vb = std::atof(v);
    } else {
      return Usage();
    }
  }
  if (model.empty() || out.empty()) return Usage();
  if (kb < 0) kb = budget;
  if (vb < 0) vb = budget;
  auto sched = ParseLorcSchedule(schedule);
  if (!sched.ok()) {
    std::fprintf(stderr, "kvt-lorc: %s\n", sched.status().ToString().c_str());
    return 2;
  }
#if KVT_LORC_HAVE_LLAMA
  auto loaded = kvt::llama::LoadModelFile(model);
  if (!loaded.ok()) {
    std::fprintf(stderr, "kvt-lorc: %s\n", loaded.status().ToString().c_str());
    return 1;
  }
  const auto& w = loaded->weights;
  const auto& c = w.config;
  LorcWeightsView view{c.n_layers, c.dim, c.n_kv_heads, c.head_dim(), w.wk.data(), w.wv.data()};
  auto f = ComputeLorcFactors(view, kb, vb, *sched);
  if (!f.ok()) {
    std::fprintf(stderr, "kvt-lorc: %s\n", f.status().ToString().c_str());
    return 1;
  }
  if (auto st = SaveLorcFactors(*f, out); !st.ok()) {
    std::fprintf(stderr, "kvt-lorc: %s\n", st.ToString().c_str());
    return 1;
  }
  if (json) {
    std::printf("{\"model\": \"%s\", \"out\": \"%s\", \"schedule\": \"%s\", \"key_budget\": %.4f, "
                "\"value_budget\": %.4f, \"head_dim\": %d, \"layers\": [\n",
                model.c_str(), out.c_str(), schedule.c_str(), kb, vb, c.head_dim());
    for (int l = 0; l < c.n_layers; ++l) {
      const auto& lf = f->layers[l];
      double kc = 0, vc = 0;
      for (int h = 0; h < c.n_kv_heads; ++h) {
        const int d = c.head_dim();
        kc += std::log(lf.key_singular[h * d] / std::max(1e-30f, lf.key_singular[h * d + d - 1]));
        vc += std::log(lf.value_singular[h * d] / std::max(1e-30f, lf.value_singular[h * d + d - 1]));
      }
      std::printf("  {\"layer\": %d, \"key_rank\": %d, \"value_rank\": %d, \"key_cond\": %.3f, \"value_cond\": %.3f}%s\n",
                  l, lf.key_rank, lf.value_rank, std::exp(kc / c.n_kv_heads), std::exp(vc / c.n_kv_heads),
                  l + 1 < c.n_layers ? "," : "");
    }
    std::printf("]}\n");
  } else {
    std::printf("kvt-lorc: wrote %s (%d layers)\n", out.c_str(), c.n_layers);
  }
  return 0;
#else
  std::fprintf(stderr, "kvt-lorc: built without kvt::llama (KVT_BUILD_EXAMPLES=OFF): no model loader\n");
  return 1;
#endif
}
