#include "examples/llama/cuda/llama_kernels.cuh"

#include <cuda_runtime.h>

#include "gpu/kernels/cuda_status.h"

namespace kvt::llama::cuda {
namespace {

constexpr int kBlock = 128;  // threads of the row kernels (a power of two: tree reductions)
constexpr int kTile = 16;    // MatMulRows tile edge

int Blocks(int64_t n, int per_block) { return static_cast<int>((n + per_block - 1) / per_block); }

// Tree reduction over the block (blockDim.x == kBlock); every thread gets the result.
template <bool kMax>
__device__ float BlockReduce(float v, float* shared) {
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int s = kBlock / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      const float o = shared[threadIdx.x + s];
      shared[threadIdx.x] = kMax ? fmaxf(shared[threadIdx.x], o) : shared[threadIdx.x] + o;
    }
    __syncthreads();
  }
  const float r = shared[0];
  __syncthreads();  // shared may be reused right after
  return r;
}

__global__ void EmbedKernel(const int32_t* tokens, const float* table, float* x, int dim) {
  const int t = blockIdx.x;
  const float* row = table + static_cast<int64_t>(tokens[t]) * dim;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) x[static_cast<int64_t>(t) * dim + i] = row[i];
}

__global__ void RmsNormKernel(const float* x, const float* weight, float* out, int n, float eps) {
  __shared__ float shared[kBlock];
  const float* xr = x + static_cast<int64_t>(blockIdx.x) * n;
  float* o = out + static_cast<int64_t>(blockIdx.x) * n;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < n; i += kBlock) ss += xr[i] * xr[i];
  ss = BlockReduce<false>(ss, shared);
  const float scale = 1.0f / sqrtf(ss / static_cast<float>(n) + eps);
  for (int i = threadIdx.x; i < n; i += kBlock) o[i] = weight[i] * (scale * xr[i]);
}

// Block (kTile, kTile) computes y[rows r0..r0+15][outs o0..o0+15], stepping over `in` in tiles.
__global__ void MatMulKernel(const float* x, const float* w, float* y, int rows, int out, int in) {
  __shared__ float xs[kTile][kTile + 1];  // [row][i]
  __shared__ float ws[kTile][kTile + 1];  // [out][i]
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int r = blockIdx.y * kTile + ty;  // this thread's output row
  const int o = blockIdx.x * kTile + tx;  // this thread's output column
  const int w_row = blockIdx.x * kTile + ty;
  float acc = 0.0f;
  for (int i0 = 0; i0 < in; i0 += kTile) {
    const int i = i0 + tx;
    xs[ty][tx] = (r < rows && i < in) ? x[static_cast<int64_t>(r) * in + i] : 0.0f;
    ws[ty][tx] = (w_row < out && i < in) ? w[static_cast<int64_t>(w_row) * in + i] : 0.0f;
    __syncthreads();
    for (int k = 0; k < kTile; ++k) acc += xs[ty][k] * ws[tx][k];
    __syncthreads();
  }
  if (r < rows && o < out) y[static_cast<int64_t>(r) * out + o] = acc;
}

// One thread per (row, head, pair).
__global__ void RopeKernel(float* v, int rows, int heads, int head_dim, int64_t pos0, float theta) {
  const int half = head_dim / 2;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= static_cast<int64_t>(rows) * heads * half) return;
  const int pair = static_cast<int>(idx % half);
  const int64_t row_head = idx / half;  // t * heads + h
  const int64_t t = row_head / heads;
  const int i = 2 * pair;
  // As ops::Rope: freq = 1 / theta^(i/head_dim), angle = pos·freq, all in float.
  const float freq = 1.0f / powf(theta, static_cast<float>(i) / static_cast<float>(head_dim));
  const float angle = static_cast<float>(pos0 + t) * freq;
  const float c = cosf(angle), s = sinf(angle);
  float* p = v + row_head * head_dim + i;
  const float a = p[0], b = p[1];
  p[0] = a * c - b * s;
  p[1] = a * s + b * c;
}

__global__ void SwiGluKernel(float* h1, const float* h3, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float a = h1[i];
  h1[i] = a * (1.0f / (1.0f + expf(-a))) * h3[i];
}

__global__ void AddKernel(float* x, const float* y, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) x[i] += y[i];
}

