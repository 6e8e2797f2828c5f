#include "gpu/bench/decode_bench_gpu.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <vector>

#include "gpu/kernels/channel_select.cuh"
#include "gpu/kernels/cuda_status.h"
#include "gpu/kernels/decode_attention.cuh"
#include "gpu/kernels/gather_rows.cuh"
#include "gpu/kernels/kivi_attention.cuh"
#include "gpu/kernels/kivi_quantize.cuh"
#include "gpu/kernels/sketch_scores.cuh"
#include "gpu/kernels/topk.cuh"
#include "sequence/sequence.h"

namespace kvt::gpu {
namespace {

using kernels::Half;
using Segment = kernels::KvSegment<Half>;
constexpr int kLayers = 32, kKvHeads = 8, kHeadDim = 128, kRow = kKvHeads * kHeadDim, kQRow = 32 * kHeadDim;
constexpr int kSinks = 8, kRecent = 56, kGathered = 128, kChannels = 8;
constexpr kernels::AttentionShape kShape{32, kKvHeads, kHeadDim};

struct DevMem {
  void* p = nullptr;
  ~DevMem() { cudaFree(p); }
};
struct HostMem {
  void* p = nullptr;
  ~HostMem() { cudaFreeHost(p); }
};
struct Events {
  cudaEvent_t a = nullptr, b = nullptr;
  ~Events() {
    if (a) cudaEventDestroy(a);
    if (b) cudaEventDestroy(b);
  }
};
struct Stream {
  cudaStream_t s = nullptr;
  ~Stream() {
    if (s) cudaStreamDestroy(s);
  }
};

template <typename T>
T* As(const DevMem& m) { return static_cast<T*>(m.p); }

Status Malloc(DevMem& m, size_t bytes) { return CudaStatus(cudaMalloc(&m.p, std::max<size_t>(bytes, 1)), "cudaMalloc"); }

// Median per-step milliseconds of `step` (enqueued on `stream`) over `steps` runs after one warm-up.
template <typename Fn>
Status TimeSteps(cudaStream_t stream, int steps, Fn step, double* ms_out) {
  Events e;
  KVT_CUDA_RETURN_IF_ERROR(cudaEventCreate(&e.a));
  KVT_CUDA_RETURN_IF_ERROR(cudaEventCreate(&e.b));
  KVT_RETURN_IF_ERROR(step());
  KVT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  std::vector<float> ms;
  for (int i = 0; i < steps; ++i) {
    KVT_CUDA_RETURN_IF_ERROR(cudaEventRecord(e.a, stream));
    KVT_RETURN_IF_ERROR(step());
    KVT_CUDA_RETURN_IF_ERROR(cudaEventRecord(e.b, stream));
    KVT_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(e.b));
    float m = 0;
    KVT_CUDA_RETURN_IF_ERROR(cudaEventElapsedTime(&m, e.a, e.b));
    ms.push_back(m);
  }
  std::sort(ms.begin(), ms.end());
  *ms_out = ms[ms.size() / 2];
  return Status::Ok();
}

Status RunContext(int64_t t, int dense_layers, int steps, const std::string& device, GpuDecodeRecord* r) {
  if (t % 64 != 0 || t < 1024) return InvalidArgument("gpu decode bench: context must be a multiple of 64, >= 1024");
  const size_t layer_elems = static_cast<size_t>(t) * kRow, layer_bytes = layer_elems * sizeof(Half);
  const int sparse_layers = kLayers - dense_layers;
  r->device = device;
  r->context = t;

  // Pinned, mapped host tier holding one layer's K and V (every layer reads the same bytes: the
  // copy and gather costs do not depend on which layer's values they are).
  HostMem hk, hv;
  KVT_CUDA_RETURN_IF_ERROR(cudaHostAlloc(&hk.p, layer_bytes, cudaHostAllocMapped));
  KVT_CUDA_RETURN_IF_ERROR(cudaHostAlloc(&hv.p, layer_bytes, cudaHostAllocMapped));
  {
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> u(-2.0f, 2.0f);
    Half* k = static_cast<Half*>(hk.p);
    Half* v = static_cast<Half*>(hv.p);
    for (size_t i = 0; i < layer_elems; ++i) {
      k[i] = kernels::FloatToHalf(u(rng));
      v[i] = kernels::FloatToHalf(u(rng));
    }
  }
  Half *mapped_k = nullptr, *mapped_v = nullptr;
  KVT_CUDA_RETURN_IF_ERROR(cudaHostGetDevicePointer(reinterpret_cast<void**>(&mapped_k), hk.p, 0));
  KVT_CUDA_RETURN_IF_ERROR(cudaHostGetDevicePointer(reinterpret_cast<void**>(&mapped_v), hv.p, 0));

  Stream compute, copy;
  KVT_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&compute.s, cudaStreamNonBlocking));
  KVT_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&copy.s, cudaStreamNonBlocking));
  std::vector<float> hq(kQRow);
  {
    std::mt19937 rng(9);
    std::normal_distribution<float> nd;
    for (auto& x : hq) x = nd(rng);
  }
  DevMem q, out;
  KVT_RETURN_IF_ERROR(Malloc(q, kQRow * sizeof(float)));
  KVT_RETURN_IF_ERROR(Malloc(out, kQRow * sizeof(float)));
  KVT_CUDA_RETURN_IF_ERROR(cudaMemcpy(q.p, hq.data(), kQRow * sizeof(float), cudaMemcpyHostToDevice));

  // H2D bandwidth of this machine, pinned -> device, one layer's keys at a time.
  DevMem work_k[2], work_v[2];
  for (int i = 0; i < 2; ++i) {
    KVT_RETURN_IF_ERROR(Malloc(work_k[i], layer_bytes));
    KVT_RETURN_IF_ERROR(Malloc(work_v[i], layer_bytes));
  }
  double copy_ms = 0;
  KVT_RETURN_IF_ERROR(TimeSteps(copy.s, 5, [&]() -> Status {
    return CudaStatus(cudaMemcpyAsync(work_k[0].p, hk.p, layer_bytes, cudaMemcpyHostToDevice, copy.s), "cudaMemcpyAsync");
  }, &copy_ms));
  r->h2d_gbps = layer_bytes / (copy_ms * 1e-3) / 1e9;

  // (a) full fp16 cache resident.
  std::vector<DevMem> dk(kLayers), dv(kLayers);
  for (int l = 0; l < kLayers; ++l) {
    KVT_RETURN_IF_ERROR(Malloc(dk[l], layer_bytes));
    KVT_RETURN_IF_ERROR(Malloc(dv[l], layer_bytes));
    KVT_CUDA_RETURN_IF_ERROR(cudaMemcpy(dk[l].p, hk.p, layer_bytes, cudaMemcpyHostToDevice));
    KVT_CUDA_RETURN_IF_ERROR(cudaMemcpy(dv[l].p, hv.p, layer_bytes, cudaMemcpyHostToDevice));
  }
  const size_t ws_bytes = DecodeAttentionWorkspaceBytesCuda(kShape, t);
  DevMem ws;
  KVT_RETURN_IF_ERROR(Malloc(ws, ws_bytes));
  r->full_gpu_bytes = static_cast<uint64_t>(kLayers) * 2 * layer_bytes;
  KVT_RETURN_IF_ERROR(TimeSteps(compute.s, steps, [&]() -> Status {
    for (int l = 0; l < kLayers; ++l) {
      const Segment seg{As<Half>(dk[l]), As<Half>(dv[l]), t, kRow, kHeadDim};
      KVT_RETURN_IF_ERROR(DecodeAttentionCuda(kShape, std::span(&seg, 1), As<float>(q), As<float>(out), ws.p,
                                              ws_bytes, compute.s));
    }
    return Status::Ok();
  }, &r->full_ms));

  // (b) full offload: layer l copied into buffer l % 2 on the copy stream while layer l - 1 attends.
  r->offload_pcie_bytes_per_step = static_cast<uint64_t>(kLayers) * 2 * layer_bytes;
  {
    Events start;
    KVT_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&start.a, cudaEventDisableTiming));
    cudaEvent_t copied[2], used[2];
    for (int i = 0; i < 2; ++i) {
      KVT_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&copied[i], cudaEventDisableTiming));
      KVT_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&used[i], cudaEventDisableTiming));
      KVT_CUDA_RETURN_IF_ERROR(cudaEventRecord(used[i], compute.s));
    }
    Status s = TimeSteps(compute.s, steps, [&]() -> Status {
      KVT_CUDA_RETURN_IF_ERROR(cudaEventRecord(start.a, compute.s));
      KVT_CUDA_RETURN_IF_ERROR(cudaStreamWaitEvent(copy.s, start.a, 0));
      for (int l = 0; l < kLayers; ++l) {
        const int b = l % 2;
        KVT_CUDA_RETURN_IF_ERROR(cudaStreamWaitEvent(copy.s, used[b], 0));
        KVT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(work_k[b].p, hk.p, layer_bytes, cudaMemcpyHostToDevice, copy.s));
        KVT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(work_v[b].p, hv.p, layer_bytes, cudaMemcpyHostToDevice, copy.s));
        KVT_CUDA_RETURN_IF_ERROR(cudaEventRecord(copied[b], copy.s));
        KVT_CUDA_RETURN_IF_ERROR(cudaStreamWaitEvent(compute.s, copied[b], 0));
        const Segment seg{As<Half>(work_k[b]), As<Half>(work_v[b]), t, kRow, kHeadDim};
        KVT_RETURN_IF_ERROR(DecodeAttentionCuda(kShape, std::span(&seg, 1), As<float>(q), As<float>(out), ws.p,
                                                ws_bytes, compute.s));
        KVT_CUDA_RETURN_IF_ERROR(cudaEventRecord(used[b], compute.s));
      }
      return Status::Ok();
    }, &r->offload_ms);
    for (int i = 0; i < 2; ++i) {
      cudaEventDestroy(copied[i]);
      cudaEventDestroy(used[i]);
    }
    KVT_RETURN_IF_ERROR(s);
  }

  // (c) TailorKV with the resident sketch. Dense layers: KIVI-2 (keys per channel over 32 tokens).
  const kernels::KiviLayout kivi{kShape, 2, 32, 32};
  const int64_t key_groups = t / kivi.key_group;
  DevMem kc, ks, kz, vc, vs, vz;
  KVT_RETURN_IF_ERROR(Malloc(kc, key_groups * kKvHeads * kivi.KeyGroupCodeBytes()));
  KVT_RETURN_IF_ERROR(Malloc(ks, key_groups * kKvHeads * kivi.KeyGroupParams() * sizeof(Half)));
  KVT_RETURN_IF_ERROR(Malloc(kz, key_groups * kKvHeads * kivi.KeyGroupParams() * sizeof(Half)));
  KVT_RETURN_IF_ERROR(Malloc(vc, t * kKvHeads * kivi.ValueTokenCodeBytes()));
  KVT_RETURN_IF_ERROR(Malloc(vs, t * kKvHeads * kivi.ValueGroups() * sizeof(Half)));
  KVT_RETURN_IF_ERROR(Malloc(vz, t * kKvHeads * kivi.ValueGroups() * sizeof(Half)));
  KVT_RETURN_IF_ERROR(KiviQuantizeKeysCuda(kivi, As<Half>(dk[0]), kRow, key_groups, As<uint8_t>(kc), As<Half>(ks),
                                           As<Half>(kz), compute.s));
  KVT_RETURN_IF_ERROR(KiviQuantizeValuesCuda(kivi, As<Half>(dv[0]), kRow, t, As<uint8_t>(vc), As<Half>(vs),
                                             As<Half>(vz), compute.s));
  kernels::KiviCacheView view;
  view.key_codes = As<uint8_t>(kc);
  view.key_scale = As<Half>(ks);
  view.key_zero = As<Half>(kz);
  view.key_groups = key_groups;
  view.value_codes = As<uint8_t>(vc);
  view.value_scale = As<Half>(vs);
  view.value_zero = As<Half>(vz);
  view.value_tokens = t;
  const size_t kivi_ws_bytes = KiviAttentionWorkspaceBytesCuda(kivi, t);
  DevMem kivi_ws;
  KVT_RETURN_IF_ERROR(Malloc(kivi_ws, kivi_ws_bytes));
  const uint64_t dense_bytes = key_groups * kKvHeads * (kivi.KeyGroupCodeBytes() + 2 * kivi.KeyGroupParams() * 2) +
                               t * kKvHeads * (kivi.ValueTokenCodeBytes() + 2 * kivi.ValueGroups() * 2);
  // Sparse layers: 2-bit sketch over 64-token groups, channel maxima, resident sink/recent windows.
  const kernels::KiviLayout sketch{kShape, 2, 64, kHeadDim};
  const int64_t sketch_groups = t / sketch.key_group;
  DevMem sc, ss, sz, absmax, qhat, sel, scores, idx, gk, gv;
  KVT_RETURN_IF_ERROR(Malloc(sc, sketch_groups * kKvHeads * sketch.KeyGroupCodeBytes()));
  KVT_RETURN_IF_ERROR(Malloc(ss, sketch_groups * kKvHeads * sketch.KeyGroupParams() * sizeof(Half)));
  KVT_RETURN_IF_ERROR(Malloc(sz, sketch_groups * kKvHeads * sketch.KeyGroupParams() * sizeof(Half)));
  KVT_RETURN_IF_ERROR(KiviQuantizeKeysCuda(sketch, As<Half>(dk[0]), kRow, sketch_groups, As<uint8_t>(sc),
                                           As<Half>(ss), As<Half>(sz), compute.s));
  KVT_RETURN_IF_ERROR(Malloc(absmax, kRow * sizeof(float)));
  KVT_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(absmax.p, 0, kRow * sizeof(float), compute.s));
  KVT_RETURN_IF_ERROR(KeyChannelAbsMaxCuda(kShape, As<Half>(dk[0]), t, kRow, As<float>(absmax), compute.s));
  const int64_t n = t - kSinks - kRecent;
  KVT_RETURN_IF_ERROR(Malloc(qhat, kRow * sizeof(float)));
  KVT_RETURN_IF_ERROR(Malloc(sel, kKvHeads * kChannels * sizeof(int32_t)));
  KVT_RETURN_IF_ERROR(Malloc(scores, kKvHeads * n * sizeof(float)));
  KVT_RETURN_IF_ERROR(Malloc(idx, kKvHeads * kGathered * sizeof(int32_t)));
  KVT_RETURN_IF_ERROR(Malloc(gk, kKvHeads * kGathered * kHeadDim * sizeof(Half)));
  KVT_RETURN_IF_ERROR(Malloc(gv, kKvHeads * kGathered * kHeadDim * sizeof(Half)));
  const uint64_t sparse_bytes = sketch_groups * kKvHeads * (sketch.KeyGroupCodeBytes() + 2 * sketch.KeyGroupParams() * 2) +
                                static_cast<uint64_t>(kSinks + kRecent) * kRow * 2 * sizeof(Half) + kRow * sizeof(float);
  r->tailorkv_gpu_bytes = dense_layers * dense_bytes + sparse_layers * sparse_bytes +
                          2ull * kKvHeads * kGathered * kHeadDim * sizeof(Half);
  r->pcie_bytes_per_step = static_cast<uint64_t>(sparse_layers) * 2 * kKvHeads * kGathered * kHeadDim * sizeof(Half);
  r->channel_rows_bytes_per_step = static_cast<uint64_t>(sparse_layers) * kKvHeads * kChannels * t * sizeof(Half);
  // The resident windows are layer 0's device rows (a stand-in with the same size and layout).
  const Half* rk = As<Half>(dk[0]);
  const Half* rv = As<Half>(dv[0]);
  KVT_RETURN_IF_ERROR(TimeSteps(compute.s, steps, [&]() -> Status {
    for (int l = 0; l < kLayers; ++l) {
      if (l < dense_layers) {
        KVT_RETURN_IF_ERROR(KiviDecodeAttentionCuda(kivi, view, As<float>(q), As<float>(out), kivi_ws.p,
                                                    kivi_ws_bytes, compute.s));
        continue;
      }
      KVT_RETURN_IF_ERROR(TopChannelsCuda(kShape, As<float>(q), As<float>(absmax), kChannels, As<float>(qhat),
                                          As<int32_t>(sel), compute.s));
      KVT_RETURN_IF_ERROR(SketchScoresCuda(sketch, As<uint8_t>(sc), As<Half>(ss), As<Half>(sz), sketch_groups,
                                           As<float>(qhat), As<int32_t>(sel), kChannels, kSinks, n,
                                           As<float>(scores), n, compute.s));
      KVT_RETURN_IF_ERROR(TopKCuda(As<float>(scores), kKvHeads, n, n, kGathered, As<int32_t>(idx), compute.s));
      // Zero-copy gathers from pinned host memory, indices relative to the first candidate.
      KVT_RETURN_IF_ERROR(GatherRowsCuda(mapped_k + kSinks * kRow, n, kRow, kKvHeads, kHeadDim, As<int32_t>(idx),
                                         kGathered, As<Half>(gk), compute.s));
      KVT_RETURN_IF_ERROR(GatherRowsCuda(mapped_v + kSinks * kRow, n, kRow, kKvHeads, kHeadDim, As<int32_t>(idx),
                                         kGathered, As<Half>(gv), compute.s));
      const Segment segs[3] = {{rk, rv, kSinks, kRow, kHeadDim},
                               {As<Half>(gk), As<Half>(gv), kGathered, kHeadDim, kGathered * kHeadDim},
                               {rk + (t - kRecent) * kRow, rv + (t - kRecent) * kRow, kRecent, kRow, kHeadDim}};
      KVT_RETURN_IF_ERROR(DecodeAttentionCuda(kShape, std::span<const Segment>(segs, 3), As<float>(q),
                                              As<float>(out), ws.p, ws_bytes, compute.s));
    }
    return Status::Ok();
  }, &r->tailorkv_ms));
  return CudaStatus(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
}

