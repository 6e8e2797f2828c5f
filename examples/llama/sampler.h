// Sampler — picks the next token from logits: greedy (argmax, first maximum) at temperature 0,
// else a draw from softmax(logits / temperature) with a seeded xorshift generator, so a run is
// reproducible from its seed. One per sequence; not thread-safe.
#pragma once

#include <cstdint>
#include <vector>

namespace kvt::llama {

class Sampler {
 public:
  Sampler(float temperature, uint64_t seed);
  // `logits` [vocab] (modified when temperature > 0).
  int32_t Sample(float* logits, int vocab);

 private:
  float NextUniform();  // [0, 1)
  float temperature_;
  uint64_t state_;
};

}  // namespace kvt::llama
