// kvt-bench lowrank — TALE reconstruction-free decode attention vs dense fp16 decode attention.
//
// Generated tensors (not a model) at Llama-3.1-8B attention shapes: 32 query heads, 8 KV heads,
// head_dim 128, one layer, one decode step. TALE at its defaults: 64 exact recent tokens, levels
// full / d/2 / d/4 / d/8 for 10% / 20% / 30% / 40% of the older tokens, segment bits 8-8-4-4 for
// keys and values. One JSON record per device and context: dense_ms, lowrank_ms (median per
// call), speedup, avg_rank (mean rank over compressed tokens), bits_per_element (everything TALE
// stores: records, fp32 window, bases, over tokens x kv_heads x head_dim x {K,V}),
// compressed_bits_per_element (records only), and bandwidths next to memcpy measured in the same run.
// The GPU dense baseline is the product's fp16 decode kernel (DecodeAttentionCuda, split-K).
//
//   kvt-bench lowrank [--json] [--quick] [--contexts 4096,32768] [--iters N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "host/kernels/lowrank/dense_attention.h"
#include "host/kernels/lowrank/tale_attention.h"
#include "host/kernels/lowrank/tale_format.h"
#include "tools/kvt_bench/bench_commands.h"
#if KVT_BENCH_HAVE_GPU_LOWRANK
#include "gpu/kernels/lowrank/bench_timing.h"
#endif

namespace kvt::bench {
namespace {

namespace klr = kernels::lowrank;

constexpr int kKvHeads = 8, kQHeads = 32, kHeadDim = 128, kWindow = 64;
constexpr float kFractions[4] = {0.1f, 0.2f, 0.3f, 0.4f};

struct Options {
  bool json = false;
  bool quick = false;
  int iters = 0;
  std::vector<int64_t> contexts;
};

bool ParseArgs(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--json") {
      o->json = true;
    } else if (a == "--quick") {
      o->quick = true;
    } else if (a == "--iters" && i + 1 < argc) {
      o->iters = std::atoi(argv[++i]);
      if (o->iters < 1) return false;
    } else if (a == "--contexts" && i + 1 < argc) {
      std::string s = argv[++i];
      size_t pos = 0;
      while (pos < s.size()) {
        const size_t comma = s.find(',', pos);
        const int64_t v = std::atoll(s.substr(pos, comma - pos).c_str());
        if (v < kWindow + 8 || v > (int64_t{1} << 20)) return false;
        o->contexts.push_back(v);
        pos = comma == std::string::npos ? s.size() : comma + 1;
      }
    } else {
      return false;
    }
  }
  if (o->contexts.empty()) {
    o->contexts = o->quick ? std::vector<int64_t>{4096, 32768}
                           : std::vector<int64_t>{4096, 8192, 16384, 32768, 65536, 131072};
  }
  if (o->iters == 0) o->iters = o->quick ? 3 : 7;
  return true;
}

std::string CpuName() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const size_t c = line.find(':');
      if (c != std::string::npos) return line.substr(c + 2);
    }
  }
  return "unknown CPU";
}

