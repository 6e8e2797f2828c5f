#include "tiering/chunk_key.h"

#include <gtest/gtest.h>

#include <vector>

#include "tiering/block_plane.h"

namespace kvt::tiering {
namespace {

Layout TestLayout() {
  Layout l;
  l.model_id = "llama-test";
  l.num_layers = 4;
  l.num_kv_heads = 2;
  l.head_dim = 16;
  l.dtype = Dtype::kF16;
  l.tokens_per_chunk = 4;
  return l;
}

TEST(ChunkKey, ChainDependsOnWholePrefix) {
  auto ns = MakeNamespace(TestLayout(), "t");
  ASSERT_TRUE(ns.ok());
  std::vector<uint32_t> a = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  std::vector<uint32_t> b = a;
  b[1] = 99;  // chunk 0 differs
  auto ka = BlockPlane::Keys(*ns, a);
  auto kb = BlockPlane::Keys(*ns, b);
  ASSERT_EQ(ka.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_NE(ka[i], kb[i]) << "chunk " << i << " must depend on chunk 0";
  std::vector<uint32_t> c = a;
  c[9] = 99;  // only chunk 2 differs
  auto kc = BlockPlane::Keys(*ns, c);
  EXPECT_EQ(ka[0], kc[0]);
  EXPECT_EQ(ka[1], kc[1]);
  EXPECT_NE(ka[2], kc[2]);
}

TEST(ChunkKey, TrailingPartialChunkIsIgnored) {
  auto ns = MakeNamespace(TestLayout(), "t");
  std::vector<uint32_t> t = {1, 2, 3, 4, 5, 6};
  EXPECT_EQ(BlockPlane::Keys(*ns, t).size(), 1u);
}

TEST(ChunkKey, FingerprintSeparatesLayoutsAndTenants) {
  Layout l = TestLayout();
  Fingerprint base = ComputeFingerprint(l, 1, "a");
  EXPECT_NE(base, ComputeFingerprint(l, 1, "b"));
  EXPECT_NE(base, ComputeFingerprint(l, 2, "a"));
  for (int field = 0; field < 6; ++field) {
    Layout m = l;
    switch (field) {
      case 0: m.model_id += "x"; break;
      case 1: m.num_layers++; break;
      case 2: m.num_kv_heads++; break;
      case 3: m.head_dim++; break;
      case 4: m.dtype = Dtype::kBf16; break;
      case 5: m.tokens_per_chunk++; break;
    }
    EXPECT_NE(base, ComputeFingerprint(m, 1, "a")) << "field " << field;
  }
  // Length prefixes: moving a character between model id and tenant changes the fingerprint.
  Layout p = l;
  p.model_id = "llama-tes";
  EXPECT_NE(ComputeFingerprint(l, 1, "a"), ComputeFingerprint(p, 1, "ta"));
}

TEST(Namespace, RejectsBadLayouts) {
  Layout l = TestLayout();
  l.num_layers = 0;
  EXPECT_EQ(MakeNamespace(l, "t").status().code(), StatusCode::kInvalidArgument);
  l = TestLayout();
  l.dtype = static_cast<Dtype>(9);
  EXPECT_FALSE(MakeNamespace(l, "t").ok());
  l = TestLayout();
  l.num_layers = kMaxLayers;
  l.num_kv_heads = kMaxKvHeads;
  l.head_dim = kMaxHeadDim;
  l.tokens_per_chunk = kMaxTokensPerChunk;  // product far beyond 1 GiB, no overflow
  EXPECT_EQ(MakeNamespace(l, "t").status().code(), StatusCode::kInvalidArgument);
  l = TestLayout();
  l.model_id = "";
  EXPECT_FALSE(MakeNamespace(l, "t").ok());
}

}  // namespace
}  // namespace kvt::tiering
