// Corpus tokenization for perplexity: the text is split into documents at blank lines (TinyStories
// separates stories that way), each document is trimmed and encoded with BOS and the dummy prefix
// (as llama2.c pretokenized its training data), and the documents are concatenated.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status_or.h"
#include "examples/llama/tokenizer.h"

namespace kvt::llama {

// Stops once `max_tokens` (> 0) tokens are produced, truncating the last document.
std::vector<int32_t> TokenizeDocuments(const Tokenizer& tokenizer, std::string_view text,
                                       int64_t max_tokens = 0);

// The documents themselves (trimmed, non-empty), in order.
std::vector<std::string_view> SplitDocuments(std::string_view text);

StatusOr<std::string> ReadTextFile(const std::string& path);

}  // namespace kvt::llama
