// TALE bases — the per-head orthonormal bases TALE stores coefficients in.
//
// Three choices for keys (the "beware RoPE"; measured in policies/lowrank/README.md):
//   kPostRope  PCA of post-RoPE keys: eigenvectors of K^T K, sorted by energy. What the TALE paper
//              describes; supports reconstruction-free attention. A truncation may keep one axis of
//              a rotating channel pair and drop the other.
//   kRopePairs RoPE-pair-aware: the canonical axes, ordered by the energy of their RoPE pair
//              (2i, 2i+1), both axes of a pair adjacent. RoPE rotates within a pair and keeps its
//              energy, so the basis is the same at every position; still reconstruction-free.
//   kPreRope   PCA of pre-RoPE keys (the lowest-rank view of keys, as LoRC/ShadowKV use). Attention
//              must rotate each rebuilt key, so it is NOT reconstruction-free; the cache does not
//              offer it, the basis study measures it.
// Values have no RoPE: always PCA.
//
// Shapes: rows [n][stride] float32, the first `dim` floats of each row used (so one head of a
// [tokens][kv_heads][head_dim] buffer is rows = base + h * head_dim, stride = kv_heads * head_dim);
// basis [dim][dim] row-major, column j = basis vector j. Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <string_view>

#include "common/status_or.h"

namespace kvt::policies::lowrank {

enum class TaleBasisKind { kPostRope, kRopePairs, kPreRope };

StatusOr<TaleBasisKind> ParseTaleBasisKind(std::string_view word);  // "post", "pairs", "pre"
std::string_view TaleBasisKindName(TaleBasisKind kind);

// PCA basis (uncentered: the second-moment matrix X^T X, since attention uses raw dot products).
// Energies (eigenvalues, descending) go to `energy` [dim] when non-null. INVALID_ARGUMENT for
// n < 1 or dim outside [1, 256].
Status PcaBasis(const float* rows, int64_t n, int dim, int64_t stride, float* basis,
                double* energy = nullptr);

// Pair-aware basis; dim must be even.
Status RopePairBasis(const float* rows, int64_t n, int dim, int64_t stride, float* basis,
                     double* energy = nullptr);

}  // namespace kvt::policies::lowrank
