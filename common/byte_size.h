// Human-readable sizes: "64MiB", "4 GiB", "1.5G", "1048576", "10%" (of physical memory).
#pragma once

#include <cstdint>
#include <string>

#include "common/status_or.h"

namespace kvt {

// Bytes from a size with an optional binary unit (B, K/KiB/KB, M, G, T) or a percentage of
// physical memory. Negative, unknown units and overflowing values are INVALID_ARGUMENT.
StatusOr<uint64_t> ParseByteSize(const std::string& text);

// Physical memory of this machine (sysconf), or 8 GiB if it cannot be read.
uint64_t PhysicalMemoryBytes();

}  // namespace kvt
