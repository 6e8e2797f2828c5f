// LayerState — one layer of one Sequence in the form its LayerPlan keeps it (private to sequence/).
// Implementations: full and offload (resident_layers.cc), kivi (kivi_layer.cc), sparse
// (sparse_layer.cc), tale and kvcompose (method_layer.cc); on a GPU sequence their GPU twins
// (gpu_layers.h). Used by the Sequence's thread only; jobs they hand to the TransferScheduler
// read the layer's host-tier buffers on the worker thread, and its write-backs (write_backs.h)
// mutate them there, so a layer reads those buffers on its own thread only after settling the
// write-backs it needs, and waits for all its transfers (Quiesce) before Save or destruction.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "common/status_or.h"
#include "host/kernels/attention_shape.h"
#include "host/kernels/decode_attention.h"
#include "host/kernels/half.h"
#include "sequence/host_tier_memory.h"
#include "sequence/internal/bytes.h"
#include "sequence/sequence_plan.h"
#include "sequence/transfer_scheduler.h"

struct CUstream_st;  // cudaStream_t is CUstream_st*; named here without a CUDA header

namespace kvt::policies::lowrank {
class KvComposePlanner;
}

namespace kvt::sequence {

// What Select returns: fp16 K/V segments in attention order (see host/kernels/decode_attention.h);
// the pointers stay valid until the next call on the same layer.
struct SelectedKv {
  std::vector<kernels::KvSegment<kernels::Half>> segments;
  int64_t tokens = 0;
};

// Where a DeviceSelectedKv segment's bytes live; either way its pointers are device pointers.
enum class KvMemory : uint8_t {
  kDevice = 0,      // device memory of the sequence's device
  kMappedHost = 1,  // pinned host memory mapped into the device's address space: a kernel reads it
                    // over PCIe (zero-copy), at PCIe speed
};

// What SelectOnDevice returns: the same segments as SelectedKv (attention order, same strides and
// token counts), with device-accessible pointers; memory[i] says where segment i lives. Valid
// until the next call on the sequence (Sequence::SelectOnDevice says which buffers are reused).
struct DeviceSelectedKv {
  std::vector<kernels::KvSegment<kernels::Half>> segments;
  std::vector<KvMemory> memory;  // one per segment
  int64_t tokens = 0;
};

namespace internal {

// One of the two channel-row buffers TailorKV double-buffers across layers (layer l uses l % 2).
struct PrefetchBuffer {
  int layer = -1;                  // which layer's rows it holds (or is filling); -1: free
  bool pending = false;            // a ticket not yet waited
  TransferScheduler::Ticket ticket = 0;
  int64_t tokens = 0;              // tokens per row
  std::vector<int32_t> channels;   // [kv_heads][channels]
  std::vector<kernels::Half> rows; // [kv_heads][channels][tokens]
};

// Shared by the layers of one sequence.
struct LayerContext {
  TransferScheduler* scheduler = nullptr;
  // The host tier's memory (offload and sparse layers' K/V and transposed keys): the sequence's
  // SequenceOptions::host_memory, or its process-local default. Resident arrays of the CPU path
  // that live in a HostTierArray (full layers) come from `resident_memory` (process-local).
  HostTierMemory* host_memory = nullptr;
  HostTierMemory* resident_memory = nullptr;
  PrefetchBuffer buffers[2];
  // Gathered dominant tokens of the sparse layer being attended, head-major [kv_heads][k][head_dim]
  // (one pair per sequence, as one pair of device buffers on the GPU path).
  std::vector<kernels::Half> gather_k, gather_v;
  uint64_t pcie_bytes = 0;      // host tier -> working memory, cumulative (demand + prefetch)
  // Of pcie_bytes, the K/V of the tokens attended (offload: the whole layer, sparse: the dominant
  // tokens gathered); channel rows fetched to score are not in it.
  uint64_t attention_fetch_bytes = 0;
  uint64_t prefetch_hits = 0;   // sparse steps served by a hinted prefetch
  uint64_t demand_fetches = 0;  // sparse steps that fetched channel rows on demand
  // Set by the Sequence before it builds its layers (method_cache.h): the plan's layer count and
  // KVCompose's cross-layer budget — one planner shared by the plan's kvcompose layers with
  // global=1, which are its layers 0, 1, ... in plan order (kvcompose_index[l]; -1: not global).
  int num_layers = 0;
  std::shared_ptr<policies::lowrank::KvComposePlanner> kvcompose_planner;  // null: no global layer
  std::vector<int> kvcompose_index;                                        // [num_layers]
};

class LayerState {
 public:
  explicit LayerState(const kernels::AttentionShape& shape) : shape_(shape) {}
  virtual ~LayerState() = default;
  virtual Status Append(const float* keys, const float* values, int64_t tokens) = 0;
  virtual Status Select(const float* query, SelectedKv* out) = 0;
  // Default: Select, then DecodeAttention over the segments.
  virtual Status Attend(const float* query, float* out);
  // GPU layers: attention with `query` and `out` in device memory, enqueued on `stream` (see
  // Sequence::AttendOnDevice). CPU layers: UNSUPPORTED.
  virtual Status AttendOnDevice(const float* query, float* out, CUstream_st* stream) {
    return Unsupported("attend on device: this layer is kept on the CPU");
  }
  // GPU layers: `tokens` rows of keys and values [tokens][kv_heads][head_dim] float32 in device
  // memory, read after the work queued on `stream` so far; the caller's later work on `stream`
  // waits for the append (see Sequence::AppendOnDevice). CPU layers: UNSUPPORTED.
  virtual Status AppendOnDevice(const float* keys, const float* values, int64_t tokens, CUstream_st* stream) {
    return Unsupported("append on device: this layer is kept on the CPU");
  }
  // GPU layers: Select with `query` in device memory, device pointers out, ordered as
  // AppendOnDevice (see Sequence::SelectOnDevice). CPU layers: UNSUPPORTED.
  virtual Status SelectOnDevice(const float* query, CUstream_st* stream, DeviceSelectedKv* out) {
    return Unsupported("select on device: this layer is kept on the CPU");
  }
  virtual Status Hint(const float* speculative_query) { return Status::Ok(); }
  // The prompt's last `window` post-RoPE queries [window][q_heads][head_dim] (Sequence::Observe).
  virtual Status Observe(const float* queries, int window) { return Status::Ok(); }
  // After any layer's Observe: applies a decision that waited for other layers (a global=1
  // kvcompose layer's share of the cross-layer budget, once every such layer has observed).
  virtual Status Settle() { return Status::Ok(); }
  // Waits for this layer's outstanding transfers.
  virtual Status Quiesce() { return Status::Ok(); }
  // Appends the layer's image to `w` (after Quiesce). GPU layers copy their device state back
  // here, which can fail (a CUDA Status); `w` then holds a partial image to be discarded.
  virtual Status Save(ByteWriter& w) const = 0;
  virtual Status Load(ByteReader& r) = 0;
  virtual int64_t tokens() const = 0;
  virtual int64_t kept_tokens() const { return tokens(); }
  virtual uint64_t device_bytes() const = 0;  // resident ("GPU") bytes
  // Host-tier bytes the layer's finished write-backs hold (rows still being written back are not
  // in it yet); readable while write-backs run.
  virtual uint64_t host_bytes() const { return 0; }

 protected:
  kernels::AttentionShape shape_;
  std::vector<float> attend_ws_;
  SelectedKv attend_sel_;
};

// The CPU layer of `plan` for layer `layer` of a sequence of `num_layers`.
StatusOr<std::unique_ptr<LayerState>> MakeLayerState(const LayerPlan& plan, const kernels::AttentionShape& shape,
                                                     int layer, int num_layers, LayerContext* context);

// Per-kind factories (one file each).
std::unique_ptr<LayerState> NewFullLayer(const kernels::AttentionShape& shape, bool offload, LayerContext* ctx);
StatusOr<std::unique_ptr<LayerState>> NewKiviLayer(const LayerPlan& plan, const kernels::AttentionShape& shape);
StatusOr<std::unique_ptr<LayerState>> NewSparseLayer(const LayerPlan& plan, const kernels::AttentionShape& shape,
                                                     int layer, LayerContext* ctx);
// tale / kvcompose: the layer's cache (method_cache.h) for layer `layer` of context->num_layers.
StatusOr<std::unique_ptr<LayerState>> NewMethodLayer(const LayerPlan& plan, const kernels::AttentionShape& shape,
                                                     int layer, const LayerContext* context);

}  // namespace internal
}  // namespace kvt::sequence
