// Tokenizer: encode/decode round trips on real text, equality of the heap-based merge with
// llama2.c's quadratic greedy loop, the GGUF-embedded vocabulary against tok512.bin.
#include <gtest/gtest.h>

#include <sstream>

#include "examples/llama/corpus.h"
#include "examples/llama/gguf_loader.h"
#include "examples/llama/tokenizer.h"
#include "tests/unit/engine/engine_test_data.h"

namespace kvt::llama {
namespace {

// llama2.c's encode loop, written plainly (O(n^2)): the oracle for the heap version.
std::vector<int32_t> ReferenceEncode(const Tokenizer& tok, const std::string& text) {
  std::vector<int32_t> ids;
  if (!text.empty()) ids.push_back(tok.Lookup(" "));
  for (size_t i = 0; i < text.size();) {
    size_t n = 1;
    while (n < 4 && i + n < text.size() && (static_cast<unsigned char>(text[i + n]) & 0xC0) == 0x80) ++n;
    int32_t id = tok.Lookup(text.substr(i, n));
    if (id >= 0) {
      ids.push_back(id);
    } else {
      for (size_t k = 0; k < n; ++k) ids.push_back(3 + static_cast<unsigned char>(text[i + k]));
    }
    i += n;
  }
  while (true) {
    float best = -1e10f;
    int best_i = -1, best_id = -1;
    for (size_t i = 0; i + 1 < ids.size(); ++i) {
      int32_t id = tok.Lookup(tok.piece(ids[i]) + tok.piece(ids[i + 1]));
      if (id >= 0 && tok.score(id) > best) {
        best = tok.score(id);
        best_i = static_cast<int>(i);
        best_id = id;
      }
    }
    if (best_i < 0) break;
    ids[best_i] = best_id;
    ids.erase(ids.begin() + best_i + 1);
  }
  ids.insert(ids.begin(), Tokenizer::kBos);
  return ids;
}

std::vector<std::string> DevLines(size_t max_lines) {
  auto text = ReadTextFile(testing::DevText());
  EXPECT_TRUE(text.ok());
  std::vector<std::string> lines;
  std::istringstream in(text.ok() ? *text : "");
  std::string line;
  while (lines.size() < max_lines && std::getline(in, line)) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

TEST(Tokenizer, RoundTripsRealLines) {
  auto tok = Tokenizer::LoadLlama2c(testing::TokenizerBin(), 512);
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  const auto lines = DevLines(400);
  ASSERT_GT(lines.size(), 300u);
  for (const std::string& line : lines) {
    std::vector<int32_t> ids = tok->Encode(line, true, false);
    ASSERT_EQ(ids.front(), Tokenizer::kBos);
    EXPECT_LT(ids.size(), line.size() + 2);
    EXPECT_EQ(tok->Decode(std::span<const int32_t>(ids).subspan(1)), line);
  }
}

TEST(Tokenizer, HeapMergeEqualsLlama2cGreedyLoop) {
  auto tok = Tokenizer::LoadLlama2c(testing::TokenizerBin(), 512);
  ASSERT_TRUE(tok.ok());
  for (const std::string& line : DevLines(120)) {
    EXPECT_EQ(tok->Encode(line, true, false), ReferenceEncode(*tok, line)) << line;
  }
  // Non-ASCII, unknown code points (byte fallback) and repeated pairs.
  for (const std::string s : {"Zoo", "café ünïcode → ™ 😀", "aaaaaaaaaaaa", "  two  spaces\n\nand\ttab", "\xff\xfe"}) {
    EXPECT_EQ(tok->Encode(s, true, false), ReferenceEncode(*tok, s)) << s;
    std::vector<int32_t> ids = tok->Encode(s, true, false);
    EXPECT_EQ(tok->Decode(std::span<const int32_t>(ids).subspan(1)), s);
  }
}

TEST(Tokenizer, EmptyTextIsBosOnlyAndEosOnRequest) {
  auto tok = Tokenizer::LoadLlama2c(testing::TokenizerBin(), 512);
  ASSERT_TRUE(tok.ok());
  EXPECT_EQ(tok->Encode("", true, false), std::vector<int32_t>({Tokenizer::kBos}));
  std::vector<int32_t> ids = tok->Encode("Hi", true, true);
  EXPECT_EQ(ids.back(), Tokenizer::kEos);
  EXPECT_EQ(tok->Decode(ids), "Hi");  // control tokens decode to nothing
}

TEST(Tokenizer, GgufEmbeddedVocabularyEqualsTok512) {
  auto tok = Tokenizer::LoadLlama2c(testing::TokenizerBin(), 512);
  auto gguf = LoadGgufModel(testing::ModelGguf());
  ASSERT_TRUE(tok.ok() && gguf.ok()) << gguf.status().ToString();
  ASSERT_TRUE(gguf->tokenizer.has_value());
  const Tokenizer& g = *gguf->tokenizer;
  ASSERT_EQ(g.vocab_size(), 512);
  for (int i = Tokenizer::kByteBase; i < 512; ++i) {
    EXPECT_EQ(g.piece(i), tok->piece(i)) << i;
    EXPECT_EQ(g.score(i), tok->score(i)) << i;
  }
  for (const std::string& line : DevLines(50)) EXPECT_EQ(g.Encode(line, true, false), tok->Encode(line, true, false));
}

}  // namespace
}  // namespace kvt::llama
