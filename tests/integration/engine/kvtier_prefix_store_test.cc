// kvt-llama + a real kv-tierd: a request stores its prompt's KV in the block plane; a second
// request (another connection) that shares a prefix retrieves those chunks instead of computing
// them, and its logits and text are bit-identical to a run without any store.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <regex>
#include <string>

#include "examples/llama/generate.h"
#include "examples/llama/kvtier_prefix_store.h"
#include "examples/llama/model_identity.h"
#include "examples/llama/model_loader.h"
#include "tests/support/daemon_process.h"
#include "tests/unit/engine/engine_test_data.h"

namespace kvt::llama {
namespace {

constexpr int kChunk = 16;
const char kStory[] =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park "
    "with her friend Tom. One day, they";

class KvtierEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    daemon_ = std::make_unique<kvt::testing::DaemonProcess>();
    ASSERT_TRUE(daemon_->Start()) << daemon_->Log();
    auto m = LoadModelWithTokenizer(testing::ModelBin(), testing::TokenizerBin());
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    model_ = std::make_unique<LoadedModel>(std::move(m).value());
    transformer_ = std::make_unique<Transformer>(model_->weights);
  }
  void TearDown() override {
    if (daemon_ && daemon_->Alive()) {
      EXPECT_EQ(daemon_->Stop(), 0) << daemon_->Log();
    }
  }

  std::unique_ptr<KvtierPrefixStore> OpenStore(const std::string& model_id = "") {
    KvtierStoreOptions o;
    o.socket_path = daemon_->socket_path();
    o.model_id = model_id.empty() ? ModelKvIdentity(model_->weights) : model_id;
    o.tokens_per_chunk = kChunk;
    auto s = KvtierPrefixStore::Open(o, transformer_->config());
    EXPECT_TRUE(s.ok()) << s.status().ToString() << "\n" << daemon_->Log();
    return s.ok() ? std::move(s).value() : nullptr;
  }

  StatusOr<GenerateResult> Run(const std::string& prompt, int steps, PrefixKvStore* store) {
    GenerateOptions o;
    o.prompt = prompt;
    o.steps = steps;
    return Generate(*transformer_, *model_->tokenizer, ExactCacheFactory(), o, store);
  }

  std::vector<int32_t> Encode(const std::string& text) {
    return model_->tokenizer->Encode(text, /*bos=*/true, /*eos=*/false);
  }

  std::unique_ptr<kvt::testing::DaemonProcess> daemon_;
  std::unique_ptr<LoadedModel> model_;
  std::unique_ptr<Transformer> transformer_;
};

TEST_F(KvtierEngineTest, SharedPrefixIsRetrievedNotRecomputedWithIdenticalText) {
  const std::string first_prompt = kStory;
  const std::string second_prompt = std::string(kStory) + " found a big red ball under a tree.";
  const std::vector<int32_t> a = Encode(first_prompt), b = Encode(second_prompt);
  size_t common = 0;
  while (common < a.size() && common < b.size() && a[common] == b[common]) ++common;
  ASSERT_GE(common, 2u * kChunk) << "the prompts must share at least two chunks";
  // What the second request can reuse: whole stored chunks of the first prompt within the common
  // prefix, never the second prompt's last token (its logits must be computed).
  const int expect_reuse =
      static_cast<int>(std::min({common, a.size(), b.size() - 1}) / kChunk * kChunk);
  const int64_t shared_chunks = static_cast<int64_t>(std::min(common, a.size()) / kChunk);

  auto reference = Run(second_prompt, 120, nullptr);
  ASSERT_TRUE(reference.ok()) << reference.status().ToString();

  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    auto first = Run(first_prompt, 100, store.get());
    ASSERT_TRUE(first.ok()) << first.status().ToString();
    EXPECT_EQ(first->reused_prefix_tokens, 0);
    EXPECT_EQ(store->stored_chunks(), static_cast<int64_t>(a.size()) / kChunk);
    EXPECT_EQ(store->failures(), 0);
    EXPECT_TRUE(store->last_zero_copy()) << "the prompt's KV should go through the shared heap";
  }

  // A new connection (as another engine process would have): the chunks live in the daemon.
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  auto second = Run(second_prompt, 120, store.get());
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->reused_prefix_tokens, expect_reuse);
  EXPECT_EQ(store->retrieved_chunks(), expect_reuse / kChunk);
  EXPECT_EQ(store->failures(), 0);
  EXPECT_EQ(second->tokens, reference->tokens);
  EXPECT_EQ(second->text, reference->text);
  // The second prompt's own new chunks were stored on top (the shared ones not again).
  EXPECT_EQ(store->stored_chunks(), static_cast<int64_t>(b.size() / kChunk) - shared_chunks);

  kvt_daemon_stats_t stats;
  ASSERT_TRUE(store->client().Stats(&stats));
  EXPECT_EQ(stats.host_chunks, static_cast<uint64_t>(a.size() / kChunk + b.size() / kChunk - shared_chunks));
}

