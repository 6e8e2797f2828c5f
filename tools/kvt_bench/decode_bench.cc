// kvt-bench decode — per-token decode time of the sequence plane's attention + KV movement at
// Llama-3.1-8B shapes (32 layers, 32 query heads, 8 KV heads, head_dim 128). Model weights are
// EXCLUDED (no projections, no MLP): only what the KV cache costs per step is timed — for every
// layer, HintNext of the next layer (TailorKV only), Append of the new token's K/V, Attend.
// Activations are GENERATED (examples/llama/synthetic_activations.h), not from a real model.
//
// Modes (each a SequencePlan run through sequence::Sequence):
//   full      (a) fp16 K/V resident in working memory ("GPU" on the GPU path)
//   offload   (b) fp16 K/V in a host-tier buffer; every step every layer is copied whole into a
//                 working buffer before attention. On the CPU path the copy is a memcpy standing in
//                 for PCIe: h2d_gbps is the single-thread memcpy bandwidth measured in the same run.
//   tailorkv  (c) the TailorKV plan: the first --dense-layers layers KIVI-2 resident (the paper
//                 keeps Llama-3.1-8B's shallow layers dense), the rest sparse (budget 192 = 8 sinks
//                 + 56 recent + 128 gathered per KV head, 8 critical channels): the published
//                 pipeline, channel rows fetched from the host tier each step (prefetched on a
//                 worker thread after HintNext, double-buffered)
//   tailorkv_sketch   the same plan scoring from a resident 2-bit key sketch instead (issue 7's
//                 improvement: nothing fetched to score, only the gathered tokens move)
//   tailorkv_sequence (GPU records only) the tailorkv_sketch plan through a Sequence opened on the
//                 device (Append from host memory + AttendOnDevice per layer), next to the same
//                 step composed from the kernels directly (tailorkv_ms)
// One JSON record per device and context with --json. CPU contexts default to 4K, 8K, 16K (what
// fits next to other work in this machine's memory; --contexts 4096,32768 to choose). With a CUDA
// build and a device, --gpu (or --gpu-only) adds the GPU records of gpu/bench/decode_bench_gpu.h at
// --gpu-contexts (default 16K, 32K, 64K, 128K).
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <random>

#ifndef KVT_BENCH_HAVE_LLAMA
#define KVT_BENCH_HAVE_LLAMA 0
#endif
#if KVT_BENCH_HAVE_LLAMA
#include "examples/llama/synthetic_activations.h"
#endif
#include "sequence/sequence.h"
#include "tools/kvt_bench/bench_commands.h"
#include "tools/kvt_bench/bench_util.h"

#if KVT_BENCH_HAVE_GPU_KERNELS
#include "gpu/bench/decode_bench_gpu.h"
#endif

