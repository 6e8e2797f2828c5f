// CPU kernels of the Llama forward pass. Inner loops are `omp simd` reductions (the target is
// built with -fopenmp-simd) so they vectorize without -ffast-math; matrix products split their
// output rows over oneTBB when the product is large enough to pay for the tasks.
// All pointers are caller-owned, non-overlapping unless stated; no allocation.
#pragma once

#include <cstdint>

namespace kvt::llama::ops {

// sum_i a[i] * b[i]
float Dot(const float* a, const float* b, int n);

// y[o] = sum_i w[o][i] * x[i]          w: [out][in], x: [in], y: [out]
void MatVec(const float* w, const float* x, float* y, int out, int in);

// y[t][o] = sum_i x[t][i] * w[o][i]    x: [tokens][in], w: [out][in], y: [tokens][out]
void MatMul(const float* x, const float* w, float* y, int tokens, int out, int in);

// out[i] = weight[i] * x[i] / sqrt(mean(x^2) + eps)   (out may equal x)
void RmsNorm(const float* x, const float* weight, float* out, int n, float eps);

// Rotates interleaved pairs (2i, 2i+1) of every head of `v` [heads][head_dim] by
// pos * theta^(-2i/head_dim) (llama2.c's float formulas, so results match it bit for bit).
void Rope(float* v, int heads, int head_dim, int pos, float theta);
// The inverse rotation (recovers pre-RoPE keys from post-RoPE ones).
void RopeInverse(float* v, int heads, int head_dim, int pos, float theta);

// x = softmax(x), max-subtracted.
void Softmax(float* x, int n);

// h1[i] = silu(h1[i]) * h3[i]
void SwiGlu(float* h1, const float* h3, int n);

// out[d] += a * v[d]
void Axpy(float a, const float* v, float* out, int n);

}  // namespace kvt::llama::ops
