#include "examples/llama/synthetic_activations.h"

#include <cmath>

#include "examples/llama/ops.h"

namespace kvt::llama {
namespace {

// splitmix64 stream with Box-Muller normals: cheap, reproducible, no library state.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t Next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  float Uniform() { return static_cast<float>((Next() >> 40) + 1) / 16777217.0f; }  // (0, 1)
  float Normal() {
    if (have_spare_) {
      have_spare_ = false;
      return spare_;
    }
    const float r = std::sqrt(-2.0f * std::log(Uniform()));
    const float a = 6.2831853f * Uniform();
    spare_ = r * std::sin(a);
    have_spare_ = true;
    return r * std::cos(a);
  }

 private:
  uint64_t s_;
  bool have_spare_ = false;
  float spare_ = 0.0f;
};

std::vector<float> RandomMatrix(Rng& rng, int rows, int cols, float scale) {
  std::vector<float> m(static_cast<size_t>(rows) * cols);
  for (float& x : m) x = rng.Normal() * scale;
  return m;
}

}  // namespace

Status SyntheticShape::Validate() const {
  if (layers <= 0 || q_heads <= 0 || kv_heads <= 0 || head_dim <= 0 || q_heads % kv_heads != 0 ||
      head_dim % 2 != 0 || rank <= 0 || rank > head_dim || outlier_channels < 0 ||
      outlier_channels > head_dim || !(correlation >= 0.0f && correlation < 1.0f) || sink_tokens < 0) {
    return InvalidArgument("synthetic shape: invalid sizes");
  }
  return Status::Ok();
}

StatusOr<SyntheticLayerQkv> GenerateSyntheticQkv(const SyntheticShape& s, int layer, int tokens,
                                                 uint64_t seed, int first_position) {
  KVT_RETURN_IF_ERROR(s.Validate());
  if (layer < 0 || layer >= s.layers) return InvalidArgument("synthetic: layer out of range");
  if (tokens <= 0 || tokens > (1 << 22) || first_position < 0) {
    return InvalidArgument("synthetic: token count or position out of range");
  }
  const int hd = s.head_dim, r = s.rank, group = s.q_heads / s.kv_heads;
  const size_t q_row = static_cast<size_t>(s.q_heads) * hd, kv_row = static_cast<size_t>(s.kv_heads) * hd;
  SyntheticLayerQkv out;
  out.layer = layer;
  out.tokens = tokens;
  out.q.resize(tokens * q_row);
  out.k_pre.resize(tokens * kv_row);
  out.v.resize(tokens * kv_row);
  const float w_scale = 1.0f / std::sqrt(static_cast<float>(r));
  const float innov = std::sqrt(1.0f - s.correlation * s.correlation);

  for (int kvh = 0; kvh < s.kv_heads; ++kvh) {
    Rng rng(seed * 0x100000001B3ull + static_cast<uint64_t>(layer) * 1315423911ull + kvh * 2654435761ull + 1);
    // Generated "weights" of this head: latent -> K, V, and each query head of the group.
    const std::vector<float> wk = RandomMatrix(rng, hd, r, w_scale);
    const std::vector<float> wv = RandomMatrix(rng, hd, r, w_scale);
    std::vector<std::vector<float>> wq;
    for (int g = 0; g < group; ++g) wq.push_back(RandomMatrix(rng, hd, r, w_scale));
    std::vector<float> k_offset(hd);
    for (float& x : k_offset) x = 0.3f * rng.Normal();
    for (int c = 0; c < s.outlier_channels; ++c) {
      k_offset[rng.Next() % hd] = s.outlier_scale * (rng.Next() & 1 ? 1.0f : -1.0f);
    }
    // The direction queries lean towards; sinks carry it strongly in their keys.
    std::vector<float> q_bias(r);
    for (float& x : q_bias) x = rng.Normal();

    std::vector<float> h(r), qh(r), tmp(hd);
    for (float& x : h) x = rng.Normal();
    for (int t = 0; t < tokens; ++t) {
      for (int i = 0; i < r; ++i) h[i] = s.correlation * h[i] + innov * rng.Normal();
      const bool sink = first_position + t < s.sink_tokens;
      float* kp = out.k_pre.data() + t * kv_row + static_cast<size_t>(kvh) * hd;
      float* vp = out.v.data() + t * kv_row + static_cast<size_t>(kvh) * hd;
      for (int i = 0; i < r; ++i) qh[i] = sink ? 3.0f * q_bias[i] + h[i] : h[i];
      ops::MatVec(wk.data(), qh.data(), kp, hd, r);
      for (int c = 0; c < hd; ++c) kp[c] += k_offset[c];
      ops::MatVec(wv.data(), h.data(), vp, hd, r);
      for (int c = 0; c < hd; ++c) vp[c] += 0.1f * rng.Normal();
      for (int g = 0; g < group; ++g) {
        for (int i = 0; i < r; ++i) qh[i] = 0.5f * h[i] + q_bias[i] + 0.5f * rng.Normal();
        float* qp = out.q.data() + t * q_row + static_cast<size_t>(kvh * group + g) * hd;
        ops::MatVec(wq[g].data(), qh.data(), tmp.data(), hd, r);
        // Queries read the key subspace too (wk), so q·k tracks the shared latent.
        ops::MatVec(wk.data(), qh.data(), qp, hd, r);
        for (int c = 0; c < hd; ++c) qp[c] = 0.7f * qp[c] + 0.3f * tmp[c];
      }
    }
  }
  out.k = out.k_pre;
  for (int t = 0; t < tokens; ++t) {
    ops::Rope(out.q.data() + t * q_row, s.q_heads, hd, first_position + t, s.rope_theta);
    ops::Rope(out.k.data() + t * kv_row, s.kv_heads, hd, first_position + t, s.rope_theta);
  }
  return out;
}

}  // namespace kvt::llama
