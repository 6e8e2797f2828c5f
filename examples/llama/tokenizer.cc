#include "examples/llama/tokenizer.h"

#include <cmath>
#include <cstdio>
#include <queue>

#include "examples/llama/internal/byte_reader.h"
#include "examples/llama/internal/file_bytes.h"

namespace kvt::llama {
namespace {

std::string ByteTokenName(int b) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
  return buf;
}

}  // namespace

StatusOr<Tokenizer> Tokenizer::FromVocab(std::vector<std::string> pieces,
                                         std::vector<float> scores) {
  if (pieces.size() != scores.size()) {
    return InvalidArgument("tokenizer: " + std::to_string(pieces.size()) + " pieces but " +
                           std::to_string(scores.size()) + " scores");
  }
  if (pieces.size() < static_cast<size_t>(kByteBase + 256)) {
    return InvalidArgument("tokenizer: " + std::to_string(pieces.size()) +
                           " tokens, fewer than the 259 control and byte tokens");
  }
  if (pieces.size() > (1u << 24)) return InvalidArgument("tokenizer: vocabulary too large");
  Tokenizer t;
  t.decoded_.resize(pieces.size());
  for (int b = 0; b < 256; ++b) {
    if (pieces[kByteBase + b] != ByteTokenName(b)) {
      return InvalidArgument("tokenizer: token " + std::to_string(kByteBase + b) + " is '" +
                             pieces[kByteBase + b] + "', expected byte token " + ByteTokenName(b));
    }
    t.decoded_[kByteBase + b] = std::string(1, static_cast<char>(b));
  }
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (!std::isfinite(scores[i])) {
      return InvalidArgument("tokenizer: token " + std::to_string(i) + " has a non-finite score");
    }
    if (i >= static_cast<size_t>(kByteBase + 256)) t.decoded_[i] = pieces[i];
    // First occurrence wins for duplicated pieces.
    t.index_.emplace(pieces[i], static_cast<int32_t>(i));
  }
  auto space = t.index_.find(" ");
  if (space == t.index_.end()) return InvalidArgument("tokenizer: no \" \" piece for the dummy prefix");
  t.space_id_ = space->second;
  t.pieces_ = std::move(pieces);
  t.scores_ = std::move(scores);
  return t;
}

StatusOr<Tokenizer> Tokenizer::ParseLlama2c(const std::vector<uint8_t>& bytes,
                                            const std::string& source, int expected_vocab) {
  internal::ByteReader r(bytes.data(), bytes.size(), source);
  KVT_ASSIGN_OR_RETURN(int32_t max_len, r.Read<int32_t>("max_token_length"));
  if (max_len <= 0 || max_len > (1 << 16)) {
    return Corruption(source + ": max_token_length " + std::to_string(max_len) + " out of range");
  }
  std::vector<std::string> pieces;
  std::vector<float> scores;
  while (expected_vocab > 0 ? static_cast<int>(pieces.size()) < expected_vocab : r.remaining() > 0) {
    const std::string tok = "token " + std::to_string(pieces.size());
    KVT_ASSIGN_OR_RETURN(float score, r.Read<float>((tok + " score").c_str()));
    KVT_ASSIGN_OR_RETURN(int32_t len, r.Read<int32_t>((tok + " length").c_str()));
    if (len < 0 || len > max_len) {
      return Corruption(source + ": " + tok + " has length " + std::to_string(len) +
                        " (max_token_length " + std::to_string(max_len) + ")");
    }
    KVT_ASSIGN_OR_RETURN(std::string piece, r.ReadString(len, (tok + " bytes").c_str()));
    pieces.push_back(std::move(piece));
    scores.push_back(score);
  }
  if (expected_vocab > 0 && r.remaining() > 0) {
    return Corruption(source + ": " + std::to_string(r.remaining()) + " trailing bytes after " +
                      std::to_string(expected_vocab) + " tokens");
  }
  auto t = FromVocab(std::move(pieces), std::move(scores));
  if (!t.ok()) return t.status().WithContext(source);
  return t;
}

StatusOr<Tokenizer> Tokenizer::LoadLlama2c(const std::string& path, int expected_vocab) {
  KVT_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, internal::ReadFileBytes(path, 1u << 30));
  return ParseLlama2c(bytes, path, expected_vocab);
}

int32_t Tokenizer::Lookup(std::string_view piece) const {
  auto it = index_.find(std::string(piece));
  return it == index_.end() ? -1 : it->second;
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, bool bos, bool eos) const {
  std::vector<int32_t> ids;  // symbols to merge (BOS excluded)
  ids.reserve(text.size() + 1);
  if (!text.empty()) ids.push_back(space_id_);
  for (size_t i = 0; i < text.size();) {
    // One UTF-8 code point: a lead byte and up to 3 continuation bytes.
    size_t n = 1;
    while (n < 4 && i + n < text.size() &&
           (static_cast<unsigned char>(text[i + n]) & 0xC0) == 0x80) {
      ++n;
    }
    int32_t id = Lookup(text.substr(i, n));
    if (id >= 0) {
      ids.push_back(id);
    } else {
      for (size_t k = 0; k < n; ++k) {
        ids.push_back(kByteBase + static_cast<unsigned char>(text[i + k]));
      }
    }
    i += n;
  }

  // Greedy best-score merging over a linked list, candidates in a heap ordered by
  // (score desc, position asc); stale candidates are skipped when popped.
  const int n = static_cast<int>(ids.size());
  std::vector<int> next(n), prev(n);
  for (int i = 0; i < n; ++i) {
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  struct Candidate {
    float score;
    int left, right;
    int32_t left_id, right_id, merged;
  };
  auto worse = [](const Candidate& a, const Candidate& b) {
    if (a.score != b.score) return a.score < b.score;
    return a.left > b.left;
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(worse)> heap(worse);
  auto consider = [&](int left) {
    if (left < 0) return;
    int right = next[left];
    if (right < 0) return;
    int32_t merged = Lookup(pieces_[ids[left]] + pieces_[ids[right]]);
    if (merged >= 0) heap.push({scores_[merged], left, right, ids[left], ids[right], merged});
  };
  for (int i = 0; i + 1 < n; ++i) consider(i);
  while (!heap.empty()) {
    Candidate c = heap.top();
    heap.pop();
    if (next[c.left] != c.right || ids[c.left] != c.left_id || ids[c.right] != c.right_id) continue;
    ids[c.left] = c.merged;
    ids[c.right] = -1;
    next[c.left] = next[c.right];
    if (next[c.right] >= 0) prev[next[c.right]] = c.left;
    consider(prev[c.left]);
    consider(c.left);
  }

  std::vector<int32_t> out;
  out.reserve(n + 2);
  if (bos) out.push_back(kBos);
  for (int i = n > 0 ? 0 : -1; i >= 0; i = next[i]) out.push_back(ids[i]);
  if (eos) out.push_back(kEos);
  return out;
}

std::string_view Tokenizer::DecodePiece(int32_t prev, int32_t token) const {
  if (token < 0 || token >= vocab_size() || token == kUnk || token == kBos || token == kEos) {
    return {};
  }
  std::string_view p = decoded_[token];
  if (prev == kBos && !p.empty() && p.front() == ' ' && token >= kByteBase + 256) p.remove_prefix(1);
  return p;
}

std::string Tokenizer::Decode(std::span<const int32_t> tokens, int32_t prev) const {
  std::string out;
  for (int32_t t : tokens) {
    out.append(DecodePiece(prev, t));
    prev = t;
  }
  return out;
}

}  // namespace kvt::llama
