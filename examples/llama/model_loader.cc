#include "examples/llama/model_loader.h"

#include <cstring>

#include "examples/llama/gguf_loader.h"
#include "examples/llama/internal/file_bytes.h"
#include "examples/llama/llama2c_loader.h"

namespace kvt::llama {

StatusOr<LoadedModel> LoadModelFile(const std::string& model_path) {
  KVT_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, internal::ReadFileBytes(model_path));
  if (bytes.size() >= 4 && std::memcmp(bytes.data(), "GGUF", 4) == 0) {
    KVT_ASSIGN_OR_RETURN(GgufFile f, GgufFile::Parse(std::move(bytes), model_path));
    return ModelFromGguf(f);
  }
  LoadedModel m;
  KVT_ASSIGN_OR_RETURN(m.weights, ParseLlama2cCheckpoint(bytes, model_path));
  return m;
}

StatusOr<LoadedModel> LoadModelWithTokenizer(const std::string& model_path,
                                             const std::string& tokenizer_path) {
  KVT_ASSIGN_OR_RETURN(LoadedModel m, LoadModelFile(model_path));
  if (!tokenizer_path.empty()) {
    KVT_ASSIGN_OR_RETURN(Tokenizer t,
                         Tokenizer::LoadLlama2c(tokenizer_path, m.weights.config.vocab_size));
    m.tokenizer = std::move(t);
  }
  if (!m.tokenizer) {
    return InvalidArgument(model_path + " embeds no tokenizer; pass --tokenizer");
  }
  return m;
}

}  // namespace kvt::llama
