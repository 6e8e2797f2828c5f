#include "examples/llama/in_memory_prefix_store.h"

#include <algorithm>

namespace kvt::llama {

StatusOr<int> InMemoryPrefixStore::Lookup(std::span<const int32_t> tokens) {
  int n = 0;
  while (n + chunk_ <= static_cast<int>(tokens.size())) {
    std::vector<int32_t> key(tokens.begin(), tokens.begin() + n + chunk_);
    if (chunks_.count(key) == 0) break;
    n += chunk_;
  }
  return n;
}

StatusOr<PrefixKv> InMemoryPrefixStore::Retrieve(std::span<const int32_t> tokens, int n) {
  if (n <= 0 || n % chunk_ != 0 || n > static_cast<int>(tokens.size())) {
    return InvalidArgument("Retrieve: " + std::to_string(n) + " is not a whole number of chunks of the tokens");
  }
  PrefixKv out;
  for (int c = 0; c < n / chunk_; ++c) {
    std::vector<int32_t> key(tokens.begin(), tokens.begin() + (c + 1) * chunk_);
    auto it = chunks_.find(key);
    if (it == chunks_.end()) return NotFound("Retrieve: chunk " + std::to_string(c) + " missing");
    const PrefixKv& ck = it->second;
    if (c == 0) {
      out.layers = ck.layers;
      out.kv_heads = ck.kv_heads;
      out.head_dim = ck.head_dim;
      out.tokens = n;
      out.data.resize(out.LayerStride() * out.layers);
    }
    const size_t row = static_cast<size_t>(ck.kv_heads) * ck.head_dim;
    for (int l = 0; l < out.layers; ++l) {
      std::copy_n(ck.keys(l), chunk_ * row, out.keys(l) + c * chunk_ * row);
      std::copy_n(ck.values(l), chunk_ * row, out.values(l) + c * chunk_ * row);
    }
    ++retrieved_;
  }
  return out;
}

Status InMemoryPrefixStore::Store(std::span<const int32_t> tokens, const PrefixKv& kv) {
  if (kv.tokens != static_cast<int>(tokens.size()) || kv.data.size() != kv.LayerStride() * kv.layers) {
    return InvalidArgument("Store: KV shape does not match the tokens");
  }
  const size_t row = static_cast<size_t>(kv.kv_heads) * kv.head_dim;
  for (int c = 0; (c + 1) * chunk_ <= kv.tokens; ++c) {
    std::vector<int32_t> key(tokens.begin(), tokens.begin() + (c + 1) * chunk_);
    if (chunks_.count(key)) continue;
    PrefixKv ck;
    ck.layers = kv.layers;
    ck.tokens = chunk_;
    ck.kv_heads = kv.kv_heads;
    ck.head_dim = kv.head_dim;
    ck.data.resize(ck.LayerStride() * ck.layers);
    for (int l = 0; l < kv.layers; ++l) {
      std::copy_n(kv.keys(l) + c * chunk_ * row, chunk_ * row, ck.keys(l));
      std::copy_n(kv.values(l) + c * chunk_ * row, chunk_ * row, ck.values(l));
    }
    chunks_.emplace(std::move(key), std::move(ck));
  }
  return Status::Ok();
}

}  // namespace kvt::llama
