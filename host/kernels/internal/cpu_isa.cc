#include "host/kernels/internal/cpu_isa.h"

#include <cstdlib>
#include <cstring>

#include "common/cpu_features.h"

namespace kvt::kernels::internal {
namespace {

CpuIsa Detect() {
  __builtin_cpu_init();
  CpuIsa best = CpuIsa::kPortable;
  if (CpuSupports(CpuIsa::kAvx512)) {
    best = CpuIsa::kAvx512;
  } else if (CpuSupports(CpuIsa::kAvx2)) {
    best = CpuIsa::kAvx2;
  }
  if (const char* cap = std::getenv("KVT_KERNEL_ISA")) {
    if (std::strcmp(cap, "portable") == 0) best = CpuIsa::kPortable;
    if (std::strcmp(cap, "avx2") == 0 && best == CpuIsa::kAvx512) best = CpuIsa::kAvx2;
  }
  return best;
}

}  // namespace

bool CpuSupports(CpuIsa isa) {
  __builtin_cpu_init();
  const bool avx2 = CpuHasAvx2FmaF16c();
  switch (isa) {
    case CpuIsa::kPortable: return true;
    case CpuIsa::kAvx2: return avx2;
    case CpuIsa::kAvx512:
      return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl");
  }
  return false;
}

CpuIsa BestCpuIsa() {
  static const CpuIsa best = Detect();
  return best;
}

const char* CpuIsaName(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kPortable: return "portable";
    case CpuIsa::kAvx2: return "avx2";
    case CpuIsa::kAvx512: return "avx512";
  }
  return "?";
}

}  // namespace kvt::kernels::internal
