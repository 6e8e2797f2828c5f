// One measured row of the fidelity table, and its Markdown / CSV rendering.
#pragma once

#include <string>
#include <vector>

namespace kvt::fidelity {

struct FidelityRow {
  std::string label, spec;
  double bytes_per_token = 0.0;     // per layer, as stored
  double ratio_vs_fp16 = 0.0;       // fp16 bytes per token per layer / bytes_per_token
  double kept_fraction = 0.0;
  std::vector<double> layer_attention_error;  // mean relative L2 error per layer
  double attention_error = 0.0;     // mean over layers
  double nll = 0.0, delta_nll = 0.0, ppl = 0.0, delta_ppl = 0.0;
  bool have_ppl = false;
  // From policies::InspectableCache; negative: the method does not expose it (n/a).
  double key_recon_error = -1.0, value_recon_error = -1.0;
  double topk_recall = -1.0, attention_mass = -1.0;
  // Layers (mean per window) behind those figures; fewer than all layers for a per-layer-mixed
  // cache (TailorKV: recon. over its dense layers, recall / mass over its sparse layers).
  double recon_layers = 0.0, selection_layers = 0.0;
};

// `header` is prose placed above the table (provenance, command, scaling, missing methods).
std::string RenderMarkdown(const std::string& header, const std::vector<FidelityRow>& rows,
                           const std::vector<std::string>& missing);
std::string RenderCsv(const std::vector<FidelityRow>& rows);

}  // namespace kvt::fidelity
