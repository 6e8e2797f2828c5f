// The capture API records each layer's real Q (post-RoPE), K pre/post-RoPE and V, consistently
// with what the engine's attention uses.
#include <gtest/gtest.h>

#include <cmath>

#include "examples/llama/activation_capture.h"
#include "examples/llama/exact_layer_cache.h"
#include "examples/llama/model_loader.h"
#include "examples/llama/ops.h"
#include "tests/unit/engine/engine_test_data.h"

namespace kvt::llama {
namespace {

TEST(ActivationCapture, ShapesRopeAndAttentionAreConsistent) {
  auto model = LoadModelWithTokenizer(testing::ModelBin(), testing::TokenizerBin());
  ASSERT_TRUE(model.ok());
  Transformer t(model->weights);
  const ModelConfig& c = t.config();
  std::vector<int32_t> tokens = model->tokenizer->Encode(
      "Once upon a time, there was a little dog named Max. Max liked to run in the park with his friends.", true, false);
  auto cap = CaptureActivations(t, tokens);
  ASSERT_TRUE(cap.ok()) << cap.status().ToString();
  const int n = static_cast<int>(tokens.size());
  ASSERT_EQ(cap->layers.size(), 5u);
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerCapture& lc = cap->layers[l];
    ASSERT_EQ(lc.q.size(), static_cast<size_t>(n) * c.n_heads * c.head_dim());
    ASSERT_EQ(lc.k.size(), static_cast<size_t>(n) * c.kv_dim());
    ASSERT_EQ(lc.k_pre.size(), lc.k.size());
    ASSERT_EQ(lc.v.size(), lc.k.size());
    // k = RoPE(k_pre) at each token's position.
    for (int i = 0; i < n; ++i) {
      std::vector<float> r(lc.k_pre.begin() + i * c.kv_dim(), lc.k_pre.begin() + (i + 1) * c.kv_dim());
      ops::Rope(r.data(), c.n_kv_heads, c.head_dim(), i, c.rope_theta);
      for (int j = 0; j < c.kv_dim(); ++j) ASSERT_EQ(r[j], lc.k[i * c.kv_dim() + j]);
    }
  }
  // Replaying the captured K/V into an exact cache and attending with the captured last query
  // reproduces the decode path: decoding the last token gives the captured last logits.
  auto seq = t.NewSequence(ExactCacheFactory(), n);
  ASSERT_TRUE(seq.ok());
  std::vector<float> logits(c.vocab_size);
  PrefillOptions po;
  ASSERT_TRUE(t.Prefill(*seq, std::span<const int32_t>(tokens).first(n - 1), po, logits.data()).ok());
  ASSERT_TRUE(t.Decode(*seq, tokens[n - 1], logits.data()).ok());
  for (int v = 0; v < c.vocab_size; ++v) {
    ASSERT_NEAR(logits[v], cap->logits[static_cast<size_t>(n - 1) * c.vocab_size + v], 1e-4f);
  }
  ExactLayerCache cache(t.ShapeForLayer(0, n));
  policies::AppendBatch b;
  std::vector<int32_t> pos(n);
  for (int i = 0; i < n; ++i) pos[i] = i;
  b.keys = cap->layers[0].k.data();
  b.keys_pre_rope = cap->layers[0].k_pre.data();
  b.values = cap->layers[0].v.data();
  b.positions = pos.data();
  b.tokens = n;
  ASSERT_TRUE(cache.Append(b).ok());
  std::vector<float> out(c.dim);
  ASSERT_TRUE(cache.Attend(cap->layers[0].q.data() + static_cast<size_t>(n - 1) * c.dim, out.data()).ok());
  for (float x : out) EXPECT_TRUE(std::isfinite(x));
}

TEST(ActivationCapture, RejectsEmptyAndOverlongWindows) {
  auto model = LoadModelFile(testing::ModelBin());
  ASSERT_TRUE(model.ok());
  Transformer t(model->weights);
  EXPECT_FALSE(CaptureActivations(t, {}).ok());
  std::vector<int32_t> tokens(513, 5);
  EXPECT_EQ(CaptureActivations(t, tokens).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvt::llama
