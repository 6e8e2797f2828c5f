#include "host/kernels/cpu_requirements.h"

#include "host/kernels/internal/cpu_isa.h"

namespace kvt::kernels {

Status RequireHostKernelCpu() {
  static const bool ok = internal::CpuSupports(internal::CpuIsa::kAvx2);
  if (ok) return Status::Ok();
  return Unsupported(
      "this CPU lacks AVX2, FMA or F16C, which kv-tierd's host kernels are built for "
      "(every x86-64 server CPU since 2013 has them)");
}

}  // namespace kvt::kernels