// One block per (row t, query head h): scores over the n = pos0 + t + 1 visible tokens into the
// scratch row, softmax with block reductions, then thread d < head_dim sums p_j·v_j[d].
__global__ void CausalAttentionKernel(CausalAttentionArgs a) {
  __shared__ float shared[kBlock];
  const int t = blockIdx.x / a.q_heads, h = blockIdx.x % a.q_heads;
  const int hd = a.head_dim, kv_dim = a.kv_heads * hd;
  const int64_t n = a.pos0 + t + 1;
  const int64_t koff = static_cast<int64_t>(h / (a.q_heads / a.kv_heads)) * hd;
  const float* q = a.q + (static_cast<int64_t>(t) * a.q_heads + h) * hd;
  float* scores = a.scores + (static_cast<int64_t>(t) * a.q_heads + h) * a.score_stride;
  const float sqrt_hd = sqrtf(static_cast<float>(hd));

  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < n; j += kBlock) {
    const float* k = a.keys + j * kv_dim + koff;
    float dot = 0.0f;
    for (int d = 0; d < hd; ++d) dot += q[d] * k[d];
    const float s = dot / sqrt_hd;
    scores[j] = s;
    mx = fmaxf(mx, s);
  }
  mx = BlockReduce<true>(mx, shared);
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < n; j += kBlock) {
    const float e = expf(scores[j] - mx);
    scores[j] = e;
    sum += e;
  }
  sum = BlockReduce<false>(sum, shared);  // its barriers also publish scores[] to the block
  float* out = a.out + (static_cast<int64_t>(t) * a.q_heads + h) * hd;
  for (int d = threadIdx.x; d < hd; d += kBlock) {
    float acc = 0.0f;
    for (int64_t j = 0; j < n; ++j) acc += (scores[j] / sum) * a.values[j * kv_dim + koff + d];
    out[d] = acc;
  }
}

}  // namespace

Status EmbedRows(const int32_t* tokens, const float* table, float* x, int rows, int dim,
                 cudaStream_t stream) {
  if (rows <= 0) return Status::Ok();
  EmbedKernel<<<rows, kBlock, 0, stream>>>(tokens, table, x, dim);
  return gpu::LaunchStatus("EmbedKernel");
}

Status RmsNormRows(const float* x, const float* weight, float* out, int rows, int n, float eps,
                   cudaStream_t stream) {
  if (rows <= 0) return Status::Ok();
  RmsNormKernel<<<rows, kBlock, 0, stream>>>(x, weight, out, n, eps);
  return gpu::LaunchStatus("RmsNormKernel");
}

Status MatMulRows(const float* x, const float* w, float* y, int rows, int out, int in,
                  cudaStream_t stream) {
  if (rows <= 0 || out <= 0) return Status::Ok();
  if (Blocks(rows, kTile) > 65535) return InvalidArgument("MatMulRows: more than 1M rows");
  const dim3 grid(Blocks(out, kTile), Blocks(rows, kTile));
  MatMulKernel<<<grid, dim3(kTile, kTile), 0, stream>>>(x, w, y, rows, out, in);
  return gpu::LaunchStatus("MatMulKernel");
}

Status RopeRows(float* v, int rows, int heads, int head_dim, int64_t pos0, float theta,
                cudaStream_t stream) {
  const int64_t n = static_cast<int64_t>(rows) * heads * (head_dim / 2);
  if (n <= 0) return Status::Ok();
  RopeKernel<<<Blocks(n, 256), 256, 0, stream>>>(v, rows, heads, head_dim, pos0, theta);
  return gpu::LaunchStatus("RopeKernel");
}

Status SwiGluInPlace(float* h1, const float* h3, int64_t n, cudaStream_t stream) {
  if (n <= 0) return Status::Ok();
  SwiGluKernel<<<Blocks(n, 256), 256, 0, stream>>>(h1, h3, n);
  return gpu::LaunchStatus("SwiGluKernel");
}

Status AddInPlace(float* x, const float* y, int64_t n, cudaStream_t stream) {
  if (n <= 0) return Status::Ok();
  AddKernel<<<Blocks(n, 256), 256, 0, stream>>>(x, y, n);
  return gpu::LaunchStatus("AddKernel");
}

Status CausalAttention(const CausalAttentionArgs& a, cudaStream_t stream) {
  if (a.rows <= 0) return Status::Ok();
  if (a.kv_heads <= 0 || a.q_heads % a.kv_heads != 0 || a.head_dim <= 0) {
    return InvalidArgument("CausalAttention: q_heads must be a positive multiple of kv_heads");
  }
  if (a.score_stride < a.pos0 + a.rows)
    return InvalidArgument("CausalAttention: score scratch too short");
  const int64_t blocks = static_cast<int64_t>(a.rows) * a.q_heads;
  if (blocks > 0x7fffffff) return InvalidArgument("CausalAttention: too many rows");
  CausalAttentionKernel<<<static_cast<unsigned>(blocks), kBlock, 0, stream>>>(a);
  return gpu::LaunchStatus("CausalAttentionKernel");
}

}  // namespace kvt::llama::cuda
