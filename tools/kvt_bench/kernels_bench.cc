// kvt-bench kernels — throughput of the issue-4 kernels at Llama-3.1-8B shapes (32 query heads,
// 8 KV heads, head_dim 128), next to the copy bandwidth measured in the same run:
//   CPU: memcpy_probe.h — a memcpy moving the same bytes as the record (read + written), on as many
//        threads as the kernels, alternated with the kernel's own repetitions (medians of each);
//   GPU: device-to-device cudaMemcpy of 1 GiB (copy_gbps), and per record a copy of that record's
//        own bytes timed the same way (same_bytes_copy_gbps: at 4K tokens a whole op is a few MB,
//        L2-resident, and launch latency bounds a copy as much as a kernel).
// gbps counts bytes read plus written by the kernel (memcpy/copy likewise count 2x the size).
// One JSON record per operation, shape and device with --json. The top-level memcpy_gbps is the
// median over the CPU records (of different sizes: context only).
//
// Contexts: CPU 4K, 16K, 32K, 128K (--quick: 4K, 32K); SnapKV and the dense-preference score are
// prefill-time, compute-bound ops and run at the first context only on CPU. GPU (when a device is
// present and the build has CUDA): 4K, 32K, 128K for everything. --context N (repeatable) picks the
// contexts of both; --op PREFIX (repeatable) runs only the CPU records whose name starts with it.
#include <sys/sysinfo.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <tbb/global_control.h>
#include <tbb/info.h>

#include "host/kernels/approx_scores.h"
#include "host/kernels/channel_select.h"
#include "host/kernels/decode_attention.h"
#include "host/kernels/dense_preference.h"
#include "host/kernels/gather_rows.h"
#include "host/kernels/internal/cpu_isa.h"
#include "host/kernels/kivi_attention.h"
#include "host/kernels/kivi_quantize.h"
#include "host/kernels/quest_pages.h"
#include "host/kernels/snapkv_scores.h"
#include "host/kernels/topk.h"
#include "tools/kvt_bench/bench_commands.h"
#include "tools/kvt_bench/memcpy_probe.h"

#if KVT_BENCH_HAVE_GPU_KERNELS
#include "gpu/bench/kernels_bench_gpu.h"
#endif

namespace kvt::bench {
namespace {

using kernels::AttentionShape;
using kernels::Half;
using kernels::KiviLayout;

constexpr AttentionShape kLlama{32, 8, 128};
constexpr int kRow = 8 * 128;

struct Record {
  std::string name, device;
  int64_t context;
  int bits;
  double bytes, ms, copy_gbps;
  double copy_bytes = 0;            // CPU: bytes the paired memcpy read + wrote
  double same_bytes_copy_gbps = 0;  // GPU: a copy of the record's own bytes (0: not measured)
};

std::vector<Record> g_records;
bool g_json = false;
int g_threads = 0;  // oneTBB threads the CPU kernels ran with
std::vector<std::string> g_ops;  // --op prefixes (empty: every CPU record)

bool Selected(const char* name) {
  if (g_ops.empty()) return true;
  return std::any_of(g_ops.begin(), g_ops.end(), [&](const std::string& p) { return std::string(name).rfind(p, 0) == 0; });
}

void Emit(const Record& r) {
  g_records.push_back(r);
  if (!g_json) {
    const double gbps = r.bytes / (r.ms * 1e6);
    std::fprintf(stderr, "%-24s %-4s ctx %6lld bits %d  %9.3f ms  %8.2f GB/s  (%.2f of copy)\n",
                 r.name.c_str(), r.device.c_str(), static_cast<long long>(r.context), r.bits, r.ms, gbps,
                 gbps / r.copy_gbps);
  }
}

void Check(const Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "kvt-bench kernels: %s: %s\n", what, s.ToString().c_str());
    std::exit(1);
  }
}

