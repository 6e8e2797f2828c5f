// Test helper: writes a parsed GgufFile back to GGUF v3 bytes, optionally with every tensor
// converted to F16 — to test the F16 path and to build malformed variants of a real file.
#pragma once

#include <cstdint>
#include <vector>

#include "examples/llama/gguf_file.h"

namespace kvt::llama::testing {

std::vector<uint8_t> WriteGguf(const GgufFile& file, bool tensors_as_f16);

// IEEE binary32 -> binary16, round to nearest even.
uint16_t FloatToHalf(float f);

}  // namespace kvt::llama::testing