namespace kvt::bench {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kLayers = 32, kQHeads = 32, kKvHeads = 8, kHeadDim = 128;
constexpr int kRow = kKvHeads * kHeadDim, kQRow = kQHeads * kHeadDim;

struct ModeResult {
  double ms = 0;               // median per-token decode time, all layers
  double min_ms = 0;           // fastest step (the least disturbed by other load on a shared machine)
  uint64_t device_bytes = 0;   // resident KV bytes after the run
  uint64_t host_bytes = 0;
  uint64_t pcie_per_step = 0;  // host tier -> working memory per token
  double prefetch_hidden = 0;  // share of prefetch time hidden behind compute
  uint64_t prefetch_hits = 0, demand_fetches = 0;
};

// K/V of the context (and the decode steps) shared by every layer; the queries of the decode steps.
struct Template {
  std::vector<float> k, v, q;  // k, v [tokens][kv_row]; q [steps][q_row]
  int64_t context = 0;
};

StatusOr<Template> MakeTemplate(int64_t context, int steps) {
#if !KVT_BENCH_HAVE_LLAMA  // no generator linked: random normal K/V/Q (timings do not depend on values)
  Template r;
  r.context = context;
  std::mt19937 rng(42);
  std::normal_distribution<float> nd;
  r.k.resize(static_cast<size_t>(context + steps) * kRow);
  r.v.resize(r.k.size());
  r.q.resize(static_cast<size_t>(steps) * kQRow);
  for (auto* vec : {&r.k, &r.v, &r.q}) {
    for (auto& x : *vec) x = nd(rng);
  }
  return r;
#else
  llama::SyntheticShape shape = llama::SyntheticShape::Llama31_8B();
  shape.layers = 1;
  KVT_ASSIGN_OR_RETURN(auto qkv, llama::GenerateSyntheticQkv(shape, 0, static_cast<int>(context + steps), 42));
  Template t;
  t.context = context;
  t.k = std::move(qkv.k);
  t.v = std::move(qkv.v);
  t.q.assign(qkv.q.begin() + context * kQRow, qkv.q.end());
  return t;
#endif
}

StatusOr<ModeResult> RunMode(const sequence::SequencePlan& plan, const Template& tpl, int warm, int steps, bool hint) {
  KVT_ASSIGN_OR_RETURN(auto seq, sequence::Sequence::Open(plan));
  for (int l = 0; l < kLayers; ++l) {
    KVT_RETURN_IF_ERROR(seq->Append(l, tpl.k.data(), tpl.v.data(), static_cast<int>(tpl.context)));
  }
  std::vector<float> out(kQRow);
  std::vector<double> times;
  uint64_t pcie_before = 0;
  for (int s = 0; s < warm + steps; ++s) {
    if (s == warm) {
      pcie_before = seq->counters().pcie_bytes;
      seq->scheduler().ResetStats();
    }
    const int64_t t = tpl.context + s;
    const float* q = tpl.q.data() + static_cast<size_t>(s) * kQRow;
    const float* k = tpl.k.data() + static_cast<size_t>(t) * kRow;
    const float* v = tpl.v.data() + static_cast<size_t>(t) * kRow;
    const auto start = Clock::now();
    if (hint) KVT_RETURN_IF_ERROR(seq->HintNext(0, q));  // the previous step's last layer would issue it
    for (int l = 0; l < kLayers; ++l) {
      if (hint && l + 1 < kLayers) KVT_RETURN_IF_ERROR(seq->HintNext(l + 1, q));
      KVT_RETURN_IF_ERROR(seq->Append(l, k, v, 1));
      KVT_RETURN_IF_ERROR(seq->Attend(l, q, out.data()));
    }
    if (s >= warm) times.push_back(Seconds(Clock::now() - start) * 1e3);
  }
  ModeResult r;
  r.ms = Percentile(times, 0.5);
  r.min_ms = *std::min_element(times.begin(), times.end());
  const sequence::SequenceCounters c = seq->counters();
  r.device_bytes = c.device_bytes;
  r.host_bytes = c.host_bytes;
  r.pcie_per_step = (c.pcie_bytes - pcie_before) / static_cast<uint64_t>(std::max(steps, 1));
  const sequence::TransferStats st = seq->scheduler().stats();
  const int p = static_cast<int>(sequence::TransferPriority::kPrefetch);
  r.prefetch_hidden = st.busy_s[p] > 0 ? st.hidden_s[p] / st.busy_s[p] : 0.0;
  r.prefetch_hits = c.prefetch_hits;
  r.demand_fetches = c.demand_fetches;
  return r;
}

StatusOr<sequence::SequencePlan> TailorPlan(int dense_layers, const std::string& sparse_spec) {
  KVT_ASSIGN_OR_RETURN(auto plan, sequence::UniformPlan(sparse_spec, kLayers, {kQHeads, kKvHeads, kHeadDim},
                                                        "Llama-3.1-8B (generated activations)"));
  KVT_ASSIGN_OR_RETURN(auto dense, sequence::ParseLayerSpec("kivi:bits=2,group=32,residual=128"));
  for (int l = 0; l < std::min(dense_layers, kLayers); ++l) plan.layers[static_cast<size_t>(l)] = dense;
  return plan;
}

// The 1-minute load average: how busy the (possibly shared) machine was during the record.
double LoadAverage() {
  double l[1] = {0};
  return getloadavg(l, 1) == 1 ? l[0] : -1.0;
}

std::vector<int64_t> ParseContexts(const std::string& s) {
  std::vector<int64_t> out;
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t comma = s.find(',', pos);
    out.push_back(std::stoll(s.substr(pos, comma - pos)));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

#if KVT_BENCH_HAVE_GPU_KERNELS
// The (d) columns of a GPU record: the plan through the product's Sequence on the device.
std::string SequenceFields(const gpu::GpuDecodeRecord& r) {
  if (r.sequence_ms <= 0) return "";
  char buf[320];
  std::snprintf(buf, sizeof(buf),
                ", \"tailorkv_sequence_ms\": %.4f, \"tailorkv_sequence_gpu_bytes\": %llu, "
                "\"tailorkv_sequence_pcie_bytes_per_step\": %llu, \"offload_over_tailorkv_sequence\": %.2f, "
                "\"tailorkv_sequence_over_full\": %.3f",
                r.sequence_ms, (unsigned long long)r.sequence_gpu_bytes,
                (unsigned long long)r.sequence_pcie_bytes_per_step, r.offload_ms / r.sequence_ms,
                r.sequence_ms / r.full_ms);
  return buf;
}
#endif

}  // namespace

int RunDecodeBench(int argc, char** argv) {
  bool json = false;
  int warm = 1, steps = 3, dense_layers = 2;
  std::vector<int64_t> contexts = {4096, 8192, 16384};
  std::string sparse = "sparse:budget=192,sinks=8,recent=56,channels=8";
  std::string modes = ",full,offload,tailorkv,tailorkv_sketch,tailorkv_sequence,";
  bool cpu = true, gpu = false;
  std::vector<int64_t> gpu_contexts = {16384, 32768, 65536, 131072};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    try {
      if (a == "--json") json = true;
      else if (a == "--contexts") contexts = ParseContexts(next());
      else if (a == "--steps") steps = std::max(1, std::stoi(next()));
      else if (a == "--warmup") warm = std::max(0, std::stoi(next()));
      else if (a == "--dense-layers") dense_layers = std::clamp(std::stoi(next()), 0, kLayers);
      else if (a == "--sparse") sparse = next();
      else if (a == "--modes") modes = "," + next() + ",";
      else if (a == "--gpu") gpu = true;
      else if (a == "--gpu-only") gpu = true, cpu = false;
      else if (a == "--gpu-contexts") gpu_contexts = ParseContexts(next());
      else throw std::invalid_argument(a);
    } catch (const std::exception&) {
      std::fprintf(stderr,
                   "usage: kvt-bench decode [--json] [--contexts 4096,8192,16384] [--steps 3] [--warmup 1]\n"
                   "                        [--dense-layers 2] [--sparse SPEC] [--modes full,offload,...]\n"
                   "                        [--gpu | --gpu-only] [--gpu-contexts 16384,...]\n");
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  for (int64_t c : contexts) {
    if (c < 512 || c > (int64_t{1} << 20)) {
      std::fprintf(stderr, "kvt-bench decode: context %lld outside [512, 1M]\n", static_cast<long long>(c));
      return 2;
    }
  }
  const std::string device = "cpu: " + MachineDescription();
  const std::string sketch_spec = sparse + ",scorer=sketch";
  auto plan_c = TailorPlan(dense_layers, sparse);
  auto plan_s = TailorPlan(dense_layers, sketch_spec);
  auto plan_a = sequence::UniformPlan("full", kLayers, {kQHeads, kKvHeads, kHeadDim});
  auto plan_b = sequence::UniformPlan("offload", kLayers, {kQHeads, kKvHeads, kHeadDim});
  for (const Status& s : {plan_c.status(), plan_s.status(), plan_a.status(), plan_b.status()}) {
    if (!s.ok()) {
      std::fprintf(stderr, "kvt-bench decode: %s\n", s.ToString().c_str());
      return 2;
    }
  }
  // The PCIe stand-in: single-thread memcpy of one layer's keys at the largest context.
  const uint64_t block = std::min<uint64_t>(uint64_t{64} << 20, static_cast<uint64_t>(contexts.back()) * kRow * 2);
  const double h2d_gbps = MeasureMemcpyGbps(block, std::max<uint64_t>(8 * block, uint64_t{256} << 20), 1.0);
  if (!json) std::fprintf(stderr, "host-tier -> working copy (PCIe stand-in): %.2f GB/s\n", h2d_gbps);

  std::string records;
  if (!cpu) contexts.clear();
  for (int64_t context : contexts) {
    auto tpl = MakeTemplate(context, warm + steps);
    if (!tpl.ok()) {
      std::fprintf(stderr, "kvt-bench decode: %s\n", tpl.status().ToString().c_str());
      return 1;
    }
    ModeResult r[4];
    const sequence::SequencePlan* plans[4] = {&*plan_a, &*plan_b, &*plan_c, &*plan_s};
    const char* names[4] = {"full", "offload", "tailorkv", "tailorkv_sketch"};
    for (int m = 0; m < 4; ++m) {
      if (modes.find("," + std::string(names[m]) + ",") == std::string::npos) continue;
      auto res = RunMode(*plans[m], *tpl, warm, steps, m >= 2);
      if (!res.ok()) {
        std::fprintf(stderr, "kvt-bench decode: %s at %lld: %s\n", names[m], static_cast<long long>(context),
                     res.status().ToString().c_str());
        return 1;
      }
      r[m] = *res;
      if (!json) {
        std::fprintf(stderr, "context %6lld %-16s %9.2f ms/token  resident %8.1f MiB  host %8.1f MiB  moved/step %8.2f MiB"
                     "  prefetch hidden %3.0f%%\n", static_cast<long long>(context), names[m], r[m].ms,
                     r[m].device_bytes / 1048576.0, r[m].host_bytes / 1048576.0, r[m].pcie_per_step / 1048576.0,
                     100.0 * r[m].prefetch_hidden);
      }
    }
    char buf[2048];
    std::snprintf(buf, sizeof(buf),
                  "%s{\"device\": \"%s\", \"context\": %lld, \"full_ms\": %.3f, \"offload_ms\": %.3f, "
                  "\"tailorkv_ms\": %.3f, \"tailorkv_sketch_ms\": %.3f, \"full_gpu_bytes\": %llu, "
                  "\"offload_gpu_bytes\": %llu, \"tailorkv_gpu_bytes\": %llu, \"tailorkv_sketch_gpu_bytes\": %llu, "
                  "\"pcie_bytes_per_step\": %llu, \"offload_pcie_bytes_per_step\": %llu, "
                  "\"tailorkv_sketch_pcie_bytes_per_step\": %llu, \"h2d_gbps\": %.3f, "
                  "\"offload_over_tailorkv\": %.2f, \"offload_over_tailorkv_sketch\": %.2f, "
                  "\"tailorkv_prefetch_hidden\": %.3f, \"tailorkv_prefetch_hits\": %llu, \"tailorkv_demand_fetches\": %llu, "
                  "\"full_min_ms\": %.3f, \"offload_min_ms\": %.3f, \"tailorkv_min_ms\": %.3f, \"tailorkv_sketch_min_ms\": %.3f, "
                  "\"load_average\": %.2f}",
                  records.empty() ? "" : ",\n    ", device.c_str(), static_cast<long long>(context), r[0].ms, r[1].ms,
                  r[2].ms, r[3].ms, (unsigned long long)r[0].device_bytes, (unsigned long long)r[1].device_bytes,
                  (unsigned long long)r[2].device_bytes, (unsigned long long)r[3].device_bytes,
                  (unsigned long long)r[2].pcie_per_step, (unsigned long long)r[1].pcie_per_step,
                  (unsigned long long)r[3].pcie_per_step, h2d_gbps, r[1].ms / r[2].ms, r[1].ms / r[3].ms,
                  r[2].prefetch_hidden, (unsigned long long)r[2].prefetch_hits,
                  (unsigned long long)r[2].demand_fetches, r[0].min_ms, r[1].min_ms, r[2].min_ms, r[3].min_ms,
                  LoadAverage());
    records += buf;
  }
  if (gpu) {
#if KVT_BENCH_HAVE_GPU_KERNELS
    std::vector<gpu::GpuDecodeRecord> recs;
    const Status s = gpu::RunDecodeBenchGpu(gpu_contexts, dense_layers, steps < 5 ? 10 : steps,
                                            modes.find(",tailorkv_sequence,") != std::string::npos ? &*plan_s : nullptr,
                                            &recs);
    if (!s.ok()) {
      std::fprintf(stderr, "kvt-bench decode: GPU part failed: %s\n", s.ToString().c_str());
      if (!cpu) return 1;
    }
    for (const auto& r : recs) {
      char buf[2048];
      std::snprintf(buf, sizeof(buf),
                    "%s{\"device\": \"%s\", \"context\": %lld, \"full_ms\": %.4f, \"offload_ms\": %.4f, "
                    "\"tailorkv_ms\": %.4f, \"full_gpu_bytes\": %llu, \"tailorkv_gpu_bytes\": %llu, "
                    "\"pcie_bytes_per_step\": %llu, \"offload_pcie_bytes_per_step\": %llu, "
                    "\"channel_rows_bytes_per_step\": %llu, \"h2d_gbps\": %.3f, \"offload_over_tailorkv\": %.2f, "
                    "\"tailorkv_over_full\": %.3f, \"tailorkv_gpu_fraction\": %.4f, \"tailorkv_scorer\": \"sketch\"%s}",
                    records.empty() ? "" : ",\n    ", r.device.c_str(), static_cast<long long>(r.context), r.full_ms,
                    r.offload_ms, r.tailorkv_ms, (unsigned long long)r.full_gpu_bytes,
                    (unsigned long long)r.tailorkv_gpu_bytes, (unsigned long long)r.pcie_bytes_per_step,
                    (unsigned long long)r.offload_pcie_bytes_per_step, (unsigned long long)r.channel_rows_bytes_per_step,
                    r.h2d_gbps, r.offload_ms / r.tailorkv_ms, r.tailorkv_ms / r.full_ms,
                    static_cast<double>(r.tailorkv_gpu_bytes) / static_cast<double>(r.full_gpu_bytes),
                    SequenceFields(r).c_str());
      records += buf;
      if (!json) std::fprintf(stderr, "%s\n", buf);
    }
#else
    std::fprintf(stderr, "kvt-bench decode: built without CUDA; no GPU records\n");
    if (!cpu) return 1;
#endif
  }
  if (json) {
    std::printf("{\"bench\": \"decode\", \"machine\": \"%s\", \"shape\": \"Llama-3.1-8B: 32 layers, 32 q heads, 8 KV "
                "heads, head_dim 128, fp16 KV\", \"activations\": \"%s\", \"weights\": \"excluded\", "
                "\"pcie\": \"CPU path: memcpy host tier -> working buffer stands in for PCIe; h2d_gbps = that "
                "memcpy's bandwidth in this run\", \"tailorkv_plan\": \"%d dense KIVI-2 layers, %d x %s\", "
                "\"steps\": %d, \"ms\": \"median over steps (min_ms: fastest step)\",\n  \"records\": [\n    %s]}\n",
                MachineDescription().c_str(),
                KVT_BENCH_HAVE_LLAMA ? "generated (examples/llama/synthetic_activations.h)" : "random normal",
                dense_layers, kLayers - dense_layers, sparse.c_str(), steps,
                records.c_str());
  }
  return 0;
}

}  // namespace kvt::bench
