// kvt-tale-basis — measures TALE's key-basis choices on a real model's captured activations.
//
// For each layer and KV head of a window of real text (exact prefill through kvt::llama), keys
// are truncated to rank r in a per-head basis fitted on that window and the causal attention
// output of every query is compared with exact attention (values exact, coefficients unquantized:
// only the basis and rank vary):
//   post   PCA of post-RoPE keys, k' = B_r B_r^T k                (reconstruction-free)
//   pairs  RoPE-pair-aware axes,  k' = B_r B_r^T k                (reconstruction-free)
//   pre    PCA of pre-RoPE keys,  k' = RoPE(B_r B_r^T k_pre, pos) (needs a rotation per token)
// Reported: mean relative L2 error of the attention output, over queries, heads and layers.
//
//   kvt-tale-basis --model M --tokenizer T --text FILE [--window 512] [--windows 2]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "policies/lowrank/tale_basis.h"
#if KVT_LORC_HAVE_LLAMA
#include "examples/llama/activation_capture.h"
#include "examples/llama/corpus.h"
#include "examples/llama/model_loader.h"
#endif

#if KVT_LORC_HAVE_LLAMA
namespace {

using kvt::policies::lowrank::PcaBasis;
using kvt::policies::lowrank::RopePairBasis;

void Rope(double* x, int d, int pos, double theta) {
  for (int i = 0; i < d / 2; ++i) {
    const double a = pos * std::pow(theta, -2.0 * i / d);
    const double x0 = x[2 * i], x1 = x[2 * i + 1];
    x[2 * i] = x0 * std::cos(a) - x1 * std::sin(a);
    x[2 * i + 1] = x0 * std::sin(a) + x1 * std::cos(a);
  }
}

// Mean over queries of ||o' - o|| / ||o|| for one query head.
double AttentionError(const std::vector<double>& q, const std::vector<double>& k, const std::vector<double>& kt,
                      const std::vector<double>& v, int n, int d) {
  double total = 0.0;
  std::vector<double> s(n), st(n);
  for (int i = 0; i < n; ++i) {
    double m = -1e300, mt = -1e300;
    for (int t = 0; t <= i; ++t) {
      double a = 0, b = 0;
      for (int j = 0; j < d; ++j) {
        a += q[i * d + j] * k[t * d + j];
        b += q[i * d + j] * kt[t * d + j];
      }
      s[t] = a / std::sqrt(double(d));
      st[t] = b / std::sqrt(double(d));
      m = std::max(m, s[t]);
      mt = std::max(mt, st[t]);
    }
    double z = 0, zt = 0;
    for (int t = 0; t <= i; ++t) {
      z += (s[t] = std::exp(s[t] - m));
      zt += (st[t] = std::exp(st[t] - mt));
    }
    double err = 0, norm = 0;
    for (int j = 0; j < d; ++j) {
      double o = 0, ot = 0;
      for (int t = 0; t <= i; ++t) {
        o += s[t] / z * v[t * d + j];
        ot += st[t] / zt * v[t * d + j];
      }
      err += (o - ot) * (o - ot);
      norm += o * o;
    }
    total += std::sqrt(err / std::max(norm, 1e-30));
  }
  return total / n;
}

}  // namespace
#endif