template <typename F>
double MedianMs(F&& f, int iters) {
  f();  // warm-up
  std::vector<double> ms;
  for (int i = 0; i < iters; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// memcpy bandwidth over a buffer far larger than the caches (GB/s).
double MemcpyGbps() {
  const size_t n = size_t{256} << 20;
  std::vector<uint8_t> a(n, 1), b(n, 2);
  const double ms = MedianMs([&] { std::memcpy(b.data(), a.data(), n); }, 3);
  return 2.0 * static_cast<double>(n) / (ms * 1e6);  // read + write
}

// A TALE cache image of `context` tokens per KV head (the last kWindow exact).
struct TaleImage {
  klr::TaleLayout kl, vl;
  std::vector<float> kb, vb, wk, wv;
  std::vector<uint8_t> krec[4], vrec[4];
  std::vector<int32_t> counts[4];
  int64_t compressed = 0;
  double avg_rank = 0.0, record_bits = 0.0, total_bits = 0.0;
};

void FillRandom(std::vector<float>& v, std::mt19937& rng, float scale) {
  std::uniform_real_distribution<float> u(-scale, scale);
  for (auto& x : v) x = u(rng) + (scale * 1e-3f);
}

TaleImage BuildTale(int64_t context, std::mt19937& rng) {
  TaleImage im;
  im.kl = klr::MakeTaleLayout(klr::DefaultTaleFormat(kHeadDim, {8, 8, 4, 4})).value();
  im.vl = im.kl;
  im.kb.assign(static_cast<size_t>(kKvHeads) * kHeadDim * kHeadDim, 0.0f);
  for (int h = 0; h < kKvHeads; ++h) {
    for (int i = 0; i < kHeadDim; ++i) im.kb[(static_cast<size_t>(h) * kHeadDim + i) * kHeadDim + i] = 1.0f;
  }
  im.vb = im.kb;
  im.compressed = context - kWindow;
  int64_t left = im.compressed;
  double rank_sum = 0.0, bytes = 0.0;
  for (int l = 0; l < 4; ++l) {
    const int64_t n = l == 3 ? left : static_cast<int64_t>(kFractions[l] * static_cast<float>(im.compressed));
    left -= n;
    im.counts[l].assign(kKvHeads, static_cast<int32_t>(n));
    const int kbytes = im.kl.levels[l].record_bytes, vbytes = im.vl.levels[l].record_bytes;
    im.krec[l].resize(static_cast<size_t>(kKvHeads) * n * kbytes);
    im.vrec[l].resize(static_cast<size_t>(kKvHeads) * n * vbytes);
    // Encode a pool of random coefficient vectors and tile it (contents do not affect the time).
    const int pool = 512;
    std::vector<uint8_t> kp(static_cast<size_t>(pool) * kbytes), vp(static_cast<size_t>(pool) * vbytes);
    std::vector<float> c(kHeadDim);
    for (int p = 0; p < pool; ++p) {
      FillRandom(c, rng, 2.0f);
      klr::TaleEncodeRecord(im.kl.levels[l], c.data(), kp.data() + static_cast<size_t>(p) * kbytes);
      FillRandom(c, rng, 1.0f);
      klr::TaleEncodeRecord(im.vl.levels[l], c.data(), vp.data() + static_cast<size_t>(p) * vbytes);
    }
    for (int64_t t = 0; t < static_cast<int64_t>(kKvHeads) * n; ++t) {
      std::memcpy(im.krec[l].data() + t * kbytes, kp.data() + (t % pool) * kbytes, kbytes);
      std::memcpy(im.vrec[l].data() + t * vbytes, vp.data() + (t % pool) * vbytes, vbytes);
    }
    rank_sum += static_cast<double>(n) * im.kl.levels[l].rank;
    bytes += static_cast<double>(n) * (kbytes + vbytes);
  }
  im.wk.resize(static_cast<size_t>(kWindow) * kKvHeads * kHeadDim);
  im.wv.resize(im.wk.size());
  FillRandom(im.wk, rng, 2.0f);
  FillRandom(im.wv, rng, 1.0f);
  im.avg_rank = rank_sum / static_cast<double>(im.compressed);
  im.record_bits = bytes * 8.0 / (static_cast<double>(im.compressed) * 2 * kHeadDim);
  const double all_bytes = bytes * kKvHeads + static_cast<double>(im.wk.size() + im.wv.size()) * 4 +
                           static_cast<double>(im.kb.size() + im.vb.size()) * 4;
  im.total_bits = all_bytes * 8.0 / (static_cast<double>(context) * kKvHeads * 2 * kHeadDim);
  return im;
}

klr::TaleAttentionArgs TaleArgs(const TaleImage& im, const float* query, float* out) {
  klr::TaleAttentionArgs a;
  a.num_kv_heads = kKvHeads;
  a.num_q_heads = kQHeads;
  a.head_dim = kHeadDim;
  a.key_layout = im.kl;
  a.value_layout = im.vl;
  a.key_basis = im.kb.data();
  a.value_basis = im.vb.data();
  for (int l = 0; l < 4; ++l) {
    a.levels[l] = {im.krec[l].data(), im.vrec[l].data(), im.counts[l].data(), im.counts[l][0]};
  }
  a.window_keys = im.wk.data();
  a.window_values = im.wv.data();
  a.window_tokens = kWindow;
  a.max_head_tokens = im.compressed;
  a.query = query;
  a.out = out;
  return a;
}

}  // namespace

int RunLowrankBench(int argc, char** argv) {
  Options opt;
  if (!ParseArgs(argc, argv, &opt)) {
    std::fprintf(stderr, "usage: kvt-bench lowrank [--json] [--quick] [--contexts N,N,...] [--iters N]\n");
    return 2;
  }
  std::mt19937 rng(2026);
  const double memcpy_gbps = MemcpyGbps();
  const std::string cpu = "cpu: " + CpuName() + " (" + std::to_string(std::thread::hardware_concurrency()) + " threads)";
  std::vector<std::string> records;
  std::vector<float> query(static_cast<size_t>(kQHeads) * kHeadDim), out(query.size());
  FillRandom(query, rng, 1.0f);
  for (const int64_t ctx : opt.contexts) {
    TaleImage im = BuildTale(ctx, rng);
    // Dense fp16 K/V [kv][ctx][d], tiled from a random pool.
    const size_t n = static_cast<size_t>(kKvHeads) * ctx * kHeadDim;
    std::vector<uint16_t> dk(n), dv(n);
    {
      std::vector<uint16_t> pool(1 << 16);
      std::uniform_int_distribution<int> u(0, 0x3bff);  // finite halves of magnitude < 1
      for (auto& x : pool) x = static_cast<uint16_t>(u(rng) | (u(rng) & 1 ? 0x8000 : 0));
      for (size_t i = 0; i < n; ++i) {
        dk[i] = pool[i & 0xffff];
        dv[i] = pool[(i * 7 + 3) & 0xffff];
      }
    }
    klr::DenseAttentionShape ds{kKvHeads, kQHeads, kHeadDim, ctx, 0.0f};
    std::vector<uint8_t> dws(klr::DenseAttentionWorkspaceBytes(ds));
    auto targs = TaleArgs(im, query.data(), out.data());
    std::vector<uint8_t> tws(klr::TaleAttentionWorkspaceBytes(targs));
    Status st;
    const double dense_ms = MedianMs([&] {
      st = klr::DenseAttentionF16(ds, dk.data(), dv.data(), ctx, query.data(), out.data(), dws.data(), dws.size());
    }, opt.iters);
    if (!st.ok()) {
      std::fprintf(stderr, "dense attention: %s\n", st.ToString().c_str());
      return 1;
    }
    const double tale_ms = MedianMs([&] { st = klr::TaleAttention(targs, tws.data(), tws.size()); }, opt.iters);
    if (!st.ok()) {
      std::fprintf(stderr, "TALE attention: %s\n", st.ToString().c_str());
      return 1;
    }
    const double dense_bytes = static_cast<double>(n) * 2 * 2;
    const double tale_bytes = im.total_bits / 8.0 * static_cast<double>(ctx) * kKvHeads * 2 * kHeadDim;
    char buf[1024];
    auto emit = [&](const std::string& device, double dms, double lms) {
      std::snprintf(buf, sizeof(buf),
                    "{\"device\": \"%s\", \"context\": %lld, \"dense_ms\": %.4f, \"lowrank_ms\": %.4f, "
                    "\"speedup\": %.3f, \"avg_rank\": %.2f, \"bits_per_element\": %.4f, "
                    "\"compressed_bits_per_element\": %.4f, \"dense_bits_per_element\": 16, "
                    "\"dense_gbps\": %.2f, \"lowrank_gbps\": %.2f, \"memcpy_gbps\": %.2f, "
                    "\"shapes\": \"q_heads 32, kv_heads 8, head_dim 128\", \"data\": \"generated\"}",
                    device.c_str(), static_cast<long long>(ctx), dms, lms, dms / lms, im.avg_rank,
                    im.total_bits, im.record_bits, dense_bytes / (dms * 1e6), tale_bytes / (lms * 1e6),
                    memcpy_gbps);
      records.push_back(buf);
      if (!opt.json) std::printf("%s\n", buf);
    };
    emit(cpu, dense_ms, tale_ms);
#if KVT_BENCH_HAVE_GPU_LOWRANK
    if (gpu::lowrank::HaveCudaDevice()) {
      auto g = gpu::lowrank::TimeTaleVsDenseCuda(targs, ds, dk.data(), dv.data(), ctx, 3, opt.iters * 3);
      if (!g.ok()) {
        std::fprintf(stderr, "GPU timing: %s\n", g.status().ToString().c_str());
        return 1;
      }
      emit("gpu: " + g->device, g->dense_ms, g->lowrank_ms);
    }
#endif
  }
  if (opt.json) {
    std::printf("{\"benchmark\": \"lowrank\", \"records\": [\n");
    for (size_t i = 0; i < records.size(); ++i) {
      std::printf("  %s%s\n", records[i].c_str(), i + 1 < records.size() ? "," : "");
    }
    std::printf("]}\n");
  }
  return 0;
}

}  // namespace kvt::bench
