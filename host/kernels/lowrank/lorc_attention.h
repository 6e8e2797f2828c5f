// LorcAttention — decode attention over LoRC's rank-r latents.
//
// LoRC stores, per KV head, key latents ck = Uk^T k_pre (k_pre: the key BEFORE RoPE; Uk: the top
// key_rank left singular vectors of that head's W_k) and value latents cv = Uv^T v. Keys are
// rebuilt before RoPE and rotated at their true positions (RoPE does not commute with a low-rank
// projection, so the latent must live in pre-RoPE space); values are never rebuilt: the attention
// weights are applied to the latents and the up-projection runs once per query (in a full LoRC
// deployment it is folded into W_o):
//   s_t = scale * q . RoPE_{pos_t}(Uk ck_t),   out = Uv (sum_t softmax(s)_t cv_t)
//
// Shapes: key_up [kv_heads][head_dim][key_rank], value_up [kv_heads][head_dim][value_rank]
// (row-major); key_latents [kv_heads][capacity][key_rank], value_latents
// [kv_heads][capacity][value_rank]; rope [capacity][head_dim/2][2] = (cos, sin) of each stored
// token's angle for pair i (Llama interleaved pairs (2i, 2i+1)); query, out [q_heads][head_dim].
// head_dim must be even. Host memory, caller workspace, never allocates, may use oneTBB, blocks.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/status.h"
#include "host/kernels/half.h"

namespace kvt::kernels::lowrank {

struct LorcAttentionArgs {
  int num_kv_heads = 0;
  int num_q_heads = 0;
  int head_dim = 0;
  int key_rank = 0;
  int value_rank = 0;
  int64_t capacity = 0;
  int64_t tokens = 0;
  float scale = 0.0f;  // 0 means 1/sqrt(head_dim)
  const float* key_up = nullptr;
  const float* value_up = nullptr;
  const Half* key_latents = nullptr;
  const Half* value_latents = nullptr;
  const float* rope = nullptr;
  const float* query = nullptr;
  float* out = nullptr;
};

size_t LorcAttentionWorkspaceBytes(const LorcAttentionArgs& args);

Status LorcAttention(const LorcAttentionArgs& args, void* workspace, size_t workspace_bytes);

// Fills rope[i][0..1] = (cos, sin)(position * theta^(-2i/head_dim)) for i < head_dim/2, in float64
// then rounded (the same angles the engine's RoPE uses).
void LorcRopeTable(int32_t position, int head_dim, float theta, float* rope);

}  // namespace kvt::kernels::lowrank
