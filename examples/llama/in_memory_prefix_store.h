// InMemoryPrefixStore — a PrefixKvStore in process memory, chunked like the block plane:
// a chunk of `chunk_tokens` tokens is keyed by the whole token prefix it ends (so a chunk is only
// reused after the same history), and only whole chunks are kept. For tests and demos of the seam;
// the libkvtier-backed store replaces it in serving. Not thread-safe.
#pragma once

#include <map>
#include <vector>

#include "examples/llama/prefix_kv_store.h"

namespace kvt::llama {

class InMemoryPrefixStore final : public PrefixKvStore {
 public:
  explicit InMemoryPrefixStore(int chunk_tokens) : chunk_(chunk_tokens > 0 ? chunk_tokens : 1) {}

  StatusOr<int> Lookup(std::span<const int32_t> tokens) override;
  StatusOr<PrefixKv> Retrieve(std::span<const int32_t> tokens, int n) override;
  Status Store(std::span<const int32_t> tokens, const PrefixKv& kv) override;

  size_t chunks() const { return chunks_.size(); }
  int64_t retrieved_chunks() const { return retrieved_; }

 private:
  int chunk_;
  std::map<std::vector<int32_t>, PrefixKv> chunks_;  // prefix -> that chunk's KV (tokens = chunk_)
  int64_t retrieved_ = 0;
};

}  // namespace kvt::llama
