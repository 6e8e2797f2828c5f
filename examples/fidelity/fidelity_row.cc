#include "examples/fidelity/fidelity_row.h"

#include <cstdio>

namespace kvt::fidelity {
namespace {

std::string Fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof(b), f, v);
  return b;
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
    s += " n/a¹ | n/a¹ |\n";
  }
  s += "\n¹ Not measurable through the LayerCache interface, which exposes neither reconstructed K/V nor "
       "the selected token indices; needs a method-specific inspection hook.\n";
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
  s += ",nll,delta_nll,ppl,delta_ppl\n";
  for (const FidelityRow& r : rows) {
    s += r.label + ",\"" + r.spec + "\"," + Fmt("%.3f", r.bytes_per_token) + "," + Fmt("%.4f", r.ratio_vs_fp16) +
         "," + Fmt("%.4f", r.kept_fraction) + "," + Fmt("%.6f", r.attention_error);
    for (double e : r.layer_attention_error) s += "," + Fmt("%.6f", e);
    if (r.have_ppl) {
      s += "," + Fmt("%.6f", r.nll) + "," + Fmt("%.6f", r.delta_nll) + "," + Fmt("%.6f", r.ppl) + "," +
           Fmt("%.6f", r.delta_ppl) + "\n";
    } else {
      s += ",,,,\n";
    }
  }
  return s;
}

}  // namespace kvt::fidelity
