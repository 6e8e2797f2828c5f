// LorcAttentionCuda — CUDA twin of host/kernels/lowrank/lorc_attention.h (same arguments, same
// function): decode attention over LoRC's rank-r latents, keys rebuilt before RoPE and rotated at
// their positions, the value up-projection applied once per query:
//   s_t = scale * q . RoPE_{pos_t}(Uk ck_t),   out = Uv (sum_t softmax(s)_t cv_t)
//
// Split-K, two kernels: (1) one block per (chunk of up to 128 tokens, KV head): one warp per token
// rebuilds the key pair by pair (lanes over RoPE pairs), rotates it and scores it against the
// group's queries; a chunk softmax per query; then the p-weighted value latents
// [group][value_rank]; (2) one block per query head merges the chunks (max, then rescaled sums) and
// projects the merged latents through value_up.
//
// Every pointer in args is device memory; tokens and capacity are host values. Limits: group
// (q_heads / kv_heads) <= 8 and head_dim <= 256 (UNSUPPORTED otherwise); bad arguments or a short
// workspace are INVALID_ARGUMENT and touch neither the device nor the stream. Enqueued on
// `stream`, does not block; never allocates: `workspace` holds
// LorcAttentionWorkspaceBytesCuda(args) bytes of device memory, which must not be used by anything
// else until the stream passes the call.
//
// Performance limits (correctness first): key_up is read from global memory (L1/L2) by every warp
// for every token, i.e. the key rebuild costs head_dim * key_rank FMAs per token with no reuse
// across tokens beyond the cache; value latents are re-read once per query of the group; the
// combine kernel reads the partials of every chunk once per coefficient. A tensor-core rebuild
// (latents [chunk][rk] x Uk^T) is the obvious next step.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

#include "common/status.h"
#include "host/kernels/lowrank/lorc_attention.h"

namespace kvt::gpu::lowrank {

size_t LorcAttentionWorkspaceBytesCuda(const kernels::lowrank::LorcAttentionArgs& args);

Status LorcAttentionCuda(const kernels::lowrank::LorcAttentionArgs& args, void* workspace,
                         size_t workspace_bytes, cudaStream_t stream);

}  // namespace kvt::gpu::lowrank
