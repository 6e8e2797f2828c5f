// TailorKV layer classification: the dense-preference score of a layer (CPU).
// CUDA twin: gpu/kernels/dense_preference.cuh.
// (Yao et al., "TailorKV", Sec. 3: layers whose attention spreads over many tokens keep all
// tokens, quantized; layers whose attention concentrates on few tokens are served sparsely.)
//
//   score = mean over query heads j and the last `window` prompt queries i of
//           (1 - attention mass of query (j, i) captured by its top ceil(top_frac * L) tokens)
// where query i sits at position tokens - window + i and attends causally to L = position + 1
// tokens. A layer is quantization-friendly ("dense") when score > tau (0.2 in the paper).
// Pure; allocates nothing (caller workspace); parallel over KV heads; blocks until done.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "common/status_or.h"
#include "host/kernels/attention_shape.h"
#include "host/kernels/half.h"

namespace kvt::kernels {

size_t DensePreferenceWorkspaceFloats(const AttentionShape& shape, int window, int64_t tokens);

//   obs  [window][q_heads][head_dim];  keys token-major rows `token_stride` elements apart
StatusOr<float> DensePreferenceScore(const AttentionShape& shape, const float* obs, int window,
                                     const Half* keys, int64_t tokens, int64_t token_stride,
                                     float top_frac, std::span<float> workspace);

// The top-mass count for a row of `length` tokens (shared with the CUDA twin).
inline int64_t DensePreferenceTopCount(int64_t length, float top_frac) {
  const double m = static_cast<double>(top_frac) * static_cast<double>(length);
  int64_t c = static_cast<int64_t>(m);
  if (static_cast<double>(c) < m) ++c;  // ceil
  return c < 1 ? 1 : (c > length ? length : c);
}

}  // namespace kvt::kernels