TEST_F(KvtierEngineTest, RetrievedKvGivesBitIdenticalLogits) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  const std::vector<int32_t> prompt = Encode(kStory);
  const int n = static_cast<int>(prompt.size());
  const ModelConfig& c = transformer_->config();
  std::vector<float> ref(c.vocab_size), got(c.vocab_size);

  // Request 1 computes everything and offers its KV to the daemon (as Generate does).
  auto a = transformer_->NewSequence(ExactCacheFactory(), n + 8);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(transformer_->Prefill(*a, prompt, {}, ref.data()).ok());
  PrefixKv kv;
  kv.layers = c.n_layers;
  kv.tokens = n;
  kv.kv_heads = c.n_kv_heads;
  kv.head_dim = c.head_dim();
  kv.data.resize(kv.LayerStride() * kv.layers);
  for (int l = 0; l < c.n_layers; ++l) {
    std::copy_n(a->dense_keys(l).data(), n * c.kv_dim(), kv.keys(l));
    std::copy_n(a->dense_values(l).data(), n * c.kv_dim(), kv.values(l));
  }
  ASSERT_TRUE(store->Store(prompt, kv).ok());

  // Request 2 takes the stored prefix through the daemon and computes only the tail.
  auto matched = store->Lookup(std::span<const int32_t>(prompt).first(n - 1));
  ASSERT_TRUE(matched.ok()) << matched.status().ToString();
  const int p = *matched;
  EXPECT_EQ(p, (n - 1) / kChunk * kChunk);
  ASSERT_GT(p, 0);
  auto back = store->Retrieve(prompt, p);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->tokens, p);
  std::vector<float> keys, values;
  for (int l = 0; l < c.n_layers; ++l) {
    keys.insert(keys.end(), back->keys(l), back->keys(l) + p * c.kv_dim());
    values.insert(values.end(), back->values(l), back->values(l) + p * c.kv_dim());
    // Bit-exact round trip of the chunked layout.
    EXPECT_EQ(0, std::memcmp(back->keys(l), kv.keys(l), p * c.kv_dim() * sizeof(float))) << "layer " << l;
    EXPECT_EQ(0, std::memcmp(back->values(l), kv.values(l), p * c.kv_dim() * sizeof(float))) << "layer " << l;
  }
  auto b = transformer_->NewSequence(ExactCacheFactory(), n + 8);
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(transformer_->AppendKv(*b, p, keys.data(), values.data()).ok());
  ASSERT_TRUE(transformer_->Prefill(*b, std::span<const int32_t>(prompt).subspan(p), {}, got.data()).ok());
  EXPECT_EQ(got, ref) << "logits after a retrieved prefix must equal the recomputed ones bit for bit";
  for (int32_t next : {12, 99, 7}) {
    ASSERT_TRUE(transformer_->Decode(*a, next, ref.data()).ok());
    ASSERT_TRUE(transformer_->Decode(*b, next, got.data()).ok());
    EXPECT_EQ(got, ref);
  }
}

