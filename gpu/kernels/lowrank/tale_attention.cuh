// TaleAttentionCuda — CUDA twin of host/kernels/lowrank/tale_attention.h (same arguments, same
// function): TALE's reconstruction-free decode attention.
//
// Split-K ("flash-decoding"), four kernels: (1) every query is projected into its head's key basis
// once; (2) one block per (chunk of up to 256 tokens of one rank bucket or of the window, KV head):
// the chunk's key records are staged in shared memory and one thread per token scores its record
// segment by segment (the bit width is uniform over a bucket, so decoding is shifts and masks, 32
// bits of codes at a time), then the value records replace them and each thread owns one byte (or
// fp16/fp32 coefficient) position and accumulates softmax-weighted coefficients over a stripe of
// the tokens; (3) per query and slice of 32 coefficients, the chunks merge in one online-softmax
// pass; (4) the merged coefficients are projected back through the value basis once per query.
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
