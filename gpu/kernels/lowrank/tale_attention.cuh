// TaleAttentionCuda — CUDA twin of host/kernels/lowrank/tale_attention.h (same arguments, same
// function): TALE's reconstruction-free decode attention.
//
// Split-K ("flash-decoding"): kernel 1 projects every query into its head's key basis once;
// kernel 2 runs one block per (chunk of kChunk tokens, KV head): one warp per token, lanes over
// the record's coefficients, it scores the tokens with truncated dot products and accumulates
// softmax-weighted value coefficients in registers; kernel 3 merges the chunks of each query and
// projects the coefficients back through the value basis once.
//
// Every pointer in args (bases, records, per-level token counts, window, query, out,
// window_attention) is device memory. Counts are read on the device: the caller guarantees
// tokens[h] <= capacity and their per-head sum <= max_head_tokens (extra tokens are ignored, never
// read out of bounds). Limits: group (q_heads / kv_heads) <= 8, head_dim <= 256 (UNSUPPORTED
// otherwise). Enqueued on `stream`; never allocates: `workspace` holds
// TaleAttentionWorkspaceBytesCuda(args) bytes of device memory.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

#include "common/status.h"
#include "host/kernels/lowrank/tale_attention.h"

namespace kvt::gpu::lowrank {

size_t TaleAttentionWorkspaceBytesCuda(const kernels::lowrank::TaleAttentionArgs& args);

Status TaleAttentionCuda(const kernels::lowrank::TaleAttentionArgs& args, void* workspace,
                         size_t workspace_bytes, cudaStream_t stream);

}  // namespace kvt::gpu::lowrank