TEST_F(KvtierEngineTest, OtherCheckpointIdentityNeverSeesTheChunks) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(Run(kStory, 60, store.get()).ok());
  EXPECT_GT(store->stored_chunks(), 0);
  auto other = OpenStore("kvt-llama/some-other-checkpoint");
  ASSERT_NE(other, nullptr);
  auto r = Run(kStory, 60, other.get());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->reused_prefix_tokens, 0);
  // The identity is a content hash: stable across loads, independent of the file format.
  auto gguf = LoadModelWithTokenizer(testing::ModelGguf(), testing::TokenizerBin());
  ASSERT_TRUE(gguf.ok());
  EXPECT_EQ(ModelKvIdentity(gguf->weights), ModelKvIdentity(model_->weights));
  EXPECT_LE(ModelKvIdentity(model_->weights).size(), 100u);
}

TEST_F(KvtierEngineTest, DaemonGoneIsAMissAndTheEngineRecomputes) {
  auto reference = Run(kStory, 80, nullptr);
  ASSERT_TRUE(reference.ok());
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(Run(kStory, 80, store.get()).ok());
  daemon_->Kill();
  auto r = Run(kStory, 80, store.get());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->reused_prefix_tokens, 0);
  EXPECT_GT(store->failures(), 0);
  EXPECT_EQ(r->text, reference->text);
  // Opening against a dead socket is an error value, not a crash or a hang.
  KvtierStoreOptions o;
  o.socket_path = daemon_->socket_path();
  o.model_id = "x";
  auto dead = KvtierPrefixStore::Open(o, transformer_->config());
  EXPECT_FALSE(dead.ok());
  o.tokens_per_chunk = 0;
  EXPECT_EQ(KvtierPrefixStore::Open(o, transformer_->config()).status().code(), StatusCode::kInvalidArgument);
}

// The command line: `kvt-llama generate --kvtier --socket S` twice; the second reports the reuse
// on stderr and prints the same text on stdout.

TEST_F(KvtierEngineTest, CommandLineReportsReusedPromptTokens) {
  const std::string base = testing::KvtLlama() + " generate --model " + testing::ModelBin() +
                           " --tokenizer " + testing::TokenizerBin() + " --steps 80 --prompt '" +
                           kStory + "' --kvtier --socket " + daemon_->socket_path();
  const std::string err1 = ::testing::TempDir() + "/kvtier_cli_1.err";
  const std::string err2 = ::testing::TempDir() + "/kvtier_cli_2.err";
  int s1 = 0, s2 = 0;
  const std::string out1 = testing::RunCommand(base + " 2>" + err1, &s1);
  const std::string out2 = testing::RunCommand(base + " 2>" + err2, &s2);
  ASSERT_EQ(s1, 0);
  ASSERT_EQ(s2, 0);
  EXPECT_EQ(out1, out2);
  auto read = [](const std::string& path) {
    std::string s;
    if (FILE* f = std::fopen(path.c_str(), "r")) {
      char buf[4096];
      size_t n;
      while ((n = fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
      std::fclose(f);
    }
    return s;
  };
  const std::regex re("kvtier: reused (\\d+) of (\\d+) prompt tokens");
  std::smatch m1, m2;
  const std::string e1 = read(err1), e2 = read(err2);
  ASSERT_TRUE(std::regex_search(e1, m1, re)) << e1;
  ASSERT_TRUE(std::regex_search(e2, m2, re)) << e2;
  EXPECT_EQ(std::stoi(m1[1]), 0);
  const int prompt_tokens = std::stoi(m2[2]);
  EXPECT_EQ(std::stoi(m2[1]), (prompt_tokens - 1) / kChunk * kChunk);
}

}  // namespace
}  // namespace kvt::llama
