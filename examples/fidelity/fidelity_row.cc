#include "examples/fidelity/fidelity_row.h"

#include <cmath>
#include <cstdio>

namespace kvt::fidelity {
namespace {

std::string Fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof(b), f, v);
  return b;
}

// " (3/5 layers²)" when only some layers answered, else "".
std::string LayersNote(double answered, size_t layers) {
  if (answered >= static_cast<double>(layers) - 1e-9) return "";
  const double whole = std::round(answered);
  const std::string n = std::fabs(answered - whole) < 1e-9 ? Fmt("%.0f", whole) : Fmt("%.2f", answered);
  return " (" + n + "/" + std::to_string(layers) + " layers²)";
}

}  // namespace

std::string RenderMarkdown(const std::string& header, const std::vector<FidelityRow>& rows,
                           const std::vector<std::string>& missing) {
  std::string s = header + "\n";
  const size_t layers = rows.empty() ? 0 : rows[0].layer_attention_error.size();
  s += "| method | spec | bytes/token/layer | × vs fp16 | kept | attn rel. err (mean) |";
  for (size_t l = 0; l < layers; ++l) s += " L" + std::to_string(l) + " |";
  s += " NLL | ΔNLL | ppl | Δppl | K/V recon. err | top-k recall / mass |\n|---|---|---:|---:|---:|---:|";
  for (size_t l = 0; l < layers; ++l) s += "---:|";
  s += "---:|---:|---:|---:|---|---|\n";
  for (const FidelityRow& r : rows) {
    s += "| " + r.label + " | `" + r.spec + "` | " + Fmt("%.1f", r.bytes_per_token) + " | " +
         Fmt("%.2f", r.ratio_vs_fp16) + " | " + Fmt("%.3f", r.kept_fraction) + " | " +
         Fmt("%.4f", r.attention_error) + " |";
    for (double e : r.layer_attention_error) s += " " + Fmt("%.4f", e) + " |";
    if (r.have_ppl) {
      s += " " + Fmt("%.4f", r.nll) + " | " + Fmt("%+.4f", r.delta_nll) + " | " + Fmt("%.4f", r.ppl) +
           " | " + Fmt("%+.4f", r.delta_ppl) + " |";
    } else {
      s += " – | – | – | – |";
    }
    s += r.key_recon_error >= 0
             ? " K " + Fmt("%.4f", r.key_recon_error) + " / V " + Fmt("%.4f", r.value_recon_error) +
                   LayersNote(r.recon_layers, layers) + " |"
             : std::string(" n/a¹ |");
    s += r.topk_recall >= 0
             ? " " + Fmt("%.3f", r.topk_recall) + " / " + Fmt("%.3f", r.attention_mass) +
                   LayersNote(r.selection_layers, layers) + " |\n"
             : std::string(" n/a¹ |\n");
  }
  s += "\nK/V recon. err: ||K'-K||_F/||K||_F (and V) of what the cache would reconstruct, at the window's "
       "end. Top-k recall / mass: per decode step and KV head, the fraction of the tokens the method read "
       "that are among the exact top-k (k = tokens read; importance = exact softmax probability averaged "
       "over the head's query group), and the exact attention mass on them. Both come from "
       "policies::InspectableCache.\n"
       "¹ The method does not implement policies::InspectableCache for this column (not a quantizer "
       "keeping every token / not a token-selection method, or not instrumented yet).\n"
       "² A per-layer-mixed cache answers per layer: TailorKV's dense layers (KIVI-quantized) give the "
       "recon. err and read every token, its sparse layers (fp16 K/V of every token, attention over "
       "sinks + top-k gathered + recent) give the recall / mass; each figure is the mean over the layers "
       "that gave it (n/L = such layers per window, mean over windows; the layer kinds are decided per "
       "window from the prompt).\n"
       "TALE's recon. err: K and V rebuilt from each token's truncated, quantized basis coefficients "
       "(records mapped back to tokens by a 2-bit level tag per token and head, counted in its bytes) "
       "plus the exact recent window; it weighs every token alike, while TALE gives rank to the tokens "
       "attention uses, hence a large recon. err beside a small attention error.\n";
  if (!missing.empty()) {
    s += "\nMissing methods (not in the policies registry, not measured):\n";
    for (const std::string& m : missing) s += "- " + m + "\n";
  }
  return s;
}

std::string RenderCsv(const std::vector<FidelityRow>& rows) {
  const size_t layers = rows.empty() ? 0 : rows[0].layer_attention_error.size();
  std::string s = "method,spec,bytes_per_token_per_layer,ratio_vs_fp16,kept_fraction,attention_rel_error";
  for (size_t l = 0; l < layers; ++l) s += ",attention_rel_error_L" + std::to_string(l);
  s += ",nll,delta_nll,ppl,delta_ppl,key_recon_error,value_recon_error,topk_recall,attention_mass,"
       "recon_layers,selection_layers\n";
  auto opt = [](double v) { return v >= 0 ? Fmt("%.6f", v) : std::string(); };
  for (const FidelityRow& r : rows) {
    s += r.label + ",\"" + r.spec + "\"," + Fmt("%.3f", r.bytes_per_token) + "," + Fmt("%.4f", r.ratio_vs_fp16) +
         "," + Fmt("%.4f", r.kept_fraction) + "," + Fmt("%.6f", r.attention_error);
    for (double e : r.layer_attention_error) s += "," + Fmt("%.6f", e);
    if (r.have_ppl) {
      s += "," + Fmt("%.6f", r.nll) + "," + Fmt("%.6f", r.delta_nll) + "," + Fmt("%.6f", r.ppl) + "," +
           Fmt("%.6f", r.delta_ppl);
    } else {
      s += ",,,,";
    }
    s += "," + opt(r.key_recon_error) + "," + opt(r.value_recon_error) + "," + opt(r.topk_recall) + "," +
         opt(r.attention_mass) + "," + Fmt("%.2f", r.recon_layers) + "," + Fmt("%.2f", r.selection_layers) + "\n";
  }
  return s;
}

}  // namespace kvt::fidelity
