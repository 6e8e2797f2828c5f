#include "tests/fuzz/mutator.h"

#include <algorithm>
#include <cstring>

namespace kvt::fuzz {
namespace {

constexpr uint64_t kInterestingWords[] = {
    0,           1,           2,           7,           8,          63,         64,
    127,         128,         255,         256,         4095,       4096,       65535,
    65536,       0x7fffffff,  0x80000000,  0xffffffff,  1ull << 32, 1ull << 40, 0x7fffffffffffffffull,
    1ull << 63,  ~0ull,       ~0ull - 1,
};

template <typename Rng>
uint64_t Below(Rng& rng, uint64_t n) {  // uniform in [0, n), n > 0
  return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng);
}

}  // namespace

std::vector<uint8_t> Mutator::Input(uint64_t i) const {
  std::mt19937_64 rng(seed_ * 0x9e3779b97f4a7c15ull + i);
  std::vector<uint8_t> in = corpus_[Below(rng, corpus_.size())];
  const uint64_t edits = 1 + Below(rng, 8);
  for (uint64_t e = 0; e < edits; ++e) Edit(&in, rng);
  return in;
}

void Mutator::Edit(std::vector<uint8_t>* in, std::mt19937_64& rng) const {
  const uint64_t n = in->size();
  switch (Below(rng, 9)) {
    case 0:  // flip one bit
      if (n > 0) (*in)[Below(rng, n)] ^= static_cast<uint8_t>(1u << Below(rng, 8));
      break;
    case 1:  // one random byte
      if (n > 0) (*in)[Below(rng, n)] = static_cast<uint8_t>(rng());
      break;
    case 2: {  // an interesting 1, 2, 4 or 8-byte little-endian word
      const uint64_t width = uint64_t{1} << Below(rng, 4);
      if (n < width) break;
      uint64_t v = kInterestingWords[Below(rng, std::size(kInterestingWords))];
      if (Below(rng, 4) == 0) v = ~v + 1;  // and its negation
      std::memcpy(in->data() + Below(rng, n - width + 1), &v, width);
      break;
    }
    case 3:  // truncate
      in->resize(Below(rng, n + 1));
      break;
    case 4: {  // remove a run
      if (n == 0) break;
      const uint64_t at = Below(rng, n), len = 1 + Below(rng, std::min<uint64_t>(n - at, 64));
      in->erase(in->begin() + static_cast<int64_t>(at), in->begin() + static_cast<int64_t>(at + len));
      break;
    }
    case 5: {  // insert random bytes
      const uint64_t at = Below(rng, n + 1), len = 1 + Below(rng, 16);
      std::vector<uint8_t> bytes(len);
      for (auto& b : bytes) b = static_cast<uint8_t>(rng());
      in->insert(in->begin() + static_cast<int64_t>(at), bytes.begin(), bytes.end());
      break;
    }
    case 6: {  // duplicate a run of this input
      if (n == 0) break;
      const uint64_t from = Below(rng, n), len = 1 + Below(rng, std::min<uint64_t>(n - from, 256));
      const std::vector<uint8_t> run(in->begin() + static_cast<int64_t>(from),
                                     in->begin() + static_cast<int64_t>(from + len));
      in->insert(in->begin() + static_cast<int64_t>(Below(rng, n + 1)), run.begin(), run.end());
      break;
    }
    case 7: {  // overwrite with a piece of another corpus entry, at the same place
      const auto& other = corpus_[Below(rng, corpus_.size())];
      if (other.empty() || n == 0) break;
      const uint64_t at = Below(rng, std::min(n, other.size()));
      const uint64_t len = 1 + Below(rng, std::min<uint64_t>(std::min(n, other.size()) - at, 512));
      std::memcpy(in->data() + at, other.data() + at, len);
      break;
    }
    default: {  // an ASCII digit or separator (text formats)
      static constexpr char kText[] = "0123456789-+.,=:# \n\teE";
      if (n > 0) (*in)[Below(rng, n)] = static_cast<uint8_t>(kText[Below(rng, sizeof(kText) - 1)]);
      break;
    }
  }
}

}  // namespace kvt::fuzz
