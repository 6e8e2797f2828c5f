// ReadFileBytes — the whole content of a (small) file, for the model and tokenizer loaders.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status_or.h"

namespace kvt::llama::internal {

// Reads `path` completely. NOT_FOUND when it does not exist, IO_ERROR when it cannot be read,
// INVALID_ARGUMENT when it is larger than `max_bytes`.
StatusOr<std::vector<uint8_t>> ReadFileBytes(const std::string& path,
                                             uint64_t max_bytes = uint64_t{1} << 36);

}  // namespace kvt::llama::internal
