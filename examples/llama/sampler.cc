#include "examples/llama/sampler.h"

#include "examples/llama/ops.h"

namespace kvt::llama {

Sampler::Sampler(float temperature, uint64_t seed)
    : temperature_(temperature), state_(seed == 0 ? 0x9E3779B97F4A7C15ull : seed) {}

float Sampler::NextUniform() {
  state_ ^= state_ >> 12;
  state_ ^= state_ << 25;
  state_ ^= state_ >> 27;
  return static_cast<float>((state_ * 0x2545F4914F6CDD1Dull) >> 40) / 16777216.0f;
}

int32_t Sampler::Sample(float* logits, int vocab) {
  if (!(temperature_ > 0.0f)) {
    int32_t best = 0;
    for (int i = 1; i < vocab; ++i) {
      if (logits[i] > logits[best]) best = i;
    }
    return best;
  }
  for (int i = 0; i < vocab; ++i) logits[i] /= temperature_;
  ops::Softmax(logits, vocab);
  const float r = NextUniform();
  float cdf = 0.0f;
  for (int i = 0; i < vocab; ++i) {
    cdf += logits[i];
    if (r < cdf) return i;
  }
  return vocab - 1;  // rounding
}

}  // namespace kvt::llama