std::vector<Half> Halves(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  std::vector<Half> v(n);
  for (auto& h : v) h = kernels::FloatToHalf(u(rng));
  return v;
}
std::vector<float> Floats(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

void RunCpu(const std::vector<int64_t>& contexts, MemcpyProbe& probe) {
  std::mt19937 rng(42);
  auto emit = [&](const char* name, int64_t ctx, int bits, double bytes, const std::function<void()>& fn) {
    if (!Selected(name)) return;
    const PairedTiming t = TimeWithMemcpy(fn, bytes, probe);
    Emit({name, "cpu", ctx, bits, bytes, t.ms, t.memcpy_gbps, t.memcpy_bytes});
  };
  for (const int64_t T : contexts) {
    const auto keys = Halves(T * kRow, rng), values = Halves(T * kRow, rng);
    const auto q = Floats(kLlama.q_heads * 128, rng);
    std::vector<float> out(kLlama.q_heads * 128);
    {  // dense fp16 decode attention: the baseline quantized attention must beat
      kernels::KvSegment<Half> seg{keys.data(), values.data(), T, kRow, 128};
      std::vector<float> ws(kernels::DecodeAttentionWorkspaceFloats(kLlama, T));
      emit("dense_attention_fp16", T, 16, 2.0 * T * kRow * 2, [&] {
        Check(kernels::DecodeAttention(kLlama, std::span(&seg, 1), q.data(), out.data(), ws), "dense attention");
      });
    }
    for (auto [bits, group] : {std::pair{2, 32}, std::pair{4, 32}, std::pair{1, 64}}) {
      const KiviLayout l{kLlama, bits, group, group};
      const int64_t residual = 128, groups = (T - residual) / group, qt = groups * group;
      std::vector<uint8_t> kc(groups * 8 * l.KeyGroupCodeBytes()), vc(qt * 8 * l.ValueTokenCodeBytes());
      std::vector<Half> ks(groups * kRow), kz(ks.size()), vs(qt * 8 * l.ValueGroups()), vz(vs.size());
      const double in_bytes = 2.0 * qt * kRow;
      const double kq_bytes = in_bytes + kc.size() + 4.0 * ks.size();
      const double vq_bytes = in_bytes + vc.size() + 4.0 * vs.size();
      emit("kivi_quantize_keys", T, bits, kq_bytes, [&] {
             Check(kernels::KiviQuantizeKeys(l, keys.data(), kRow, groups, kc.data(), ks.data(), kz.data()), "qk");
           });
      emit("kivi_quantize_values", T, bits, vq_bytes, [&] {
             Check(kernels::KiviQuantizeValues(l, values.data(), kRow, qt, vc.data(), vs.data(), vz.data()), "qv");
           });
      {
        std::vector<float> deq(qt * kRow);
        const double out_bytes = 4.0 * qt * kRow;
        emit("kivi_dequantize_keys", T, bits, kq_bytes - in_bytes + out_bytes, [&] {
               Check(kernels::KiviDequantizeKeys(l, kc.data(), ks.data(), kz.data(), groups, deq.data()), "dk");
             });
        emit("kivi_dequantize_values", T, bits, vq_bytes - in_bytes + out_bytes, [&] {
               Check(kernels::KiviDequantizeValues(l, vc.data(), vs.data(), vz.data(), qt, deq.data()), "dv");
             });
      }
      kernels::KiviCacheView v{kc.data(), ks.data(), kz.data(), groups, keys.data() + qt * kRow, T - qt,
                               vc.data(), vs.data(), vz.data(), qt, values.data() + qt * kRow, T - qt, 0, T - qt};
      std::vector<float> ws(kernels::KiviAttentionWorkspaceFloats(l, T));
      const double bytes = (kq_bytes - in_bytes) + (vq_bytes - in_bytes) + 2.0 * 2 * (T - qt) * kRow;
      emit("kivi_attention", T, bits, bytes, [&] {
             Check(kernels::KiviDecodeAttention(l, v, q.data(), out.data(), ws), "kivi attention");
           });
    }
    {  // TailorKV selection pieces: approximate scores (channel-major, 8 channels), top-128, gather
      const int ds = 8, k = 128;
      std::vector<Half> cm(static_cast<size_t>(kRow) * T);
      for (int64_t t = 0; t < T; ++t) for (int e = 0; e < kRow; ++e) cm[e * T + t] = keys[t * kRow + e];
      std::vector<float> absmax(kRow, 0.0f), qhat(kRow), scores(8 * T);
      std::vector<int32_t> sel(8 * ds), idx(8 * k);
      Check(kernels::KeyChannelAbsMax(kLlama, keys.data(), T, kRow, absmax.data()), "absmax");
      Check(kernels::TopChannels(kLlama, q.data(), absmax.data(), ds, qhat.data(), sel.data()), "channels");
      const kernels::StridedKeys sk{cm.data(), T, 1, 128 * T, T};
      emit("tailorkv_approx_scores", T, 16, 2.0 * 8 * ds * T + 4.0 * 8 * T, [&] {
             Check(kernels::ApproxScores(8, 128, qhat.data(), sel.data(), ds, sk, scores.data(), T), "approx");
           });
      std::vector<uint32_t> tws(kernels::TopKWorkspaceWords(8, T));
      emit("topk_128", T, 32, 4.0 * 8 * T + 4.0 * 8 * k, [&] {
             Check(kernels::TopK(scores.data(), 8, T, T, k, idx.data(), tws), "topk");
           });
      std::vector<Half> gk(8 * k * 128), gv(gk.size());
      emit("gather_kv_128", T, 16, 2.0 * 2 * 2 * gk.size(), [&] {
             Check(kernels::GatherRows(keys.data(), T, kRow, 8, 128, idx.data(), k, gk.data()), "gather k");
             Check(kernels::GatherRows(values.data(), T, kRow, 8, 128, idx.data(), k, gv.data()), "gather v");
           });
    }
    {  // Quest
      const int64_t pages = T / 16;
      std::vector<Half> mn(pages * kRow), mx(mn.size());
      std::vector<float> scores(8 * pages);
      emit("quest_page_minmax", T, 16, 2.0 * T * kRow + 4.0 * pages * kRow, [&] {
             Check(kernels::QuestPageMinMax(kLlama, 16, keys.data(), kRow, pages, mn.data(), mx.data()), "minmax");
           });
      emit("quest_page_scores", T, 16, 4.0 * pages * kRow + 4.0 * 8 * pages, [&] {
             Check(kernels::QuestPageScores(kLlama, q.data(), mn.data(), mx.data(), pages, scores.data()), "quest");
           });
    }
    if (T == contexts.front()) {  // prefill-time scorers: one (small) context on CPU
      const int w = 32;
      const auto obs = Floats(w * 32 * 128, rng);
      std::vector<float> scores(8 * (T - w)), ws(kernels::SnapKvWorkspaceFloats(kLlama, w, T));
      emit("snapkv_scores", T, 16, 2.0 * T * kRow + 4.0 * scores.size(), [&] {
             Check(kernels::SnapKvScores(kLlama, obs.data(), w, keys.data(), T, kRow, 7, scores.data(), ws), "snapkv");
           });
      std::vector<float> pws(kernels::DensePreferenceWorkspaceFloats(kLlama, w, T));
      emit("dense_preference", T, 16, 2.0 * T * kRow, [&] {
             Check(kernels::DensePreferenceScore(kLlama, obs.data(), w, keys.data(), T, kRow, 0.05f, pws).status(), "dp");
           });
    }
  }
}

void PrintJson() {
  std::vector<double> v;  // the median of the per-record (interleaved) measurements
  for (const Record& r : g_records) {
    if (r.device == "cpu") v.push_back(r.copy_gbps);
  }
  std::sort(v.begin(), v.end());
  const double memcpy_gbps = v.empty() ? 0.0 : v[v.size() / 2];
  std::printf("{\n  \"benchmark\": \"kernels\",\n  \"shape\": {\"q_heads\": 32, \"kv_heads\": 8, \"head_dim\": 128},\n");
  std::printf("  \"cpu_threads\": %d,\n  \"cpu_isa\": \"%s\",\n  \"memcpy_gbps\": %.3f,\n"
              "  \"memcpy_note\": \"per CPU record: memcpy of bytes / 2 (so it reads + writes the record's bytes) on "
              "cpu_threads threads, alternated with the kernel's repetitions, medians of each; gbps and memcpy_gbps both "
              "count bytes read + written; top level: median over records\",\n  \"records\": [\n",
              g_threads, kernels::internal::CpuIsaName(kernels::internal::BestCpuIsa()), memcpy_gbps);
  for (size_t i = 0; i < g_records.size(); ++i) {
    const Record& r = g_records[i];
    const double gbps = r.bytes / (r.ms * 1e6);
    char same[128] = "";
    if (r.device == "cpu") {
      std::snprintf(same, sizeof(same), ", \"memcpy_bytes\": %lld", static_cast<long long>(r.copy_bytes));
    } else if (r.same_bytes_copy_gbps > 0) {
      std::snprintf(same, sizeof(same), ", \"same_bytes_copy_gbps\": %.3f, \"same_bytes_ratio\": %.3f",
                    r.same_bytes_copy_gbps, gbps / r.same_bytes_copy_gbps);
    }
    std::printf("    {\"name\": \"%s\", \"device\": \"%s\", \"context\": %lld, \"bits\": %d, \"ms\": %.4f, "
                "\"bytes\": %.0f, \"gbps\": %.3f, \"%s\": %.3f, \"ratio\": %.3f%s}%s\n",
                r.name.c_str(), r.device.c_str(), static_cast<long long>(r.context), r.bits, r.ms, r.bytes, gbps,
                r.device == "cpu" ? "memcpy_gbps" : "copy_gbps", r.copy_gbps, gbps / r.copy_gbps, same,
                i + 1 < g_records.size() ? "," : "");
  }
  std::printf("  ]\n}\n");
}

}  // namespace

