#include "sequence/planner.h"

#include <algorithm>

#include "host/kernels/convert.h"
#include "host/kernels/dense_preference.h"

namespace kvt::sequence {

Planner::Planner(std::string model, int layers, const kernels::AttentionShape& shape, PlannerOptions options)
    : model_(std::move(model)), shape_(shape), options_(std::move(options)),
      sums_(static_cast<size_t>(std::max(layers, 0)), 0.0), counts_(sums_.size(), 0) {}

Status Planner::Observe(int layer, const float* queries, int window, const float* keys, int64_t tokens) {
  KVT_RETURN_IF_ERROR(shape_.Validate());
  if (layer < 0 || layer >= static_cast<int>(sums_.size())) return InvalidArgument("planner: bad layer");
  if (!queries || !keys || window <= 0 || tokens <= 0) return InvalidArgument("planner: empty observation");
  const int w = static_cast<int>(std::min<int64_t>({options_.observation, window, tokens}));
  const int64_t row = static_cast<int64_t>(shape_.kv_heads) * shape_.head_dim;
  std::vector<kernels::Half> k(static_cast<size_t>(tokens * row));
  kernels::ConvertToHalf(keys, k.data(), tokens * row);
  const float* q = queries + static_cast<int64_t>(window - w) * shape_.q_heads * shape_.head_dim;
  std::vector<float> ws(kernels::DensePreferenceWorkspaceFloats(shape_, w, tokens));
  KVT_ASSIGN_OR_RETURN(const float score,
                       kernels::DensePreferenceScore(shape_, q, w, k.data(), tokens, row, options_.top_frac, ws));
  sums_[static_cast<size_t>(layer)] += score;
  counts_[static_cast<size_t>(layer)] += 1;
  return Status::Ok();
}

StatusOr<SequencePlan> Planner::Build() const {
  SequencePlan plan;
  plan.model = model_;
  plan.q_heads = shape_.q_heads;
  plan.kv_heads = shape_.kv_heads;
  plan.head_dim = shape_.head_dim;
  for (size_t l = 0; l < sums_.size(); ++l) {
    if (counts_[l] == 0) return InvalidArgument("planner: layer " + std::to_string(l) + " never observed");
    const float score = static_cast<float>(sums_[l] / counts_[l]);
    LayerPlan p = score > options_.tau ? options_.dense : options_.sparse;
    p.score = score;
    plan.layers.push_back(p);
  }
  KVT_RETURN_IF_ERROR(plan.Validate());
  return plan;
}

}  // namespace kvt::sequence
