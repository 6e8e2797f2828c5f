#include "gpu/bench/kernels_bench_gpu.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <random>

#include "gpu/kernels/approx_scores.cuh"
#include "gpu/kernels/cuda_status.h"
#include "gpu/kernels/decode_attention.cuh"
#include "gpu/kernels/gather_rows.cuh"
#include "gpu/kernels/kivi_attention.cuh"
#include "gpu/kernels/kivi_quantize.cuh"
#include "gpu/kernels/quest_pages.cuh"
#include "gpu/kernels/topk.cuh"

namespace kvt::gpu {
namespace {

using kernels::Half;

struct Buf {
  void* p = nullptr;
  ~Buf() { cudaFree(p); }
};

Status Alloc(Buf& b, size_t bytes, std::mt19937& rng) {
  KVT_CUDA_RETURN_IF_ERROR(cudaMalloc(&b.p, bytes));
  // Random fp16 values in [-2, 2] (also fine as bytes or floats: finite, never zero-filled).
  std::vector<Half> h(bytes / 2);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  for (auto& x : h) x = kernels::FloatToHalf(u(rng));
  KVT_CUDA_RETURN_IF_ERROR(cudaMemcpy(b.p, h.data(), h.size() * 2, cudaMemcpyHostToDevice));
  return Status::Ok();
}

// Median over repetitions timed with events (after a warm-up).
Status TimeMs(const std::function<Status()>& fn, double* ms_out) {
  cudaEvent_t a, b;
  KVT_CUDA_RETURN_IF_ERROR(cudaEventCreate(&a));
  KVT_CUDA_RETURN_IF_ERROR(cudaEventCreate(&b));
  KVT_RETURN_IF_ERROR(fn());
  std::vector<float> ms;
  // KVT_BENCH_REPS (default 20): fewer timed repetitions, e.g. 1 under a profiler.
  const char* reps_env = std::getenv("KVT_BENCH_REPS");
  const int reps = reps_env && std::atoi(reps_env) > 0 ? std::atoi(reps_env) : 20;
  for (int i = 0; i < reps; ++i) {
    KVT_CUDA_RETURN_IF_ERROR(cudaEventRecord(a));
    KVT_RETURN_IF_ERROR(fn());
    KVT_CUDA_RETURN_IF_ERROR(cudaEventRecord(b));
    KVT_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(b));
    float m = 0;
    KVT_CUDA_RETURN_IF_ERROR(cudaEventElapsedTime(&m, a, b));
    ms.push_back(m);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(ms.begin(), ms.end());
  *ms_out = ms[ms.size() / 2];
  return Status::Ok();
}

}  // namespace

Status RunKernelsBenchGpu(const std::vector<int64_t>& contexts, std::vector<GpuRecord>* out) {
  if (DeviceCount() == 0) return Unsupported("no CUDA device");
  cudaDeviceProp prop{};
  KVT_CUDA_RETURN_IF_ERROR(cudaGetDeviceProperties(&prop, 0));
  const std::string device = std::string("gpu:") + prop.name;
  std::mt19937 rng(42);
  double copy_gbps = 0;
  const size_t copy_max = size_t{1} << 30;
  Buf copy_src, copy_dst;
  KVT_CUDA_RETURN_IF_ERROR(cudaMalloc(&copy_src.p, copy_max));
  KVT_CUDA_RETURN_IF_ERROR(cudaMalloc(&copy_dst.p, copy_max));
  auto copy = [&](size_t n) {
    return CudaStatus(cudaMemcpyAsync(copy_dst.p, copy_src.p, n, cudaMemcpyDeviceToDevice), "d2d");
  };
  {
    double ms = 0;
    KVT_RETURN_IF_ERROR(TimeMs([&] { return copy(copy_max); }, &ms));
    copy_gbps = 2.0 * copy_max / (ms * 1e6);
  }
  const kernels::AttentionShape shape{32, 8, 128};
  const int64_t row = 8 * 128;
  auto emit = [&](const char* name, int64_t ctx, int bits, double bytes, double ms) -> Status {
    const size_t n = std::min(copy_max, static_cast<size_t>(bytes / 2) / 256 * 256 + 256);
    double copy_ms = 0;
    KVT_RETURN_IF_ERROR(TimeMs([&] { return copy(n); }, &copy_ms));
    out->push_back({name, device, ctx, bits, bytes, ms, copy_gbps, 2.0 * n / (copy_ms * 1e6)});
    return Status::Ok();
  };
  for (const int64_t T : contexts) {
    Buf keys, values, q, o, ws;
    KVT_RETURN_IF_ERROR(Alloc(keys, T * row * 2, rng));
    KVT_RETURN_IF_ERROR(Alloc(values, T * row * 2, rng));
    KVT_RETURN_IF_ERROR(Alloc(q, 32 * 128 * 4, rng));
    KVT_CUDA_RETURN_IF_ERROR(cudaMemset(q.p, 0x3c, 32 * 128 * 4));  // finite floats
    KVT_CUDA_RETURN_IF_ERROR(cudaMalloc(&o.p, 32 * 128 * 4));
    const size_t ws_bytes = DecodeAttentionWorkspaceBytesCuda(shape, T) + (size_t{64} << 20);
    KVT_CUDA_RETURN_IF_ERROR(cudaMalloc(&ws.p, ws_bytes));
    const Half* K = static_cast<const Half*>(keys.p);
    const Half* V = static_cast<const Half*>(values.p);
    double ms = 0;
    kernels::KvSegment<Half> seg{K, V, T, row, 128};
    KVT_RETURN_IF_ERROR(TimeMs([&] {
      return DecodeAttentionCuda(shape, std::span(&seg, 1), static_cast<float*>(q.p), static_cast<float*>(o.p),
                                 ws.p, ws_bytes, nullptr);
    }, &ms));
    KVT_RETURN_IF_ERROR(emit("dense_attention_fp16", T, 16, 4.0 * T * row, ms));
    for (auto [bits, group] : {std::pair{2, 32}, std::pair{4, 32}, std::pair{1, 64}}) {
      const kernels::KiviLayout l{shape, bits, group, group};
      const int64_t groups = (T - 128) / group, qt = groups * group;
      Buf kc, ks, kz, vc, vs, vz;
      KVT_CUDA_RETURN_IF_ERROR(cudaMalloc(&kc.p, groups * 8 * l.KeyGroupCodeBytes()));
      KVT_CUDA_RETURN_IF_ERROR(cudaMalloc(&ks.p, groups * row * 2));
      KVT_CUDA_RETURN_IF_ERROR(cudaMalloc(&kz.p, groups * row * 2));
      KVT_CUDA_RETURN_IF_ERROR(cudaMalloc(&vc.p, qt * 8 * l.ValueTokenCodeBytes()));
      KVT_CUDA_RETURN_IF_ERROR(cudaMalloc(&vs.p, qt * 8 * l.ValueGroups() * 2));
      KVT_CUDA_RETURN_IF_ERROR(cudaMalloc(&vz.p, qt * 8 * l.ValueGroups() * 2));
      const double kq = 2.0 * qt * row + groups * 8 * l.KeyGroupCodeBytes() + 4.0 * groups * row;
      const double vq = 2.0 * qt * row + qt * 8 * l.ValueTokenCodeBytes() + 4.0 * qt * 8 * l.ValueGroups();
      KVT_RETURN_IF_ERROR(TimeMs([&] {
        return KiviQuantizeKeysCuda(l, K, row, groups, static_cast<uint8_t*>(kc.p), static_cast<Half*>(ks.p),
                                    static_cast<Half*>(kz.p), nullptr);
      }, &ms));
      KVT_RETURN_IF_ERROR(emit("kivi_quantize_keys", T, bits, kq, ms));
      KVT_RETURN_IF_ERROR(TimeMs([&] {
        return KiviQuantizeValuesCuda(l, V, row, qt, static_cast<uint8_t*>(vc.p), static_cast<Half*>(vs.p),
                                      static_cast<Half*>(vz.p), nullptr);
      }, &ms));
      KVT_RETURN_IF_ERROR(emit("kivi_quantize_values", T, bits, vq, ms));
      {  // Dequantize back to fp32: codes + scales + zeros read, 4 bytes per element written.
        Buf kf, vf;
        KVT_CUDA_RETURN_IF_ERROR(cudaMalloc(&kf.p, qt * row * 4));
        KVT_CUDA_RETURN_IF_ERROR(cudaMalloc(&vf.p, qt * row * 4));
        KVT_RETURN_IF_ERROR(TimeMs([&] {
          return KiviDequantizeKeysCuda(l, static_cast<uint8_t*>(kc.p), static_cast<Half*>(ks.p),
                                        static_cast<Half*>(kz.p), groups, static_cast<float*>(kf.p), nullptr);
        }, &ms));
        KVT_RETURN_IF_ERROR(emit("kivi_dequantize_keys", T, bits, kq - 2.0 * qt * row + 4.0 * qt * row, ms));
        KVT_RETURN_IF_ERROR(TimeMs([&] {
          return KiviDequantizeValuesCuda(l, static_cast<uint8_t*>(vc.p), static_cast<Half*>(vs.p),
                                          static_cast<Half*>(vz.p), qt, static_cast<float*>(vf.p), nullptr);
        }, &ms));
        KVT_RETURN_IF_ERROR(emit("kivi_dequantize_values", T, bits, vq - 2.0 * qt * row + 4.0 * qt * row, ms));
      }
      kernels::KiviCacheView v{static_cast<uint8_t*>(kc.p), static_cast<Half*>(ks.p), static_cast<Half*>(kz.p), groups,
                               K + qt * row, T - qt, static_cast<uint8_t*>(vc.p), static_cast<Half*>(vs.p),
                               static_cast<Half*>(vz.p), qt, V + qt * row, T - qt, 0, T - qt};
      KVT_RETURN_IF_ERROR(TimeMs([&] {
        return KiviDecodeAttentionCuda(l, v, static_cast<float*>(q.p), static_cast<float*>(o.p), ws.p, ws_bytes, nullptr);
      }, &ms));
      KVT_RETURN_IF_ERROR(emit("kivi_attention", T, bits, kq + vq - 4.0 * qt * row + 4.0 * (T - qt) * row, ms));
    }
    {  // TailorKV selection: approximate scores on 8 channel rows, top-128, gather K and V
      Buf scores, sel, qhat, idx, gk, gv;
      KVT_CUDA_RETURN_IF_ERROR(cudaMalloc(&scores.p, 8 * T * 4));
      std::vector<int32_t> hsel(64);
      for (int i = 0; i < 64; ++i) hsel[i] = (i % 8) * 16;
      KVT_CUDA_RETURN_IF_ERROR(cudaMalloc(&sel.p, 64 * 4));
      KVT_CUDA_RETURN_IF_ERROR(cudaMemcpy(sel.p, hsel.data(), 64 * 4, cudaMemcpyHostToDevice));
      KVT_RETURN_IF_ERROR(Alloc(qhat, row * 4, rng));
      KVT_CUDA_RETURN_IF_ERROR(cudaMemset(qhat.p, 0x3c, row * 4));
      KVT_CUDA_RETURN_IF_ERROR(cudaMalloc(&idx.p, 8 * 128 * 4));
      KVT_CUDA_RETURN_IF_ERROR(cudaMalloc(&gk.p, 8 * 128 * 128 * 2));
      KVT_CUDA_RETURN_IF_ERROR(cudaMalloc(&gv.p, 8 * 128 * 128 * 2));
      const kernels::StridedKeys sk{K, T, 1, 128 * T, T};  // keys buffer read as channel-major
      KVT_RETURN_IF_ERROR(TimeMs([&] {
        return ApproxScoresCuda(8, 128, static_cast<float*>(qhat.p), static_cast<int32_t*>(sel.p), 8, sk,
                                static_cast<float*>(scores.p), T, nullptr);
      }, &ms));
      KVT_RETURN_IF_ERROR(emit("tailorkv_approx_scores", T, 16, 2.0 * 64 * T + 4.0 * 8 * T, ms));
      KVT_RETURN_IF_ERROR(TimeMs([&] {
        return TopKCuda(static_cast<float*>(scores.p), 8, T, T, 128, static_cast<int32_t*>(idx.p), nullptr);
      }, &ms));
      KVT_RETURN_IF_ERROR(emit("topk_128", T, 32, 4.0 * 8 * T + 4.0 * 8 * 128, ms));
      KVT_RETURN_IF_ERROR(TimeMs([&] {
        KVT_RETURN_IF_ERROR(GatherRowsCuda(K, T, row, 8, 128, static_cast<int32_t*>(idx.p), 128, static_cast<Half*>(gk.p), nullptr));
        return GatherRowsCuda(V, T, row, 8, 128, static_cast<int32_t*>(idx.p), 128, static_cast<Half*>(gv.p), nullptr);
      }, &ms));
      KVT_RETURN_IF_ERROR(emit("gather_kv_128", T, 16, 4.0 * 2 * 8 * 128 * 128, ms));
    }
    {
      const int64_t pages = T / 16;
      Buf mn, mx, sc;
      KVT_CUDA_RETURN_IF_ERROR(cudaMalloc(&mn.p, pages * row * 2));
      KVT_CUDA_RETURN_IF_ERROR(cudaMalloc(&mx.p, pages * row * 2));
      KVT_CUDA_RETURN_IF_ERROR(cudaMalloc(&sc.p, 8 * pages * 4));
      KVT_RETURN_IF_ERROR(TimeMs([&] {
        return QuestPageMinMaxCuda(shape, 16, K, row, pages, static_cast<Half*>(mn.p), static_cast<Half*>(mx.p), nullptr);
      }, &ms));
      KVT_RETURN_IF_ERROR(emit("quest_page_minmax", T, 16, 2.0 * T * row + 4.0 * pages * row, ms));
      KVT_RETURN_IF_ERROR(TimeMs([&] {
        return QuestPageScoresCuda(shape, static_cast<float*>(q.p), static_cast<Half*>(mn.p), static_cast<Half*>(mx.p),
                                   pages, static_cast<float*>(sc.p), nullptr);
      }, &ms));
      KVT_RETURN_IF_ERROR(emit("quest_page_scores", T, 16, 4.0 * pages * row + 32.0 * pages, ms));
    }
  }
  return CudaStatus(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
}

}  // namespace kvt::gpu