int RunKernelsBench(int argc, char** argv) {
  bool quick = false, cpu = true, gpu = true;
  std::vector<int64_t> only_contexts;  // --context N (repeatable): replaces the default contexts
  int threads = 0;  // 0: oneTBB's default (every core)
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--json") g_json = true;
    else if (a == "--threads" && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (a == "--quick") quick = true;
    else if (a == "--context" && i + 1 < argc) only_contexts.push_back(std::atoll(argv[++i]));
    else if (a == "--op" && i + 1 < argc) g_ops.push_back(argv[++i]);
    else if (a == "--cpu-only") gpu = false;
    else if (a == "--gpu-only") cpu = false;
    else {
      std::fprintf(stderr, "usage: kvt-bench kernels [--json] [--quick] [--cpu-only|--gpu-only] [--threads N] [--context N]... [--op PREFIX]...\n");
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  std::vector<int64_t> cpu_contexts = quick ? std::vector<int64_t>{4096, 32768}
                                            : std::vector<int64_t>{4096, 16384, 32768, 131072};
  if (!only_contexts.empty()) cpu_contexts = only_contexts;
  if (threads < 0) {
    std::fprintf(stderr, "kvt-bench kernels: --threads must be >= 0\n");
    return 2;
  }
  std::optional<tbb::global_control> thread_cap;
  if (threads > 0) thread_cap.emplace(tbb::global_control::max_allowed_parallelism, static_cast<size_t>(threads));
  g_threads = threads > 0 ? threads : tbb::info::default_concurrency();
  if (cpu) {
    MemcpyProbe probe(g_threads);  // the kernels' thread count, so ratios compare like with like
    RunCpu(cpu_contexts, probe);
  }
#if KVT_BENCH_HAVE_GPU_KERNELS
  if (gpu) {
    std::vector<int64_t> gpu_contexts = quick ? std::vector<int64_t>{4096, 32768}
                                              : std::vector<int64_t>{4096, 32768, 131072};
    if (!only_contexts.empty()) gpu_contexts = only_contexts;
    std::vector<gpu::GpuRecord> recs;
    const Status s = gpu::RunKernelsBenchGpu(gpu_contexts, &recs);
    if (!s.ok()) {
      std::fprintf(stderr, "kvt-bench kernels: GPU part skipped: %s\n", s.ToString().c_str());
    }
    for (const auto& r : recs) Emit({r.name, r.device, r.context, r.bits, r.bytes, r.ms, r.copy_gbps, 0, r.same_bytes_copy_gbps});
  }
#else
  if (gpu && !g_json) std::fprintf(stderr, "kvt-bench kernels: built without CUDA; CPU only\n");
#endif
  if (g_json) PrintJson();
  return 0;
}

}  // namespace kvt::bench
