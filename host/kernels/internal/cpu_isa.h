// CpuIsa — which vector instruction set a host kernel runs with, picked once at run time from
// CPUID: the portable path needs nothing beyond SSE2, the AVX2 path AVX2 + FMA + F16C, the AVX-512
// path also AVX-512 F/BW/VL. Every path computes bit-for-bit the same function (the tests compare
// them); only speed differs. Used by the KIVI quantization kernels; the other host kernels are
// still compiled for AVX2 only (host/kernels/CMakeLists.txt).
#pragma once

namespace kvt::kernels::internal {

enum class CpuIsa { kPortable, kAvx2, kAvx512 };

// True when this CPU (and OS) can run kernels built for `isa`. Thread-safe.
bool CpuSupports(CpuIsa isa);

// The fastest of the above this CPU supports; computed once. KVT_KERNEL_ISA=portable|avx2|avx512
// in the environment caps it (for comparing paths on one machine), never raising it.
CpuIsa BestCpuIsa();

const char* CpuIsaName(CpuIsa isa);

}  // namespace kvt::kernels::internal
