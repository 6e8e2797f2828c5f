// What the host kernels need from the CPU. Apart from KIVI quantization (which picks its path at
// run time, internal/cpu_isa.h), the host kernels are compiled for AVX2 + FMA + F16C: on a CPU
// without them their first instruction would be SIGILL. Entry points that will run host kernels
// (policies::MakeLayerCache, sequence::Sequence::Open/Restore) call this first and turn that into
// an error instead.
#pragma once

#include "common/status.h"

namespace kvt::kernels {

// OK on a CPU (and OS) with AVX2, FMA and F16C; UNSUPPORTED, naming what is missing, otherwise.
// Cheap after the first call; thread-safe.
Status RequireHostKernelCpu();

}  // namespace kvt::kernels
