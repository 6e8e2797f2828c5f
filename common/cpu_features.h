// CPU feature checks shared by the host kernels' run-time dispatch (host/kernels/internal/cpu_isa.h,
// host/kernels/lowrank/internal/fast_math.h). x86-64 only; header-only so that every kernel
// library can use it without a link dependency.
#pragma once

#include <cpuid.h>

namespace kvt {

// AVX2 + FMA + F16C, which every AVX2 kernel path is compiled for. F16C comes straight from CPUID
// leaf 1 (ECX bit 29): clang's __builtin_cpu_supports does not know "f16c". Thread-safe.
inline bool CpuHasAvx2FmaF16c() {
  __builtin_cpu_init();
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_F16C) != 0;
  return f16c && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

}  // namespace kvt