// (d): `plan` through a Sequence on device 0. K/V rows are cheap pseudo-random floats (timings do
// not depend on values); the query of every step is one random vector already on the device.
Status RunSequenceContext(const sequence::SequencePlan& plan, int64_t t, int steps, GpuDecodeRecord* r) {
  const int64_t rows = t + 1 + steps;  // prefill, one warm-up step, the timed steps
  std::vector<float> k(static_cast<size_t>(rows) * kRow), v(k.size());
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i < k.size(); ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    k[i] = static_cast<float>(static_cast<int32_t>(x >> 32)) * (2.0f / 2147483648.0f);
    v[i] = static_cast<float>(static_cast<int32_t>(x)) * (1.0f / 2147483648.0f);
  }
  KVT_ASSIGN_OR_RETURN(auto seq, sequence::Sequence::Open(plan, {.cuda_device = 0}));
  for (int l = 0; l < kLayers; ++l) KVT_RETURN_IF_ERROR(seq->Append(l, k.data(), v.data(), static_cast<int>(t)));
  std::vector<float> hq(kQRow);
  for (size_t i = 0; i < hq.size(); ++i) hq[i] = k[i] * 0.5f;
  DevMem q, out;
  KVT_RETURN_IF_ERROR(Malloc(q, kQRow * sizeof(float)));
  KVT_RETURN_IF_ERROR(Malloc(out, kQRow * sizeof(float)));
  KVT_CUDA_RETURN_IF_ERROR(cudaMemcpy(q.p, hq.data(), kQRow * sizeof(float), cudaMemcpyHostToDevice));
  Stream stream;
  KVT_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream.s, cudaStreamNonBlocking));
  std::vector<double> ms;
  uint64_t pcie_before = 0;
  for (int s = 0; s < 1 + steps; ++s) {
    if (s == 1) pcie_before = seq->counters().pcie_bytes;
    const size_t row = static_cast<size_t>(t + s) * kRow;
    const auto start = std::chrono::steady_clock::now();
    for (int l = 0; l < kLayers; ++l) {
      KVT_RETURN_IF_ERROR(seq->Append(l, k.data() + row, v.data() + row, 1));
      KVT_RETURN_IF_ERROR(seq->AttendOnDevice(l, As<float>(q), As<float>(out), stream.s));
    }
    KVT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream.s));
    if (s >= 1) ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(ms.begin(), ms.end());
  r->sequence_ms = ms[ms.size() / 2];
  const sequence::SequenceCounters c = seq->counters();
  r->sequence_gpu_bytes = c.device_bytes;
  r->sequence_pcie_bytes_per_step = (c.pcie_bytes - pcie_before) / static_cast<uint64_t>(steps);
  return Status::Ok();
}

}  // namespace

Status RunDecodeBenchGpu(const std::vector<int64_t>& contexts, int dense_layers, int steps,
                         const sequence::SequencePlan* sequence_plan, std::vector<GpuDecodeRecord>* out) {
  if (DeviceCount() == 0) return Unsupported("no CUDA device");
  cudaDeviceProp prop{};
  KVT_CUDA_RETURN_IF_ERROR(cudaGetDeviceProperties(&prop, 0));
  const std::string device = std::string("gpu:") + prop.name;
  for (int64_t t : contexts) {
    GpuDecodeRecord r;
    if (Status s = RunContext(t, std::clamp(dense_layers, 0, kLayers), std::max(steps, 1), device, &r); !s.ok()) {
      return s.WithContext("context " + std::to_string(t));
    }
    if (sequence_plan != nullptr) {
      if (Status s = RunSequenceContext(*sequence_plan, t, std::max(steps, 1), &r); !s.ok()) {
        return s.WithContext("sequence, context " + std::to_string(t));
      }
    }
    out->push_back(r);
  }
  return Status::Ok();
}

}  // namespace kvt::gpu
