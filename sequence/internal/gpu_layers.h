// The GPU backend of a Sequence, seen from plain C++ (sequence.cc): no CUDA header here.
//
// A GpuContext is one sequence's hold on one CUDA device: its stream, two events ordering that
// stream against a caller's stream, and the scratch buffers every GPU layer of the sequence shares
// (query/output staging for host-pointer Attend, attention workspace, sparse scores, top-k
// indices, gathered K/V). GPU layer states (gpu_*_layer.cu) keep their KV as the plan says:
//   full     fp16 K/V in device memory
//   offload  fp16 K/V in the host tier (pinned, mapped host memory: the context's own or the
//            client's registered shared heap); attention reads it over PCIe (zero-copy)
//   kivi     KIVI codes + fp16 residual windows in device memory, quantized on the device
//   sparse   fp16 K/V in the host tier (as offload); resident on the device: sinks, recent window,
//            channel maxima and the low-bit key sketch (scorer=sketch; scorer=channels keeps a
//            transposed key copy in pinned memory instead); per step the scores, top-k and the
//            zero-copy gather of the dominant rows run on the device
//   tale     the CPU TaleCache owns the state; the device mirrors its bases, level records and
//            exact window (copied as they change) and attends there (TaleAttentionCuda)
//   kvcompose  the CPU KvComposeCache owns the state; the device mirrors its kept fp16 tokens per
//            KV head and attends there (DecodeAttentionCuda, per head when counts differ)
// Device-pointer appends and selections (LayerState::AppendOnDevice / SelectOnDevice) convert,
// quantize and select on the device and write the pinned host tier from the device
// (gpu_layer.cuh says how they are ordered against the caller's stream).
// Used by the sequence's thread only. Without CUDA in the build (gpu_layers_none.cc), or without
// a device, OpenGpuContext fails with UNSUPPORTED and nothing else here is reachable.
#pragma once

#include <cstdint>
#include <memory>

#include "common/status_or.h"
#include "sequence/internal/layer_state.h"

namespace kvt::sequence::internal {

struct GpuContext;  // gpu_context.cuh
struct GpuContextDeleter {
  void operator()(GpuContext* context) const;  // waits for the stream, frees everything
};
using GpuContextPtr = std::unique_ptr<GpuContext, GpuContextDeleter>;

// UNSUPPORTED without CUDA in the build or without a device; INVALID_ARGUMENT for a device index
// the machine does not have; a CUDA Status when creating the stream fails.
StatusOr<GpuContextPtr> OpenGpuContext(int device);

// Makes the context's device current on the calling thread (each Sequence entry calls it first).
Status ActivateGpu(const GpuContext& context);

// The host-tier memory of a GPU sequence opened without SequenceOptions::host_memory: pinned host
// memory mapped into the device's address space (cudaHostAlloc, mapped + portable). Null without
// CUDA (never reached: OpenGpuContext fails first).
std::unique_ptr<HostTierMemory> NewPinnedHostTierMemory(const GpuContext& context);

// Frees the shared scratch buffers (Suspend); they grow again on the next use.
void ReleaseGpuScratch(GpuContext& context);

// Device bytes of the shared scratch buffers (counted once per sequence).
uint64_t GpuScratchBytes(const GpuContext& context);

// The GPU layer state for `plan`.
StatusOr<std::unique_ptr<LayerState>> NewGpuLayer(const LayerPlan& plan, const kernels::AttentionShape& shape,
                                                  int layer, GpuContext* gpu, LayerContext* context);

}  // namespace kvt::sequence::internal