int main(int argc, char** argv) {
#if KVT_LORC_HAVE_LLAMA
  std::string model, tok, text;
  int window = 512, windows = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--model") model = argv[i + 1];
    else if (a == "--tokenizer") tok = argv[i + 1];
    else if (a == "--text") text = argv[i + 1];
    else if (a == "--window") window = std::atoi(argv[i + 1]);
    else if (a == "--windows") windows = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  auto loaded = kvt::llama::LoadModelWithTokenizer(model, tok);
  auto corpus = kvt::llama::ReadTextFile(text);
  if (!loaded.ok() || !corpus.ok() || window < 16) {
    std::fprintf(stderr, "kvt-tale-basis: cannot load model/tokenizer/text or bad window\n");
    return 1;
  }
  const auto& c = loaded->weights.config;
  const int d = c.head_dim(), kv = c.n_kv_heads, group = c.group();
  const auto ids = loaded->tokenizer->Encode(*corpus, true, false);
  kvt::llama::Transformer tf(loaded->weights);
  const char* kinds[3] = {"post", "pairs", "pre"};
  const int ranks[4] = {d, std::max(1, d / 2), std::max(1, d / 4), std::max(1, d / 8)};
  double err[3][4] = {};
  int count = 0;
  for (int w = 0; w < windows; ++w) {
    if (static_cast<size_t>((w + 1) * window) > ids.size()) break;
    std::span<const int32_t> span(ids.data() + static_cast<size_t>(w) * window, window);
    auto cap = kvt::llama::CaptureActivations(tf, span);
    if (!cap.ok()) {
      std::fprintf(stderr, "capture: %s\n", cap.status().ToString().c_str());
      return 1;
    }
    for (int l = 0; l < c.n_layers; ++l) {
      const auto& L = cap->layers[l];
      for (int h = 0; h < kv; ++h) {
        std::vector<double> k(window * d), kp(window * d), v(window * d);
        for (int t = 0; t < window; ++t) {
          for (int j = 0; j < d; ++j) {
            const size_t o = (static_cast<size_t>(t) * kv + h) * d + j;
            k[t * d + j] = L.k[o];
            kp[t * d + j] = L.k_pre[o];
            v[t * d + j] = L.v[o];
          }
        }
        for (int kind = 0; kind < 3; ++kind) {
          std::vector<float> basis(d * d);
          const float* rows = (kind == 2 ? L.k_pre.data() : L.k.data()) + h * d;
          const auto st = kind == 1 ? RopePairBasis(rows, window, d, kv * d, basis.data())
                                    : PcaBasis(rows, window, d, kv * d, basis.data());
          if (!st.ok()) return 1;
          for (int ri = 0; ri < 4; ++ri) {
            int r = ranks[ri];
            if (kind == 1 && r % 2 != 0) r = std::min(d, r + 1);  // pairs stay whole
            std::vector<double> kt(window * d, 0.0);
            for (int t = 0; t < window; ++t) {
              const double* src = (kind == 2 ? kp.data() : k.data()) + t * d;
              for (int j = 0; j < r; ++j) {
                double cj = 0;
                for (int i = 0; i < d; ++i) cj += basis[i * d + j] * src[i];
                for (int i = 0; i < d; ++i) kt[t * d + i] += basis[i * d + j] * cj;
              }
              if (kind == 2) Rope(kt.data() + t * d, d, t, c.rope_theta);
            }
            for (int g = 0; g < group; ++g) {
              std::vector<double> q(window * d);
              for (int t = 0; t < window; ++t) {
                for (int j = 0; j < d; ++j) q[t * d + j] = L.q[(static_cast<size_t>(t) * c.n_heads + h * group + g) * d + j];
              }
              err[kind][ri] += AttentionError(q, k, kt, v, window, d);
            }
          }
        }
        count += group;
      }
    }
  }
  if (count == 0) return 1;
  std::printf("{\"model\": \"%s\", \"window\": %d, \"windows\": %d, \"data\": \"real (captured activations)\",\n"
              " \"metric\": \"mean relative L2 error of attention outputs, keys truncated, values exact\",\n"
              " \"ranks\": [%d, %d, %d, %d], \"note\": \"pairs rounds odd ranks up to even\",\n \"error\": {",
              model.c_str(), window, windows, ranks[0], ranks[1], ranks[2], ranks[3]);
  for (int kind = 0; kind < 3; ++kind) {
    std::printf("%s\"%s\": [", kind ? ", " : "", kinds[kind]);
    for (int ri = 0; ri < 4; ++ri) std::printf("%s%.5f", ri ? ", " : "", err[kind][ri] / count);
    std::printf("]");
  }
  std::printf("}}\n");
  return 0;
#else
  std::fprintf(stderr, "kvt-tale-basis: built without kvt::llama\n");
  return 1;
#endif
}
