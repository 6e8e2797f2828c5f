#include "examples/llama/corpus.h"

#include "examples/llama/internal/file_bytes.h"

namespace kvt::llama {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

std::vector<std::string_view> SplitDocuments(std::string_view text) {
  std::vector<std::string_view> docs;
  size_t doc_begin = 0, pos = 0;
  auto flush = [&](size_t end) {
    std::string_view d = Trim(text.substr(doc_begin, end - doc_begin));
    if (!d.empty()) docs.push_back(d);
  };
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    if (Trim(text.substr(pos, eol - pos)).empty()) {  // a blank line ends a document
      flush(pos);
      doc_begin = eol + 1 < text.size() ? eol + 1 : text.size();
    }
    pos = eol + 1;
  }
  if (doc_begin < text.size()) flush(text.size());
  return docs;
}

std::vector<int32_t> TokenizeDocuments(const Tokenizer& tokenizer, std::string_view text,
                                       int64_t max_tokens) {
  std::vector<int32_t> out;
  for (std::string_view doc : SplitDocuments(text)) {
    std::vector<int32_t> ids = tokenizer.Encode(doc, /*bos=*/true, /*eos=*/false);
    out.insert(out.end(), ids.begin(), ids.end());
    if (max_tokens > 0 && static_cast<int64_t>(out.size()) >= max_tokens) {
      out.resize(max_tokens);
      break;
    }
  }
  return out;
}

StatusOr<std::string> ReadTextFile(const std::string& path) {
  KVT_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, internal::ReadFileBytes(path, uint64_t{1} << 32));
  return std::string(bytes.begin(), bytes.end());
}

}  // namespace kvt::llama
