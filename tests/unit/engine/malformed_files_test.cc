// Truncated and malformed checkpoints, GGUF files and tokenizers are rejected with a clear
// Status (never a crash): corrupted copies of the real files are written to a temp dir.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>

#include "examples/llama/gguf_file.h"
#include "examples/llama/internal/file_bytes.h"
#include "examples/llama/model_loader.h"
#include "examples/llama/tokenizer.h"
#include "tests/unit/engine/engine_test_data.h"

namespace kvt::llama {
namespace {

std::vector<uint8_t> Read(const std::string& path) {
  auto b = internal::ReadFileBytes(path);
  EXPECT_TRUE(b.ok()) << b.status().ToString();
  return b.ok() ? *b : std::vector<uint8_t>();
}

class MalformedFiles : public ::testing::Test {
 protected:
  std::string Write(const std::string& name, const std::vector<uint8_t>& bytes) {
    const std::string path = dir_.File(name);
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    return path;
  }
  static std::vector<uint8_t> Cut(std::vector<uint8_t> b, size_t n) {
    b.resize(std::min(n, b.size()));
    return b;
  }
  template <typename T>
  static void Patch(std::vector<uint8_t>& b, size_t offset, T v) {
    std::memcpy(b.data() + offset, &v, sizeof(T));
  }
  kvt::testing::TempDir dir_;
};

TEST_F(MalformedFiles, TruncatedLlama2cCheckpointIsCorruption) {
  const std::vector<uint8_t> good = Read(testing::ModelBin());
  ASSERT_FALSE(good.empty());  // the real file (../shared/data) is needed
  for (size_t n : {size_t{0}, size_t{3}, size_t{27}, size_t{28}, size_t{4096}, good.size() / 2, good.size() - 1}) {
    auto m = LoadModelFile(Write("cut.bin", Cut(good, n)));
    ASSERT_FALSE(m.ok()) << n;
    EXPECT_EQ(m.status().code(), StatusCode::kCorruption) << n << ": " << m.status().ToString();
    EXPECT_NE(m.status().message().find("truncated"), std::string::npos) << m.status().ToString();
  }
}

TEST_F(MalformedFiles, BadLlama2cHeadersAreRejectedBeforeAllocating) {
  const std::vector<uint8_t> good = Read(testing::ModelBin());
  ASSERT_FALSE(good.empty());  // the real file (../shared/data) is needed
  struct Case { size_t field; int32_t value; };
  for (Case c : {Case{0, 0}, Case{0, -64}, Case{0, 1 << 30}, Case{3, 7}, Case{4, 3}, Case{2, 1 << 29},
                 Case{5, 1 << 30}, Case{6, -1}, Case{1, 0}}) {
    std::vector<uint8_t> b = good;
    Patch<int32_t>(b, c.field * 4, c.value);
    auto m = LoadModelFile(Write("bad.bin", b));
    ASSERT_FALSE(m.ok()) << c.field << "=" << c.value;
    EXPECT_TRUE(m.status().code() == StatusCode::kInvalidArgument || m.status().code() == StatusCode::kCorruption)
        << m.status().ToString();
  }
}

TEST_F(MalformedFiles, NonFiniteWeightsAreCorruption) {
  std::vector<uint8_t> b = Read(testing::ModelBin());
  ASSERT_FALSE(b.empty());  // the real file (../shared/data) is needed
  Patch<float>(b, 28 + 4 * 100, std::numeric_limits<float>::quiet_NaN());
  auto m = LoadModelFile(Write("nan.bin", b));
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kCorruption);
}

TEST_F(MalformedFiles, TruncatedGgufIsCorruption) {
  const std::vector<uint8_t> good = Read(testing::ModelGguf());
  ASSERT_FALSE(good.empty());  // the real file (../shared/data) is needed
  for (size_t n : {size_t{4}, size_t{8}, size_t{23}, size_t{100}, size_t{5000}, size_t{14000}, size_t{14200},
                   good.size() / 2, good.size() - 1}) {
    auto m = LoadModelFile(Write("cut.gguf", Cut(good, n)));
    ASSERT_FALSE(m.ok()) << n;
    EXPECT_EQ(m.status().code(), StatusCode::kCorruption) << n << ": " << m.status().ToString();
    EXPECT_NE(m.status().message().find("truncated"), std::string::npos) << m.status().ToString();
  }
}

TEST_F(MalformedFiles, MalformedGgufHeadersAndTensors) {
  const std::vector<uint8_t> good = Read(testing::ModelGguf());
  ASSERT_FALSE(good.empty());  // the real file (../shared/data) is needed
  auto expect_code = [&](std::vector<uint8_t> b, StatusCode code, const char* what) {
    auto m = LoadModelFile(Write("bad.gguf", b));
    ASSERT_FALSE(m.ok()) << what;
    EXPECT_EQ(m.status().code(), code) << what << ": " << m.status().ToString();
  };
  std::vector<uint8_t> b = good;
  Patch<uint32_t>(b, 4, 7);
  expect_code(b, StatusCode::kUnsupported, "version 7");
  b = good;
  Patch<uint64_t>(b, 8, uint64_t{1} << 60);
  expect_code(b, StatusCode::kCorruption, "2^60 tensors");
  b = good;
  Patch<uint64_t>(b, 16, uint64_t{1} << 40);
  expect_code(b, StatusCode::kCorruption, "2^40 metadata entries");
  // The tokens array's element count: key length (8) + "tokenizer.ggml.tokens" + type (4) + elem type (4).
  const std::string key = "tokenizer.ggml.tokens";
  size_t at = std::search(good.begin(), good.end(), key.begin(), key.end()) - good.begin();
  b = good;
  Patch<uint64_t>(b, at + key.size() + 8, uint64_t{1} << 50);
  expect_code(b, StatusCode::kCorruption, "huge array");
  b = good;
  Patch<uint32_t>(b, at + key.size(), 99);
  expect_code(b, StatusCode::kCorruption, "unknown value type");
  // First tensor info: name, n_dims (4), two dims (16), then its type and offset.
  const std::string tname = "token_embd.weight";
  at = std::search(good.begin() + 1000, good.end(), tname.begin(), tname.end()) - good.begin();
  ASSERT_LT(at, good.size());
  b = good;
  Patch<uint32_t>(b, at + tname.size() + 20, 2);  // Q4_0
  expect_code(b, StatusCode::kUnsupported, "quantized tensor");
  b = good;
  Patch<uint64_t>(b, at + tname.size() + 4, 63);  // row length 63 instead of 64
  expect_code(b, StatusCode::kInvalidArgument, "shape mismatch");
  b = good;
  Patch<uint64_t>(b, at + tname.size() + 24, uint64_t{1} << 40);  // offset past the end
  expect_code(b, StatusCode::kCorruption, "offset past the end");
  b = good;
  Patch<uint64_t>(b, at + tname.size() + 24, 4);  // misaligned
  expect_code(b, StatusCode::kCorruption, "misaligned offset");
  b = good;
  Patch<uint32_t>(b, at + tname.size(), 9);  // 9 dims
  expect_code(b, StatusCode::kCorruption, "n_dims 9");
  b = good;
  b[0] = 'X';  // not GGUF: read as llama2.c, whose header is then nonsense
  auto m = LoadModelFile(Write("notgguf.gguf", b));
  EXPECT_FALSE(m.ok());
  EXPECT_EQ(GgufFile::Parse(b, "x").status().code(), StatusCode::kCorruption);
}

TEST_F(MalformedFiles, TruncatedOrMalformedTokenizer) {
  const std::vector<uint8_t> good = Read(testing::TokenizerBin());
  ASSERT_FALSE(good.empty());  // the real file (../shared/data) is needed
  for (size_t n : {size_t{0}, size_t{2}, size_t{4}, size_t{9}, size_t{3000}, good.size() - 1}) {
    auto t = Tokenizer::LoadLlama2c(Write("cut.tok", Cut(good, n)), 512);
    ASSERT_FALSE(t.ok()) << n;
    EXPECT_EQ(t.status().code(), StatusCode::kCorruption) << n << ": " << t.status().ToString();
  }
  std::vector<uint8_t> b = good;
  Patch<int32_t>(b, 4 + 4, -5);  // token 0's length
  auto t = Tokenizer::LoadLlama2c(Write("neg.tok", b), 512);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("token 0 has length -5"), std::string::npos) << t.status().ToString();
  b = good;
  Patch<int32_t>(b, 0, 0);  // max_token_length 0
  EXPECT_EQ(Tokenizer::LoadLlama2c(Write("zero.tok", b), 512).status().code(), StatusCode::kCorruption);
  b = good;
  Patch<float>(b, 4, std::numeric_limits<float>::infinity());
  EXPECT_FALSE(Tokenizer::LoadLlama2c(Write("inf.tok", b), 512).ok());
  // Complete but too small a vocabulary (the first 100 tokens: no full byte range).
  size_t off = 4;
  for (int i = 0; i < 100; ++i) {
    int32_t len;
    std::memcpy(&len, good.data() + off + 4, 4);
    off += 8 + len;
  }
  t = Tokenizer::LoadLlama2c(Write("small.tok", Cut(good, off)));
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument) << t.status().ToString();
  // Against the model, a well-formed but short tokenizer file is caught by the vocabulary size.
  auto m = LoadModelWithTokenizer(testing::ModelBin(), Write("small2.tok", Cut(good, off)));
  EXPECT_FALSE(m.ok());
  EXPECT_EQ(Tokenizer::LoadLlama2c(dir_.File("absent.tok")).status().code(), StatusCode::kNotFound);
}

TEST_F(MalformedFiles, BinaryExitsWithAClearMessage) {
  const std::string path = Write("cut.bin", Cut(Read(testing::ModelBin()), 5000));
  const std::string cmd = testing::KvtLlama() + " generate --model " + path + " --tokenizer " +
                          testing::TokenizerBin() + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[1024];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("CORRUPTION"), std::string::npos) << out;
  EXPECT_NE(out.find("truncated"), std::string::npos) << out;
}

}  // namespace
}  // namespace kvt::llama
