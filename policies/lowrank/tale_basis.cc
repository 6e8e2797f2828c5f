#include "policies/lowrank/tale_basis.h"

#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

#include "host/kernels/lowrank/sym_eigen.h"

namespace kvt::policies::lowrank {

StatusOr<TaleBasisKind> ParseTaleBasisKind(std::string_view word) {
  if (word == "post") return TaleBasisKind::kPostRope;
  if (word == "pairs") return TaleBasisKind::kRopePairs;
  if (word == "pre") return TaleBasisKind::kPreRope;
  return InvalidArgument("TALE basis must be post, pairs or pre, got '" + std::string(word) + "'");
}

std::string_view TaleBasisKindName(TaleBasisKind kind) {
  switch (kind) {
    case TaleBasisKind::kPostRope: return "post";
    case TaleBasisKind::kRopePairs: return "pairs";
    case TaleBasisKind::kPreRope: return "pre";
  }
  return "?";
}

Status PcaBasis(const float* rows, int64_t n, int dim, int64_t stride, float* basis, double* energy) {
  if (n < 1 || dim < 1 || dim > 256 || rows == nullptr || basis == nullptr || stride < dim) {
    return InvalidArgument("PcaBasis: need n >= 1, dim in [1, 256], stride >= dim");
  }
  const size_t d = static_cast<size_t>(dim);
  std::vector<double> cov(d * d, 0.0), vals(d), vecs(d * d), ws(d * d);
  for (int64_t t = 0; t < n; ++t) {
    const float* x = rows + t * stride;
    for (size_t i = 0; i < d; ++i) {
      const double xi = x[i];
      for (size_t j = i; j < d; ++j) cov[i * d + j] += xi * x[j];
    }
  }
  KVT_RETURN_IF_ERROR(
      kernels::lowrank::SymmetricEigen(cov.data(), dim, vals.data(), vecs.data(), ws.data()));
  for (size_t i = 0; i < d * d; ++i) basis[i] = static_cast<float>(vecs[i]);
  if (energy != nullptr) std::copy(vals.begin(), vals.end(), energy);
  return Status::Ok();
}

Status RopePairBasis(const float* rows, int64_t n, int dim, int64_t stride, float* basis,
                     double* energy) {
  if (n < 1 || dim < 2 || dim % 2 != 0 || dim > 256 || rows == nullptr || basis == nullptr ||
      stride < dim) {
    return InvalidArgument("RopePairBasis: need n >= 1, even dim in [2, 256], stride >= dim");
  }
  const int pairs = dim / 2;
  std::vector<double> pair_energy(pairs, 0.0), axis_energy(dim, 0.0);
  for (int64_t t = 0; t < n; ++t) {
    const float* x = rows + t * stride;
    for (int i = 0; i < dim; ++i) axis_energy[i] += static_cast<double>(x[i]) * x[i];
  }
  for (int p = 0; p < pairs; ++p) pair_energy[p] = axis_energy[2 * p] + axis_energy[2 * p + 1];
  std::vector<int> order(pairs);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return pair_energy[a] > pair_energy[b]; });
  std::fill(basis, basis + static_cast<size_t>(dim) * dim, 0.0f);
  for (int j = 0; j < pairs; ++j) {
    const int p = order[j];
    basis[static_cast<size_t>(2 * p) * dim + 2 * j] = 1.0f;
    basis[static_cast<size_t>(2 * p + 1) * dim + 2 * j + 1] = 1.0f;
    if (energy != nullptr) {
      energy[2 * j] = pair_energy[p] / 2;
      energy[2 * j + 1] = pair_energy[p] / 2;
    }
  }
  return Status::Ok();
}

}  // namespace kvt::policies::lowrank
