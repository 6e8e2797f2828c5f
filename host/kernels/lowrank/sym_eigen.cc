#include "host/kernels/lowrank/sym_eigen.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace kvt::kernels::lowrank {

Status SymmetricEigen(const double* a, int n, double* eigenvalues, double* eigenvectors,
                      double* workspace) {
  if (n < 1) return InvalidArgument("SymmetricEigen: n must be positive, got " + std::to_string(n));
  if (a == nullptr || eigenvalues == nullptr || eigenvectors == nullptr || workspace == nullptr) {
    return InvalidArgument("SymmetricEigen: null pointer");
  }
  const size_t nn = static_cast<size_t>(n);
  double* m = workspace;  // working copy, symmetrized from the upper triangle
  double* v = eigenvectors;
  double scale = 0.0;
  for (size_t i = 0; i < nn; ++i) {
    for (size_t j = 0; j < nn; ++j) {
      const double x = i <= j ? a[i * nn + j] : a[j * nn + i];
      if (!std::isfinite(x)) return InvalidArgument("SymmetricEigen: non-finite input");
      m[i * nn + j] = x;
      v[i * nn + j] = i == j ? 1.0 : 0.0;
      scale = std::max(scale, std::fabs(x));
    }
  }
  const double tiny = scale * 1e-300 + 1e-300;
  bool converged = false;
  for (int sweep = 0; sweep < 100 && !converged; ++sweep) {
    double off = 0.0, diag = 0.0;
    for (size_t i = 0; i < nn; ++i) {
      diag += m[i * nn + i] * m[i * nn + i];
      for (size_t j = i + 1; j < nn; ++j) off += m[i * nn + j] * m[i * nn + j];
    }
    if (off <= 1e-30 * diag || off < tiny) {
      converged = true;
      break;
    }
    for (size_t p = 0; p < nn; ++p) {
      for (size_t q = p + 1; q < nn; ++q) {
        const double apq = m[p * nn + q];
        if (std::fabs(apq) < tiny) continue;
        const double app = m[p * nn + p], aqq = m[q * nn + q];
        // Rotation angle that zeroes m[p][q] (Golub & Van Loan, Algorithm 8.4.1, sym.schur2).
        const double tau = (aqq - app) / (2.0 * apq);
        const double t = (tau >= 0 ? 1.0 : -1.0) / (std::fabs(tau) + std::sqrt(1.0 + tau * tau));
        const double c = 1.0 / std::sqrt(1.0 + t * t), s = t * c;
        for (size_t k = 0; k < nn; ++k) {  // columns p, q of m
          const double mkp = m[k * nn + p], mkq = m[k * nn + q];
          m[k * nn + p] = c * mkp - s * mkq;
          m[k * nn + q] = s * mkp + c * mkq;
        }
        for (size_t k = 0; k < nn; ++k) {  // rows p, q of m
          const double mpk = m[p * nn + k], mqk = m[q * nn + k];
          m[p * nn + k] = c * mpk - s * mqk;
          m[q * nn + k] = s * mpk + c * mqk;
        }
        for (size_t k = 0; k < nn; ++k) {
          const double vkp = v[k * nn + p], vkq = v[k * nn + q];
          v[k * nn + p] = c * vkp - s * vkq;
          v[k * nn + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  if (!converged) return Internal("SymmetricEigen: Jacobi did not converge in 100 sweeps");
  // Selection sort by descending eigenvalue, swapping eigenvector columns along.
  for (size_t i = 0; i < nn; ++i) eigenvalues[i] = m[i * nn + i];
  for (size_t i = 0; i < nn; ++i) {
    size_t best = i;
    for (size_t j = i + 1; j < nn; ++j) {
      if (eigenvalues[j] > eigenvalues[best]) best = j;
    }
    if (best != i) {
      std::swap(eigenvalues[i], eigenvalues[best]);
      for (size_t k = 0; k < nn; ++k) std::swap(v[k * nn + i], v[k * nn + best]);
    }
    size_t arg = 0;
    for (size_t k = 1; k < nn; ++k) {
      if (std::fabs(v[k * nn + i]) > std::fabs(v[arg * nn + i])) arg = k;
    }
    if (v[arg * nn + i] < 0) {
      for (size_t k = 0; k < nn; ++k) v[k * nn + i] = -v[k * nn + i];
    }
  }
  return Status::Ok();
}

}  // namespace kvt::kernels::lowrank
