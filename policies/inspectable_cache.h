// InspectableCache — optional introspection a LayerCache may also implement, for measurement
// (kvt-fidelity's K/V reconstruction error, top-k recall and captured attention mass). Found with
// dynamic_cast<const InspectableCache*>(cache); a cache that does not implement it is simply not
// measured on those columns. Additive: LayerCache is unchanged, serving never calls this.
//
// Threading: same as the LayerCache (one thread at a time). Neither call changes the cache.
#pragma once

#include <cstdint>
#include <vector>

namespace kvt::policies {

class InspectableCache {
 public:
  virtual ~InspectableCache() = default;

  // Methods that keep every token in a lossy form (quantization): writes K and V as the method
  // would reconstruct them, [tokens()][kv_heads][head_dim] float32 each (keys post-RoPE), and
  // returns true. Returns false when the method does not keep every token in reconstructable form.
  virtual bool ReconstructKv(float* keys, float* values) const {
    (void)keys;
    (void)values;
    return false;
  }

  // Selection methods: the absolute token indices (0-based positions in append order) that the
  // most recent Attend read for KV head `kv_head`, ascending. Empty: not a selection method, or no
  // Attend yet.
  virtual std::vector<int64_t> SelectedTokens(int kv_head) const {
    (void)kv_head;
    return {};
  }
};

}  // namespace kvt::policies
