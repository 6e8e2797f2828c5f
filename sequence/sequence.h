// Sequence — one live sequence in the sequence plane: every layer's KV kept as its LayerPlan says
// (full, offload, KIVI-quantized dense layer, TailorKV sparse layer, TALE, KVCompose), appended at
// prefill and decode, attended or selected per decode step, suspended to bytes or to a file and
// resumed bit-exact.
//
// tale / kvcompose layers are the policies/lowrank caches themselves (sequence/internal/
// method_cache.h), built by the policies registry from the plan (MethodSpec): Append feeds them
// post-RoPE keys at positions 0, 1, 2, ... of the layer; Attend is theirs, bit for bit. They
// compress at Observe (the prompt's last queries, after prefill): KVCompose selects its kept
// tokens there, TALE takes token importance from it (and calibrates its bases there, or else at the
// first Attend past 2*window tokens). KVCompose's budget is per layer (global=0) or, with global=1,
// spread across the plan's global=1 kvcompose layers by one planner the sequence owns, decided at
// the last of their Observes (until then they are exact; Suspend is UNSUPPORTED between the first
// and the last of those Observes, the sequence staying live). Select on them is UNSUPPORTED: TALE
// attends over low-rank coefficients without rebuilding K/V, and KVCompose keeps a different token
// set per KV head. Suspend images carry each cache's own state (TaleCache / KvComposeCache::Save)
// and resume bit for bit, on either backend. On a GPU sequence the CPU cache still owns the state
// (appends, Observe, the image) and the device mirrors what attention reads, copied as it changes:
// TALE's bases, level records and exact window (TaleAttentionCuda; its window weights come back to
// feed TALE's importance, so a GPU sequence's TALE state can differ from a CPU one's by the
// rounding of those weights), KVCompose's kept fp16 tokens per KV head (DecodeAttentionCuda).
//
// Shapes (float32 at this interface, keys post-RoPE):
//   keys / values appended  [tokens][kv_heads][head_dim]
//   query, output           [q_heads][head_dim]        (grouped-query)
// A decode step for layer l is: HintNext(l + 1, speculative query of layer l + 1) (optional; lets
// the next sparse layer's channel rows move while layer l computes), Append(l, k, v, 1),
// Attend(l, q, out) or Select(l, q).
//
// Device: with SequenceOptions::cuda_device >= 0 the layers live on that CUDA device
// (sequence/internal/gpu_layers.h): full fp16 in device memory; offload fp16 in pinned host memory
// read zero-copy by the attention kernel; kivi quantized and attended on the device; sparse with
// K/V in pinned host memory and sinks, recent window, channel maxima and the low-bit key sketch on
// the device, scored, top-k'd, gathered (zero-copy) and attended there (scorer=channels: scored on
// the query's channel rows of a transposed key copy in pinned memory, read zero-copy; the channels
// come from the real query, so HintNext is a no-op on a GPU sequence). tale and kvcompose: see
// above (the CPU cache owns the state, attention runs over its device mirror). Attend (host
// pointers) works on both backends; AttendOnDevice, AppendOnDevice and SelectOnDevice take device
// pointers and a stream (an engine with its own kernels keeps everything on the device). Select
// keeps its contract (host pointers): offload and sparse segments point into the pinned host tier,
// the rest are copied back (for inspection or a CPU-side kernel, not a decode fast path). Append
// (host pointers) converts on the host and uploads. The host tier (offload and sparse layers' K/V,
// transposed keys) is allocated from SequenceOptions::host_memory when given —
// kvt_sequence_open_in_client puts it in the client's shared heap, the daemon's arena mapped into
// this process — else from this process's memory. Suspend images are the same bytes on both
// backends: an image resumes on a CPU or a GPU sequence (the device is an option, not part of the
// image); full, offload and kivi layers resume bit for bit, a sparse layer's sketch and transposed
// keys are rebuilt from its K/V by the resuming side (CPU and GPU sketch codes agree except where a
// key sits within float rounding of a code boundary). Without CUDA in the build or without a
// device, Open/Restore with cuda_device >= 0 fail with UNSUPPORTED (a device index the machine
// lacks: INVALID_ARGUMENT); they never abort.
//
// Threading: one thread at a time calls a Sequence; its transfers run on the TransferScheduler's
// worker (the sequence's own, or one shared with other sequences through SequenceOptions, which
// must then outlive the sequence). Calls block until their data is ready (except the *OnDevice
// calls, which enqueue on a CUDA stream and return); errors are Status (bad layer, null buffers,
// wrong shapes, host pointers where device memory is due, suspended sequence) and never abort.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/status_or.h"
#include "sequence/host_tier_memory.h"
#include "sequence/internal/gpu_layers.h"
#include "sequence/internal/layer_state.h"
#include "sequence/sequence_plan.h"
#include "sequence/suspend_file.h"
#include "sequence/transfer_scheduler.h"

