// TaleOptions shared by the TALE cache tests.
#pragma once

#include "policies/lowrank/tale_cache.h"

namespace kvt::lowrank_test {

// Every token at full rank with float32 coefficients and a 16-token exact window: TALE is then
// exact up to float32 rounding (the basis is orthonormal).
inline policies::lowrank::TaleOptions FullRankTaleOptions(policies::lowrank::TaleBasisKind basis) {
  policies::lowrank::TaleOptions o;
  o.window = 16;
  o.fractions = {1.0f, 0.0f, 0.0f, 0.0f};
  o.key_bits = o.value_bits = {32, 32, 32, 32};
  o.basis = basis;
  return o;
}

}  // namespace kvt::lowrank_test
