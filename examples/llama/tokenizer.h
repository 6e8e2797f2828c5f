// Tokenizer — llama2.c's SentencePiece-style BPE tokenizer (tok512.bin, or a GGUF's embedded vocab).
//
// Vocabulary contract (checked on construction): id 0 <unk>, 1 BOS, 2 EOS, ids 3..258 the byte
// tokens <0x00>..<0xFF>, and a " " piece for the dummy prefix.
// Encode: [BOS], then (for non-empty text) the " " dummy prefix, each UTF-8 code point as its
// piece or, when absent, as its bytes (byte + 3); then repeatedly merge the adjacent pair whose
// concatenation is a piece with the highest score (leftmost on ties) — llama2.c's greedy rule,
// computed with a heap in O(n log n) so whole stories encode quickly.
// Decode: byte tokens become their byte; a piece following BOS loses its leading space; control
// tokens (unk, BOS, EOS) decode to nothing.
// Immutable after construction; safe to share between threads.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status_or.h"

namespace kvt::llama {

class Tokenizer {
 public:
  static constexpr int32_t kUnk = 0;
  static constexpr int32_t kBos = 1;
  static constexpr int32_t kEos = 2;
  static constexpr int32_t kByteBase = 3;

  // `pieces[i]` is token i's text (spaces as ' '), `scores[i]` its merge priority.
  static StatusOr<Tokenizer> FromVocab(std::vector<std::string> pieces, std::vector<float> scores);

  // llama2.c's tokenizer file: int32 max_token_length, then per token float32 score, int32 len,
  // bytes[len]. `expected_vocab` > 0 requires exactly that many tokens; otherwise the file is
  // read to its end. Truncated or malformed files give CORRUPTION naming the token and offset.
  static StatusOr<Tokenizer> ParseLlama2c(const std::vector<uint8_t>& bytes,
                                          const std::string& source, int expected_vocab = 0);
  static StatusOr<Tokenizer> LoadLlama2c(const std::string& path, int expected_vocab = 0);

  std::vector<int32_t> Encode(std::string_view text, bool bos, bool eos) const;

  // The bytes token `token` contributes after token `prev` (see Decode above).
  std::string_view DecodePiece(int32_t prev, int32_t token) const;
  // Decodes a sequence (the first token's predecessor taken as `prev`).
  std::string Decode(std::span<const int32_t> tokens, int32_t prev = kBos) const;

  int vocab_size() const { return static_cast<int>(pieces_.size()); }
  const std::string& piece(int32_t id) const { return pieces_[id]; }
  float score(int32_t id) const { return scores_[id]; }
  // -1 when absent.
  int32_t Lookup(std::string_view piece) const;

 private:
  Tokenizer() = default;
  std::vector<std::string> pieces_;
  std::vector<std::string> decoded_;  // what each id prints (bytes for <0xXX>, "" for control)
  std::vector<float> scores_;
  std::unordered_map<std::string, int32_t> index_;
  int32_t space_id_ = -1;
};

}  // namespace kvt::llama