namespace kvt::sequence {

struct SequenceOptions {
  TransferScheduler* scheduler = nullptr;  // null: the sequence starts its own
  int cuda_device = -1;                    // -1: host memory and CPU kernels; >= 0: that CUDA device
  // Where the host tier lives (offload and sparse layers' K/V, sparse layers' transposed keys); see
  // sequence/host_tier_memory.h. Null: this process's memory (aligned heap on the CPU, pinned and
  // mapped memory on a GPU). Otherwise it must outlive the sequence, and for a GPU sequence be
  // mapped for DMA (device_mapped(); else Open/Restore fail with INVALID_ARGUMENT). When it is
  // full, an Append that needs more fails with its RESOURCE_EXHAUSTED and changes nothing.
  HostTierMemory* host_memory = nullptr;
};

struct SequenceCounters {
  uint64_t device_bytes = 0;    // resident ("GPU") KV bytes, all layers (GPU sequence: + scratch)
  uint64_t host_bytes = 0;      // host-tier KV bytes, all layers
  uint64_t pcie_bytes = 0;      // host tier -> working memory since Open/Resume (prefetch + demand)
  uint64_t prefetch_hits = 0;   // sparse-layer steps served by a HintNext prefetch
  uint64_t demand_fetches = 0;  // sparse-layer steps that fetched channel rows on demand
  uint64_t attention_fetch_bytes = 0;  // of pcie_bytes, K/V of attended tokens (offload: all, sparse: dominant)
};

class Sequence {
 public:
  static StatusOr<std::unique_ptr<Sequence>> Open(const SequencePlan& plan, SequenceOptions options = {});
  // A new sequence from a Suspend image.
  static StatusOr<std::unique_ptr<Sequence>> Restore(std::span<const uint8_t> image, SequenceOptions options = {});
  ~Sequence();
  Sequence(const Sequence&) = delete;
  Sequence& operator=(const Sequence&) = delete;

  // Prefill in bulk or one decode token: `tokens` > 0 rows.
  Status Append(int layer, const float* keys, const float* values, int tokens);
  Status Attend(int layer, const float* query, float* out);
  // GPU sequences only (UNSUPPORTED on a CPU one): `query` and `out` [q_heads][head_dim] float32 in
  // device memory of the sequence's device. The attention is enqueued on `stream` (null: the
  // legacy default stream) after everything the sequence queued before (appends), and the call
  // returns without waiting: `out` is ready when `stream` reaches this point. The sequence's next
  // calls are ordered after it (and after `stream`'s earlier work). The caller keeps `query` and
  // `out` alive until then. A host pointer is INVALID_ARGUMENT (cudaPointerGetAttributes).
  Status AttendOnDevice(int layer, const float* query, float* out, CUstream_st* stream);
  // GPU sequences only (UNSUPPORTED on a CPU one): `keys` and `values` [tokens][kv_heads][head_dim]
  // float32 in device memory of the sequence's device (device, managed or mapped pinned memory;
  // anything else is INVALID_ARGUMENT, checked with cudaPointerGetAttributes). The append is
  // enqueued on the sequence's stream after everything queued on `stream` so far (so the rows may
  // be the output of the engine's last kernel there) and after the sequence's own earlier work;
  // `stream`'s later work waits for it. Returns without waiting: the caller may overwrite the rows
  // with work on `stream` right away, but from another stream or the host only after `stream`
  // reaches this point. Conversion and quantization run on the device; host-tier rows (offload,
  // sparse K/V and transposed keys) are written from the device into pinned memory (a DMA or a
  // kernel writing the mapped copy), never staged through pageable host memory. The same state as
  // Append of the same rows, bit for bit. The transfer scheduler does not see these writes.
  Status AppendOnDevice(int layer, const float* keys, const float* values, int tokens, CUstream_st* stream);
  // The K/V the layer would attend to, for an engine running its own kernel; valid until the next
  // call on this sequence (sparse layers share one gather buffer). Dense (KIVI) layers return
  // their dequantized K/V; tale and kvcompose layers answer UNSUPPORTED (see the top). On a GPU
  // sequence the segments point into host memory (the pinned host tier, or copies brought back).
  StatusOr<SelectedKv> Select(int layer, const float* query);
  // GPU sequences only (UNSUPPORTED on a CPU one): Select with `query` [q_heads][head_dim] float32
  // in device memory, answering device pointers — the same segments, strides and token counts as
  // Select, ordered as AppendOnDevice (after `stream`'s work so far; `stream`'s later work sees the
  // result; returns without waiting). Per kind, what the pointers are:
  //   full     the layer's device storage itself (kDevice); nothing is enqueued
  //   offload  the pinned host tier through its device mapping (kMappedHost: zero-copy, PCIe)
  //   kivi     the K/V dequantized on the device, rounded to fp16, in the sequence's scratch (kDevice)
  //   sparse   sinks and recent window (resident copies) and the gathered dominant rows (the
  //            sequence's gather buffers), kDevice; when the budget covers every token, one segment:
  //            the whole host tier, mapped (kMappedHost)
  // Valid until the next call on this sequence: appends may grow (reallocate) storage, and the
  // next selection or attention reuses the scratch. The caller's kernels that read them must be
  // enqueued on `stream` (then the next device-pointer call on `stream` is ordered after them), or
  // finished before the next call, and finished before Suspend or destruction.
  StatusOr<DeviceSelectedKv> SelectOnDevice(int layer, const float* query, CUstream_st* stream);
  // `speculative_query` [q_heads][head_dim] approximates layer `layer`'s coming query (TailorKV
  // computes it from the previous layer's hidden state with this layer's W_q). No-op for layers
  // that do not prefetch.
  Status HintNext(int layer, const float* speculative_query);
  // After prefill: `queries` [window][q_heads][head_dim], the prompt's last `window` (>= 1) post-RoPE
  // queries of layer `layer`. tale / kvcompose layers compress on it (LayerCache::Compress; a
  // second Observe is ignored by kvcompose); a no-op for the other kinds.
  Status Observe(int layer, const float* queries, int window);

