// Mutator — the replay driver's stand-in for a coverage-guided fuzzer: deterministic, structure-
// blind edits of seed inputs, chosen to hit what binary and text parsers get wrong (lengths and
// counts near 0, 2^31, 2^32 and 2^64, truncation, bytes inserted or removed, pieces of another
// seed spliced in). Reproducible: the same (seed, iteration) gives the same input.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace kvt::fuzz {

class Mutator {
 public:
  Mutator(const std::vector<std::vector<uint8_t>>& corpus, uint64_t seed) : corpus_(corpus), seed_(seed) {}

  // The input of iteration `i`: one corpus entry with 1-8 edits.
  std::vector<uint8_t> Input(uint64_t i) const;

 private:
  void Edit(std::vector<uint8_t>* in, std::mt19937_64& rng) const;

  const std::vector<std::vector<uint8_t>>& corpus_;
  uint64_t seed_;
};

}  // namespace kvt::fuzz
