#include "examples/llama/plan_calibration.h"

#include <algorithm>

#include "examples/llama/activation_capture.h"

namespace kvt::llama {

StatusOr<sequence::SequencePlan> PlanFromCalibration(const Transformer& model, std::span<const int32_t> tokens,
                                                     const PlanCalibration& o, std::string model_name) {
  const ModelConfig& c = model.config();
  const int window = std::min(o.window, c.seq_len);
  if (window < 2 || o.windows <= 0) return InvalidArgument("calibration: window >= 2 and windows >= 1 required");
  const kernels::AttentionShape shape{c.n_heads, c.n_kv_heads, c.head_dim()};
  sequence::Planner planner(std::move(model_name), c.n_layers, shape, o.planner);
  int used = 0;
  for (size_t start = 0; used < o.windows && start + window <= tokens.size(); start += window, ++used) {
    KVT_ASSIGN_OR_RETURN(ActivationCapture cap, CaptureActivations(model, tokens.subspan(start, window)));
    const int obs = std::min(o.planner.observation, window);
    for (int l = 0; l < c.n_layers; ++l) {
      const LayerCapture& lc = cap.layers[static_cast<size_t>(l)];
      const float* q = lc.q.data() + static_cast<size_t>(window - obs) * shape.q_heads * shape.head_dim;
      KVT_RETURN_IF_ERROR(planner.Observe(l, q, obs, lc.k.data(), window));
    }
  }
  if (used == 0) return InvalidArgument("calibration: text shorter than one window");
  return planner.Build();
}

}  // namespace kvt::llama
