// The Llama forward's operations as fp32 CUDA kernels — device twins of examples/llama/ops.h and
// Transformer::CausalAttention, written to be obviously correct rather than fast (stories260K
// is tiny). Every pointer is device memory; work is enqueued on `stream` and nothing is
// allocated; each launcher returns the launch's status (execution errors show at the next sync).
// Shapes in brackets; `rows` is the number of tokens.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/status.h"

namespace kvt::llama::cuda {

// x[t] = table[tokens[t]]: table [vocab][dim], x [rows][dim]. Ids are checked by the caller.
Status EmbedRows(const int32_t* tokens, const float* table, float* x, int rows, int dim,
                 cudaStream_t stream);

// out[t] = weight ⊙ x[t] / sqrt(mean(x[t]²) + eps): x, out [rows][n], weight [n].
Status RmsNormRows(const float* x, const float* weight, float* out, int rows, int n, float eps,
                   cudaStream_t stream);

// y[t][o] = Σ_i x[t][i]·w[o][i]: x [rows][in], w [out][in] (row-major), y [rows][out]; y must not
// overlap x or w. Shared-memory tiles of 16×16.
Status MatMulRows(const float* x, const float* w, float* y, int rows, int out, int in,
                  cudaStream_t stream);

// Interleaved-pair RoPE in place: v [rows][heads][head_dim], row t at position pos0 + t.
Status RopeRows(float* v, int rows, int heads, int head_dim, int64_t pos0, float theta,
                cudaStream_t stream);

// h1 = silu(h1) ⊙ h3, n elements.
Status SwiGluInPlace(float* h1, const float* h3, int64_t n, cudaStream_t stream);

// x += y, n elements.
Status AddInPlace(float* x, const float* y, int64_t n, cudaStream_t stream);

struct CausalAttentionArgs {
  const float* q = nullptr;       // [rows][q_heads][head_dim], post-RoPE
  const float* keys = nullptr;    // [pos0 + rows][kv_heads][head_dim], post-RoPE
  const float* values = nullptr;  // [pos0 + rows][kv_heads][head_dim]
  float* scores = nullptr;  // scratch [rows][q_heads][score_stride], score_stride >= pos0 + rows
  float* out = nullptr;     // [rows][q_heads][head_dim]
  int rows = 0;
  int64_t pos0 = 0;  // tokens before this batch
  int q_heads = 0, kv_heads = 0, head_dim = 0;
  int64_t score_stride = 0;
};
// out[t][h] = softmax(q[t][h]·K[0..pos0+t]ᵀ/√head_dim)·V[0..pos0+t], K/V of head h/(q/kv heads).
Status CausalAttention(const CausalAttentionArgs& a, cudaStream_t stream);

}  // namespace kvt::llama::cuda
