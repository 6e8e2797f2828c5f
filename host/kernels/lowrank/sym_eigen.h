// SymmetricEigen — eigenvalues and orthonormal eigenvectors of a small symmetric matrix by cyclic
// Jacobi rotations, in float64.
//
// Used off the decode path: TALE's per-head bases (covariance K^T K of prefill keys, [d][d]) and
// LoRC's per-head SVD of W_k / W_v (through W W^T, [d][d]). d is small (8 to 256), where Jacobi is
// simple, accurate to a few ulps and fast enough (O(d^3) per sweep, ~6-10 sweeps).
//
// Contract: `a` is [n][n] row-major and symmetric (only the upper triangle is read). On return
// eigenvalues[n] are sorted in descending order and eigenvectors is [n][n] row-major with column j
// the unit eigenvector of eigenvalues[j] (eigenvectors[i * n + j] = component i of vector j). The
// sign of each vector is fixed so its largest-magnitude component is positive (deterministic).
// `workspace` holds n * n doubles. Pure function, thread-safe, never allocates.
#pragma once

#include <cstddef>

#include "common/status.h"

namespace kvt::kernels::lowrank {

inline constexpr size_t SymmetricEigenWorkspaceDoubles(int n) {
  return static_cast<size_t>(n) * static_cast<size_t>(n);
}

// INVALID_ARGUMENT for n < 1, null pointers or non-finite input; INTERNAL if 100 sweeps do not
// converge (never seen for symmetric input).
Status SymmetricEigen(const double* a, int n, double* eigenvalues, double* eigenvectors,
                      double* workspace);

}  // namespace kvt::kernels::lowrank
