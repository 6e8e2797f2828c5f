#include "policies/lowrank/internal/checks.h"

#include <charconv>

namespace kvt::policies::lowrank::internal {

Status CheckShape(const LayerShape& s, std::string_view method) {
  const std::string m(method);
  if (s.num_kv_heads < 1 || s.num_q_heads < 1 || s.head_dim < 1 || s.num_layers < 1) {
    return InvalidArgument(m + ": layer shape needs positive heads, head_dim and layers");
  }
  if (s.num_q_heads % s.num_kv_heads != 0 || s.num_q_heads / s.num_kv_heads > 64) {
    return InvalidArgument(m + ": q_heads must be a multiple (at most 64x) of kv_heads");
  }
  if (s.head_dim > 256) return InvalidArgument(m + ": head_dim above 256 is not supported");
  if (s.layer < 0 || s.layer >= s.num_layers) return InvalidArgument(m + ": layer index out of range");
  if (s.max_tokens < 0) return InvalidArgument(m + ": negative max_tokens");
  return Status::Ok();
}

Status CheckBatch(const AppendBatch& b, bool need_pre_rope, std::string_view method) {
  const std::string m(method);
  if (b.tokens < 0) return InvalidArgument(m + ": negative token count");
  if (b.tokens == 0) return Status::Ok();
  if (b.keys == nullptr || b.values == nullptr || b.positions == nullptr) {
    return InvalidArgument(m + ": Append needs keys, values and positions");
  }
  if (need_pre_rope && b.keys_pre_rope == nullptr) {
    return InvalidArgument(m + ": Append needs keys_pre_rope");
  }
  for (int t = 0; t < b.tokens; ++t) {
    if (b.positions[t] < 0) return InvalidArgument(m + ": negative position");
  }
  return Status::Ok();
}

StatusOr<std::array<int, 4>> ParseBits(std::string_view text, std::string_view key) {
  std::array<int, 4> out{};
  size_t pos = 0;
  for (int i = 0; i < 4; ++i) {
    const size_t dash = text.find('-', pos);
    const std::string_view part =
        text.substr(pos, dash == std::string_view::npos ? std::string_view::npos : dash - pos);
    int v = 0;
    auto [p, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
    if (ec != std::errc() || p != part.data() + part.size() || part.empty() ||
        (v != 2 && v != 4 && v != 8 && v != 16 && v != 32) || (i < 3) == (dash == std::string_view::npos)) {
      return InvalidArgument(std::string(key) + " must be four bit widths like 8-8-4-4 (each 2, 4, 8, 16 or 32), got '" +
                             std::string(text) + "'");
    }
    out[i] = v;
    pos = dash == std::string_view::npos ? text.size() : dash + 1;
  }
  return out;
}

}  // namespace kvt::policies::lowrank::internal
