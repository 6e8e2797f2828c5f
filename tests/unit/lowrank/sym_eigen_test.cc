#include "host/kernels/lowrank/sym_eigen.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace kvt::kernels::lowrank {
namespace {

TEST(SymmetricEigen, DecomposesRandomSymmetricMatrices) {
  std::mt19937 rng(11);
  std::normal_distribution<double> g;
  for (int n : {1, 2, 3, 8, 17, 64}) {
    std::vector<double> a(n * n);
    for (int i = 0; i < n; ++i) {
      for (int j = i; j < n; ++j) a[i * n + j] = a[j * n + i] = g(rng);
    }
    std::vector<double> vals(n), vecs(n * n), ws(SymmetricEigenWorkspaceDoubles(n));
    ASSERT_TRUE(SymmetricEigen(a.data(), n, vals.data(), vecs.data(), ws.data()).ok());
    for (int j = 0; j + 1 < n; ++j) EXPECT_GE(vals[j], vals[j + 1]);
    // A v_j = lambda_j v_j and V^T V = I, within 1e-10 (relative to |A|).
    for (int j = 0; j < n; ++j) {
      for (int i = 0; i < n; ++i) {
        double av = 0.0;
        for (int k = 0; k < n; ++k) av += a[i * n + k] * vecs[k * n + j];
        EXPECT_NEAR(av, vals[j] * vecs[i * n + j], 1e-10 * n);
      }
      for (int k = 0; k < n; ++k) {
        double dot = 0.0;
        for (int i = 0; i < n; ++i) dot += vecs[i * n + j] * vecs[i * n + k];
        EXPECT_NEAR(dot, j == k ? 1.0 : 0.0, 1e-12 * n);
      }
    }
  }
}

TEST(SymmetricEigen, RejectsBadInput) {
  double a[4] = {1, NAN, NAN, 1}, v[2], w[4], ws[4];
  EXPECT_EQ(SymmetricEigen(a, 2, v, w, ws).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SymmetricEigen(a, 0, v, w, ws).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SymmetricEigen(nullptr, 2, v, w, ws).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvt::kernels::lowrank
