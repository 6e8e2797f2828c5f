// The reference engine's model files: llama2.c checkpoints, llama2.c tokenizers and GGUF files
// (examples/llama), as read from disk — a download cut short or a file of another kind.
//
// Input: [format byte: 0 checkpoint, 1 tokenizer, 2 GGUF (mod 3)][the file]. Properties: a parser
// refuses with an error that says why, or returns a model whose weights validate and a tokenizer
// that encodes and decodes text without failing.
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "examples/llama/gguf_loader.h"
#include "examples/llama/llama2c_loader.h"
#include "examples/llama/tokenizer.h"
#include "tests/fuzz/fuzz_target.h"
#include "tests/support/temp_dir.h"

namespace {

std::vector<uint8_t> ReadSharedFile(const std::string& name) {
  const std::string dir = kvt::testing::SharedDataDir();
  std::ifstream in(dir + "/" + name, std::ios::binary);
  KVT_FUZZ_CHECK(in.good(), "the seed model files are in " + dir + " (../shared/data, see its README)");
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::vector<uint8_t> Tagged(uint8_t format, std::vector<uint8_t> file) {
  file.insert(file.begin(), format);
  return file;
}

void Exercise(const kvt::llama::Tokenizer& tokenizer) {
  const std::vector<int32_t> ids = tokenizer.Encode("Once upon a time, a tiny cat ran.", true, false);
  (void)tokenizer.Decode(ids);
}

}  // namespace

namespace kvt::fuzz {

std::vector<std::vector<uint8_t>> Seeds() {
  return {
      Tagged(0, ReadSharedFile("models/stories260K.bin")),
      Tagged(1, ReadSharedFile("models/tok512.bin")),
      Tagged(2, ReadSharedFile("models/stories260K.gguf")),
  };
}

}  // namespace kvt::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::vector<uint8_t> file(data + 1, data + size);
  switch (data[0] % 3) {
    case 0: {
      auto weights = kvt::llama::ParseLlama2cCheckpoint(file, "fuzz input");
      if (!weights.ok()) {
        KVT_FUZZ_CHECK(!weights.status().message().empty(), "a refused checkpoint says why");
        return 0;
      }
      KVT_FUZZ_CHECK(weights->Validate().ok(), "a parsed checkpoint validates: " + weights->Validate().ToString());
      kvt::fuzz::CountAccepted();
      return 0;
    }
    case 1: {
      auto tokenizer = kvt::llama::Tokenizer::ParseLlama2c(file, "fuzz input");
      if (!tokenizer.ok()) {
        KVT_FUZZ_CHECK(!tokenizer.status().message().empty(), "a refused tokenizer says why");
        return 0;
      }
      Exercise(*tokenizer);
      kvt::fuzz::CountAccepted();
      return 0;
    }
    default: {
      auto gguf = kvt::llama::GgufFile::Parse(std::move(file), "fuzz input");
      if (!gguf.ok()) {
        KVT_FUZZ_CHECK(!gguf.status().message().empty(), "a refused GGUF file says why");
        return 0;
      }
      auto model = kvt::llama::ModelFromGguf(*gguf);
      if (!model.ok()) {
        KVT_FUZZ_CHECK(!model.status().message().empty(), "a refused GGUF model says why");
        return 0;
      }
      KVT_FUZZ_CHECK(model->weights.Validate().ok(), "a GGUF model validates: " + model->weights.Validate().ToString());
      if (model->tokenizer) Exercise(*model->tokenizer);
      kvt::fuzz::CountAccepted();
      return 0;
    }
  }
}
