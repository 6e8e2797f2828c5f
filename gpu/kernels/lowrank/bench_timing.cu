#include "gpu/kernels/lowrank/bench_timing.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <functional>
#include <vector>

#include "gpu/kernels/decode_attention.cuh"
#include "gpu/kernels/lowrank/internal/cuda_check.h"
#include "gpu/kernels/lowrank/tale_attention.cuh"

namespace kvt::gpu::lowrank {

namespace klr = kernels::lowrank;

namespace {

class DeviceArena {
 public:
  ~DeviceArena() {
    for (void* p : ptrs_) cudaFree(p);
  }
  StatusOr<void*> Alloc(size_t bytes) {
    void* p = nullptr;
    KVT_LOWRANK_CUDA_RETURN_IF_ERROR(cudaMalloc(&p, std::max<size_t>(bytes, 1)));
    ptrs_.push_back(p);
    return p;
  }
  template <typename T>
  StatusOr<T*> Upload(const T* src, size_t count) {
    KVT_ASSIGN_OR_RETURN(void* p, Alloc(count * sizeof(T)));
    if (count > 0) KVT_LOWRANK_CUDA_RETURN_IF_ERROR(cudaMemcpy(p, src, count * sizeof(T), cudaMemcpyHostToDevice));
    return static_cast<T*>(p);
  }

 private:
  std::vector<void*> ptrs_;
};

StatusOr<double> MedianMs(const std::function<Status()>& run, int warmup, int iters) {
  for (int i = 0; i < warmup; ++i) KVT_RETURN_IF_ERROR(run());
  KVT_LOWRANK_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
  cudaEvent_t start, stop;
  KVT_LOWRANK_CUDA_RETURN_IF_ERROR(cudaEventCreate(&start));
  KVT_LOWRANK_CUDA_RETURN_IF_ERROR(cudaEventCreate(&stop));
  std::vector<float> ms;
  auto timed = [&]() -> Status {
    for (int i = 0; i < iters; ++i) {
      cudaEventRecord(start);
      KVT_RETURN_IF_ERROR(run());
      cudaEventRecord(stop);
      cudaEventSynchronize(stop);
      float t = 0.0f;
      cudaEventElapsedTime(&t, start, stop);
      ms.push_back(t);
    }
    return Status::Ok();
  };
  const Status st = timed();  // the events are destroyed whatever it returns
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  KVT_RETURN_IF_ERROR(st);
  KVT_LOWRANK_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
  std::sort(ms.begin(), ms.end());
  return static_cast<double>(ms[ms.size() / 2]);
}

}  // namespace

bool HaveCudaDevice() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return n > 0;
}

StatusOr<GpuTiming> TimeTaleVsDenseCuda(const klr::TaleAttentionArgs& h, const klr::DenseAttentionShape& ds,
                                        const uint16_t* dk, const uint16_t* dv, int64_t tokens, int warmup,
                                        int iters) {
  if (!HaveCudaDevice()) return Unsupported("no CUDA device");
  if (iters < 1) return InvalidArgument("iters must be >= 1");
  GpuTiming out;
  cudaDeviceProp prop;
  KVT_LOWRANK_CUDA_RETURN_IF_ERROR(cudaGetDeviceProperties(&prop, 0));
  out.device = prop.name;
  DeviceArena arena;
  const int d = h.head_dim, kv = h.num_kv_heads;
  klr::TaleAttentionArgs g = h;
  KVT_ASSIGN_OR_RETURN(g.key_basis, arena.Upload(h.key_basis, static_cast<size_t>(kv) * d * d));
  KVT_ASSIGN_OR_RETURN(g.value_basis, arena.Upload(h.value_basis, static_cast<size_t>(kv) * d * d));
  for (int l = 0; l < klr::kTaleLevels; ++l) {
    const size_t kb = static_cast<size_t>(kv) * h.levels[l].capacity * h.key_layout.levels[l].record_bytes;
    const size_t vb = static_cast<size_t>(kv) * h.levels[l].capacity * h.value_layout.levels[l].record_bytes;
    KVT_ASSIGN_OR_RETURN(g.levels[l].key_records, arena.Upload(h.levels[l].key_records, kb));
    KVT_ASSIGN_OR_RETURN(g.levels[l].value_records, arena.Upload(h.levels[l].value_records, vb));
    KVT_ASSIGN_OR_RETURN(g.levels[l].tokens, arena.Upload(h.levels[l].tokens, static_cast<size_t>(kv)));
  }
  const size_t wn = static_cast<size_t>(h.window_tokens) * kv * d;
  KVT_ASSIGN_OR_RETURN(g.window_keys, arena.Upload(h.window_keys, wn));
  KVT_ASSIGN_OR_RETURN(g.window_values, arena.Upload(h.window_values, wn));
  KVT_ASSIGN_OR_RETURN(g.query, arena.Upload(h.query, static_cast<size_t>(h.num_q_heads) * d));
  KVT_ASSIGN_OR_RETURN(void* o1, arena.Alloc(sizeof(float) * h.num_q_heads * d));
  g.out = static_cast<float*>(o1);
  g.window_attention = nullptr;
  const size_t tws = TaleAttentionWorkspaceBytesCuda(g);
  KVT_ASSIGN_OR_RETURN(void* tw, arena.Alloc(tws));
  KVT_ASSIGN_OR_RETURN(out.lowrank_ms, MedianMs([&] { return TaleAttentionCuda(g, tw, tws, nullptr); }, warmup, iters));

  const size_t dn = static_cast<size_t>(ds.num_kv_heads) * ds.capacity * ds.head_dim;
  KVT_ASSIGN_OR_RETURN(const uint16_t* gk, arena.Upload(dk, dn));
  KVT_ASSIGN_OR_RETURN(const uint16_t* gv, arena.Upload(dv, dn));
  // The dense baseline is the product's fp16 decode kernel (gpu/kernels/decode_attention.cuh),
  // over the same [kv_heads][capacity][head_dim] cache.
  const kernels::AttentionShape shape{ds.num_q_heads, ds.num_kv_heads, ds.head_dim};
  const kernels::KvSegment<kernels::Half> seg{reinterpret_cast<const kernels::Half*>(gk),
                                              reinterpret_cast<const kernels::Half*>(gv), tokens, ds.head_dim,
                                              static_cast<int64_t>(ds.capacity) * ds.head_dim};
  const size_t dws = DecodeAttentionWorkspaceBytesCuda(shape, tokens);
  KVT_ASSIGN_OR_RETURN(void* dw, arena.Alloc(dws));
  KVT_ASSIGN_OR_RETURN(void* o2, arena.Alloc(sizeof(float) * ds.num_q_heads * ds.head_dim));
  KVT_ASSIGN_OR_RETURN(out.dense_ms, MedianMs([&] {
    return DecodeAttentionCuda(shape, std::span(&seg, 1), g.query, static_cast<float*>(o2), dw, dws, nullptr);
  }, warmup, iters));
  return out;
}

}  // namespace kvt::gpu::lowrank
