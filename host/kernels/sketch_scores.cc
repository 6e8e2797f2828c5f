#include "host/kernels/sketch_scores.h"

#include <oneapi/tbb/parallel_for.h>

#include <algorithm>
#include <vector>

namespace kvt::kernels {

Status SketchScores(const KiviLayout& layout, const uint8_t* codes, const Half* scale, const Half* zero,
                    int64_t groups, const float* qhat, const int32_t* selected, int channels,
                    int64_t begin, int64_t n, float* scores, int64_t score_stride) {
  KVT_RETURN_IF_ERROR(layout.Validate());
  const int kvh = layout.shape.kv_heads, d = layout.shape.head_dim, bits = layout.bits;
  const int64_t G = layout.key_group;
  if (groups < 0 || begin < 0 || n < 0 || begin + n > groups * G) {
    return InvalidArgument("sketch scores: tokens outside the quantized groups");
  }
  if (channels <= 0 || channels > d || score_stride < n) return InvalidArgument("sketch scores: bad sizes");
  if (n == 0) return Status::Ok();
  if (!codes || !scale || !zero || !qhat || !selected || !scores) return InvalidArgument("sketch scores: null buffer");
  for (int64_t i = 0; i < static_cast<int64_t>(kvh) * channels; ++i) {
    if (selected[i] < 0 || selected[i] >= d) return InvalidArgument("sketch scores: bad channel");
  }
  const int64_t group_bytes = layout.KeyGroupCodeBytes() / d;  // one channel's codes in a group
  const uint32_t mask = (1u << bits) - 1u;
  const int per_byte = 8 / bits;
  // Byte -> its per_byte codes as floats, so a group's codes unpack with one lookup per byte and
  // the accumulation below is a plain vectorizable loop.
  float lut[256][8];
  for (int byte = 0; byte < 256; ++byte) {
    for (int j = 0; j < per_byte; ++j) lut[byte][j] = static_cast<float>((byte >> (j * bits)) & mask);
  }
  tbb::parallel_for(0, kvh, [&](int h) {
    float* out = scores + h * score_stride;
    std::fill(out, out + n, 0.0f);
    std::vector<float> codes_f(static_cast<size_t>(G));
    const int64_t g_begin = begin / G, g_end = (begin + n + G - 1) / G;
    for (int64_t g = g_begin; g < g_end; ++g) {
      const int64_t t0 = std::max(begin, g * G), t1 = std::min(begin + n, (g + 1) * G);
      for (int i = 0; i < channels; ++i) {
        const int c = selected[h * channels + i];
        const int64_t p = (g * kvh + h) * d + c;
        const float q = qhat[h * d + c];
        const float a = q * HalfToFloat(scale[p]), b = q * HalfToFloat(zero[p]);
        const uint8_t* bytes = codes + p * group_bytes;
        for (int64_t byte = 0; byte < group_bytes; ++byte) {
          std::copy_n(lut[bytes[byte]], per_byte, codes_f.data() + byte * per_byte);
        }
        float* o = out + (t0 - begin);
        const float* cf = codes_f.data() + (t0 - g * G);
        const int64_t m = t1 - t0;
#pragma GCC ivdep
        for (int64_t j = 0; j < m; ++j) o[j] += a * cf[j] + b;
      }
    }
  });
  return Status::Ok();
}

}  // namespace kvt::kernels
