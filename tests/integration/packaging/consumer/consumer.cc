// The same through the header-only C++ wrapper, linked against the static archive: the ABI version,
// a sequence in process on the CPU with the low-rank and composite-token layers (TALE, KVCompose:
// the policies' lowrank library and its kernels), and, given a socket, the daemon's stats.
#include <kvt/kvt.hpp>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

namespace {

constexpr int kLayers = 3, kQHeads = 8, kKvHeads = 2, kHeadDim = 16, kPrompt = 40, kWindow = 4, kDecode = 8;
constexpr const char* kPlan =
    "kvt-sequence-plan 1\n"
    "shape layers=3,q_heads=8,kv_heads=2,head_dim=16\n"
    "layer 0 tale window=8,sinks=2\n"
    "layer 1 kvcompose ratio=0.5\n"
    "layer 2 full\n";

std::vector<float> Random(std::mt19937& rng, int rows, int heads) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(rows) * heads * kHeadDim);
  for (auto& x : v) x = u(rng);
  return v;
}

bool Failed(const kvt::Result& r, const char* what) {
  if (r) return false;
  std::fprintf(stderr, "%s: %s: %s\n", what, kvt_status_name(r.status), r.message.c_str());
  return true;
}

// Prompt, Observe (TALE and KVCompose compress here), then decode steps; every output finite and
// not all zeros, the full layer's within the values' range (a convex combination of them).
int RunSequence() {
  std::mt19937 rng(11);
  kvt::Sequence seq;
  if (Failed(kvt::Sequence::Open(kPlan, &seq), "open")) return 1;
  auto append = [&](int tokens) {
    for (uint32_t l = 0; l < kLayers; ++l) {
      const auto k = Random(rng, tokens, kKvHeads), v = Random(rng, tokens, kKvHeads);
      if (Failed(seq.Append(l, k.data(), v.data(), static_cast<uint32_t>(tokens)), "append")) return false;
    }
    return true;
  };
  if (!append(kPrompt)) return 1;
  for (uint32_t l = 0; l < kLayers; ++l) {
    const auto q = Random(rng, kWindow, kQHeads);
    if (Failed(seq.Observe(l, q.data(), kWindow), "observe")) return 1;
  }
  std::vector<float> out(kQHeads * kHeadDim);
  for (int step = 0; step < kDecode; ++step) {
    if (!append(1)) return 1;
    for (uint32_t l = 0; l < kLayers; ++l) {
      const auto q = Random(rng, 1, kQHeads);
      if (Failed(seq.Attend(l, q.data(), out.data()), "attend")) return 1;
      double sum = 0;
      for (float x : out) {
        const bool bounded = l != 2 || std::fabs(x) <= 1.001f;
        if (!std::isfinite(x) || !bounded) {
          std::fprintf(stderr, "layer %u step %d: attention output %g\n", l, step, x);
          return 1;
        }
        sum += std::fabs(x);
      }
      if (sum == 0) {
        std::fprintf(stderr, "layer %u step %d: attention output all zeros\n", l, step);
        return 1;
      }
    }
  }
  std::printf("sequence (C++): tale + kvcompose + full, %d tokens on the CPU, attention sane\n", kPrompt + kDecode);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  uint32_t major = 0;
  kvt_version(&major, nullptr, nullptr);
  std::printf("libkvtier (static) ABI major %u\n", major);
  if (major != KVT_ABI_VERSION_MAJOR) return 1;
  if (RunSequence() != 0) return 1;
  if (argc < 2) return 0;
  kvt_client_options_t o;
  kvt_client_options_init(&o);
  o.socket_path = argv[1];
  kvt::Client client;
  if (auto r = kvt::Client::Open(o, &client); !r) {
    std::fprintf(stderr, "connect: %s\n", r.message.c_str());
    return 1;
  }
  kvt_daemon_stats_t stats;
  if (auto r = client.Stats(&stats); !r) {
    std::fprintf(stderr, "stats: %s\n", r.message.c_str());
    return 1;
  }
  std::printf("daemon protocol %u.%u, %llu clients\n", stats.protocol_version >> 16, stats.protocol_version & 0xffff,
              static_cast<unsigned long long>(stats.clients));
  return stats.clients >= 1 ? 0 : 1;
}
