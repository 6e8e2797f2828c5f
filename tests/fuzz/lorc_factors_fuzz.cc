// LoRC factor files (policies/lowrank/lorc_factors.h), written by kvt-lorc and read by every
// engine that runs a "lorc" layer: a file of another model, cut short, or hand-edited.
//
// Input: the file without its trailing FNV-1a 64, which the target appends, so that the parser's
// checks of dimensions, ranks and lengths are reached rather than stopped at the checksum (a
// checksum that does not match is a one-line check). Properties: ParseLorcFactors refuses with an
// error that says why, or returns factors whose arrays have the sizes their header and ranks say;
// saving them and parsing the file again gives the same bytes.
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "policies/lowrank/lorc_factors.h"
#include "tests/fuzz/fuzz_target.h"
#include "tests/support/temp_dir.h"

namespace {

namespace lr = kvt::policies::lowrank;

uint64_t Fnv1a(const uint8_t* p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

std::string TempPath() {
  static const kvt::testing::TempDir dir;
  return dir.File("factors.lorc");
}

std::vector<uint8_t> Saved(const lr::LorcFactors& f) {
  const kvt::Status s = lr::SaveLorcFactors(f, TempPath());
  KVT_FUZZ_CHECK(s.ok(), "saving factors: " + s.ToString());
  std::ifstream in(TempPath(), std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void CheckSizes(const lr::LorcFactors& f) {
  KVT_FUZZ_CHECK(f.num_layers > 0 && static_cast<int>(f.layers.size()) == f.num_layers, "layer count");
  const size_t kv = static_cast<size_t>(f.num_kv_heads), d = static_cast<size_t>(f.head_dim),
               dim = static_cast<size_t>(f.dim);
  for (const auto& l : f.layers) {
    KVT_FUZZ_CHECK(l.key_rank >= 1 && l.key_rank <= f.head_dim && l.value_rank >= 1 && l.value_rank <= f.head_dim,
                   "ranks within [1, head_dim]");
    const size_t rk = static_cast<size_t>(l.key_rank), rv = static_cast<size_t>(l.value_rank);
    KVT_FUZZ_CHECK(l.key_singular.size() == kv * d && l.value_singular.size() == kv * d, "singular values");
    KVT_FUZZ_CHECK(l.key_up.size() == kv * d * rk && l.key_down.size() == kv * rk * dim, "key factors");
    KVT_FUZZ_CHECK(l.value_up.size() == kv * d * rv && l.value_down.size() == kv * rv * dim, "value factors");
  }
}

}  // namespace

namespace kvt::fuzz {

std::vector<std::vector<uint8_t>> Seeds() {
  std::vector<std::vector<uint8_t>> seeds;
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  struct Shape { int layers, dim, kv, d; lr::LorcSchedule schedule; };
  for (const Shape s : {Shape{2, 16, 2, 8, lr::LorcSchedule::kProgressive}, Shape{3, 12, 1, 4, lr::LorcSchedule::kUniform}}) {
    std::vector<float> wk(size_t(s.layers) * s.kv * s.d * s.dim), wv(wk.size());
    for (auto& w : wk) w = normal(rng);
    for (auto& w : wv) w = normal(rng);
    lr::LorcWeightsView view{s.layers, s.dim, s.kv, s.d, wk.data(), wv.data()};
    auto factors = lr::ComputeLorcFactors(view, 0.5, 0.75, s.schedule);
    KVT_FUZZ_CHECK(factors.ok(), factors.status().ToString());
    std::vector<uint8_t> file = Saved(*factors);
    file.resize(file.size() - 8);  // the target appends the checksum
    seeds.push_back(std::move(file));
  }
  return seeds;
}

}  // namespace kvt::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> file(data, data + size);
  const uint64_t checksum = Fnv1a(file.data(), file.size());
  const auto* c = reinterpret_cast<const uint8_t*>(&checksum);
  file.insert(file.end(), c, c + 8);
  auto factors = lr::ParseLorcFactors(file.data(), file.size());
  if (!factors.ok()) {
    KVT_FUZZ_CHECK(!factors.status().message().empty(), "a refused file says why");
    return 0;
  }
  CheckSizes(*factors);
  const std::vector<uint8_t> saved = Saved(*factors);
  auto again = lr::ParseLorcFactors(saved.data(), saved.size());
  KVT_FUZZ_CHECK(again.ok(), "saved factors parse: " + again.status().ToString());
  KVT_FUZZ_CHECK(Saved(*again) == saved, "save / parse round-trips the file");
  kvt::fuzz::CountAccepted();
  return 0;
}