  // Waits for every transfer, then moves the whole state into the returned image and frees it;
  // afterwards only Resume, Suspend-free queries and destruction are allowed.
  StatusOr<std::vector<uint8_t>> Suspend();
  // Resumes from a Suspend image (or on a fresh sequence that holds no tokens). A bad image
  // (CORRUPTION) changes nothing: the sequence stays suspended and can be resumed from a good one.
  Status Resume(std::span<const uint8_t> image);
  // Suspend to a file on local storage (sequence/suspend_file.h): the same image, streamed one layer
  // at a time, fsync'd and renamed into place; then the state is freed as by Suspend. On failure
  // (RESOURCE_EXHAUSTED for a full disk, IO_ERROR, ...) no file is left at `path`'s partial name and
  // the sequence stays live and unchanged. `io` null: pwrite/fsync (tests inject faults through it).
  Status SuspendToFile(const std::string& path, SuspendFileIo* io = nullptr);
  // Reads and verifies the file, then Resume. A truncated or corrupt file is CORRUPTION, a file
  // that is not a suspend file INVALID_ARGUMENT, a missing one NOT_FOUND; each leaves the sequence
  // suspended and intact. The file stays where it is (the caller removes it).
  Status ResumeFromFile(const std::string& path);
  bool suspended() const { return suspended_; }
  bool on_gpu() const { return gpu_ != nullptr; }

  const SequencePlan& plan() const { return plan_; }
  int64_t tokens(int layer) const;
  int64_t kept_tokens(int layer) const;
  uint64_t stored_bytes(int layer) const;  // resident + host-tier bytes of one layer
  SequenceCounters counters() const;
  // counters().attention_fetch_bytes without walking the layers (cheap enough for every step).
  uint64_t attention_fetch_bytes() const { return context_.attention_fetch_bytes; }
  TransferScheduler& scheduler() { return *scheduler_; }

 private:
  explicit Sequence(SequencePlan plan, SequenceOptions options);
  Status OpenDevice(int cuda_device, HostTierMemory* host_memory);
  Status BuildLayers();
  Status CheckLayer(int layer) const;
  Status QuiesceAll();       // waits for every transfer of every layer
  void ReleaseState();       // frees every layer and buffer; the sequence is then suspended
  std::vector<uint8_t> ImagePrologue() const;  // the image's magic and plan

  SequencePlan plan_;
  std::unique_ptr<TransferScheduler> own_scheduler_;
  TransferScheduler* scheduler_;
  std::unique_ptr<HostTierMemory> own_host_memory_;  // when SequenceOptions::host_memory is null
  std::unique_ptr<HostTierMemory> resident_memory_;  // CPU full layers' arrays
  internal::LayerContext context_;
  internal::GpuContextPtr gpu_;  // null: a CPU sequence
  std::vector<std::unique_ptr<internal::LayerState>> layers_;  // destroyed before context_
  bool suspended_ = false;
};

}  // namespace kvt::sequence
