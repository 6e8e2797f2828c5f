// kvt.hpp — header-only C++ RAII layer over the C ABI in kvt.h.
//
// Errors are values: each call returns kvt::Result (a status code plus the readable message of
// kvt_last_error_message()), never throws. Handles close themselves; objects are move-only.
//
//   kvt::Client client;
//   if (auto r = kvt::Client::Open(options, &client); !r) { fprintf(stderr, "%s\n", r.message.c_str()); }
//   kvt::Namespace ns;
//   client.OpenNamespace(layout, &ns);
//   uint64_t matched = 0;
//   ns.Lookup(tokens.data(), tokens.size(), &matched);
#ifndef KVT_KVT_HPP_
#define KVT_KVT_HPP_

#include <cstdint>
#include <string>
#include <utility>

#include "kvt/kvt.h"

namespace kvt {

struct Result {
  kvt_status_t status = KVT_STATUS_OK;
  std::string message;
  explicit operator bool() const { return status == KVT_STATUS_OK; }
  static Result From(kvt_status_t s) {
    return s == KVT_STATUS_OK ? Result{} : Result{s, kvt_last_error_message()};
  }
};

class Op {
 public:
  Op() = default;
  explicit Op(kvt_op_t* op) : op_(op) {}
  Op(Op&& o) noexcept : op_(std::exchange(o.op_, nullptr)) {}
  Op& operator=(Op&& o) noexcept {
    if (this != &o) {
      kvt_op_release(op_);
      op_ = std::exchange(o.op_, nullptr);
    }
    return *this;
  }
  ~Op() { kvt_op_release(op_); }

  // KVT_STATUS_BUSY while pending.
  Result Poll(uint64_t* value = nullptr) { return Result::From(kvt_op_poll(op_, value)); }
  Result Wait(int64_t timeout_ns = -1, uint64_t* value = nullptr) {
    return Result::From(kvt_op_wait(op_, timeout_ns, value));
  }
  kvt_op_t** out() { return &op_; }

 private:
  kvt_op_t* op_ = nullptr;
};

class Namespace {
 public:
  Namespace() = default;
  Namespace(Namespace&& o) noexcept : ns_(std::exchange(o.ns_, nullptr)) {}
  Namespace& operator=(Namespace&& o) noexcept {
    if (this != &o) {
      kvt_namespace_close(ns_);
      ns_ = std::exchange(o.ns_, nullptr);
    }
    return *this;
  }
  ~Namespace() { kvt_namespace_close(ns_); }

  uint64_t chunk_bytes() const { return kvt_namespace_chunk_bytes(ns_); }
  uint32_t tokens_per_chunk() const { return kvt_namespace_tokens_per_chunk(ns_); }

  Result Store(const uint32_t* tokens, uint64_t n, const void* kv, uint64_t kv_bytes, uint64_t* stored = nullptr) {
    return Result::From(kvt_block_store(ns_, tokens, n, kv, kv_bytes, stored));
  }
  Result Lookup(const uint32_t* tokens, uint64_t n, uint64_t* matched) {
    return Result::From(kvt_block_lookup(ns_, tokens, n, matched));
  }
  Result Retrieve(const uint32_t* tokens, uint64_t n, void* out, uint64_t out_bytes, uint64_t* retrieved) {
    return Result::From(kvt_block_retrieve(ns_, tokens, n, out, out_bytes, retrieved));
  }
  Result Remove(const uint32_t* tokens, uint64_t n, uint64_t* removed = nullptr) {
    return Result::From(kvt_block_remove(ns_, tokens, n, removed));
  }
  Result Pin(const uint32_t* tokens, uint64_t n, uint64_t* pinned = nullptr) {
    return Result::From(kvt_block_pin(ns_, tokens, n, pinned));
  }
  Result Unpin(const uint32_t* tokens, uint64_t n, uint64_t* unpinned = nullptr) {
    return Result::From(kvt_block_unpin(ns_, tokens, n, unpinned));
  }
  Result StoreAsync(const uint32_t* tokens, uint64_t n, const void* kv, uint64_t kv_bytes, Op* op) {
    return Result::From(kvt_block_store_async(ns_, tokens, n, kv, kv_bytes, op->out()));
  }
  Result LookupAsync(const uint32_t* tokens, uint64_t n, Op* op) {
    return Result::From(kvt_block_lookup_async(ns_, tokens, n, op->out()));
  }
  Result RetrieveAsync(const uint32_t* tokens, uint64_t n, void* out, uint64_t out_bytes, Op* op) {
    return Result::From(kvt_block_retrieve_async(ns_, tokens, n, out, out_bytes, op->out()));
  }

  // GPU tier (a daemon with --gpu-pool-bytes; UNSUPPORTED otherwise): pins the longest present
  // prefix's chunks in the GPU pool, at most max_chunks; offsets[i] is chunk i's byte offset in
  // the pool (see Client::MapGpuPool). Balance each GpuPin with a GpuUnpin.
  Result GpuPin(const uint32_t* tokens, uint64_t n, uint64_t* offsets, uint64_t max_chunks,
                uint64_t* pinned_tokens = nullptr) {
    return Result::From(kvt_block_gpu_pin(ns_, tokens, n, offsets, max_chunks, pinned_tokens));
  }
  Result GpuUnpin(const uint32_t* tokens, uint64_t n, uint64_t* unpinned_tokens = nullptr) {
    return Result::From(kvt_block_gpu_unpin(ns_, tokens, n, unpinned_tokens));
  }

  kvt_namespace_t* get() const { return ns_; }
  kvt_namespace_t** out() { return &ns_; }

 private:
  kvt_namespace_t* ns_ = nullptr;
};

class Client {
 public:
  Client() = default;
  Client(Client&& o) noexcept : client_(std::exchange(o.client_, nullptr)) {}
  Client& operator=(Client&& o) noexcept {
    if (this != &o) {
      kvt_client_close(client_);
      client_ = std::exchange(o.client_, nullptr);
    }
    return *this;
  }
  ~Client() { kvt_client_close(client_); }

  static Result Open(const kvt_client_options_t& options, Client* out) {
    kvt_client_close(out->client_);
    out->client_ = nullptr;
    return Result::From(kvt_client_open(&options, &out->client_));
  }

  Result OpenNamespace(const kvt_layout_t& layout, Namespace* out) {
    *out = Namespace();
    return Result::From(kvt_namespace_open(client_, &layout, out->out()));
  }

  // A buffer in shared memory: stores from it and retrieves into it skip the client-side copy.
  Result AllocateBuffer(uint64_t bytes, void** ptr) { return Result::From(kvt_buffer_alloc(client_, bytes, ptr)); }
  void FreeBuffer(void* ptr) { kvt_buffer_free(client_, ptr); }

  // Maps the daemon's GPU pool into this process (once; later calls return the same mapping).
  Result MapGpuPool(kvt_gpu_pool_t* pool) {
    pool->struct_size = sizeof *pool;
    return Result::From(kvt_gpu_pool_map(client_, pool));
  }

  Result Stats(kvt_daemon_stats_t* stats) {
    stats->struct_size = sizeof *stats;
    return Result::From(kvt_daemon_stats(client_, stats));
  }

  kvt_client_t* get() const { return client_; }

 private:
  kvt_client_t* client_ = nullptr;
};

// One live sequence of the sequence plane (kvt_sequence_*), in this process. Used by one thread
// at a time. Host-pointer calls on any sequence; the *OnDevice calls on a sequence opened on a CUDA
// device (KVT_STATUS_UNSUPPORTED on a CPU one), with device pointers and a cudaStream_t passed as
// void* (nullptr: the legacy default stream); see kvt.h for their ordering and lifetimes. A
// sequence opened in a client (OpenInClient) keeps its host tier in that client's shared heap: the
// Client must outlive it (destroy or Close the Sequence first).
class Sequence {
 public:
  Sequence() = default;
  Sequence(Sequence&& o) noexcept : seq_(std::exchange(o.seq_, nullptr)) {}
  Sequence& operator=(Sequence&& o) noexcept {
    if (this != &o) {
      kvt_sequence_close(seq_);
      seq_ = std::exchange(o.seq_, nullptr);
    }
    return *this;
  }
  ~Sequence() { Close(); }

  // On the CPU.
  static Result Open(const char* plan_text, Sequence* out) { return Open(plan_text, -1, out); }
  // `cuda_device` -1: the CPU; >= 0: that CUDA device (ABI 1.3; UNSUPPORTED without CUDA or without
  // a visible device).
  static Result Open(const char* plan_text, int32_t cuda_device, Sequence* out) {
    out->Close();
    return Result::From(kvt_sequence_open_on_device(plan_text, cuda_device, &out->seq_));
  }
  static Result OpenOnDevice(const char* plan_text, int32_t cuda_device, Sequence* out) {
    return Open(plan_text, cuda_device, out);
  }
  // (ABI 1.5) The host tier in `client`'s shared heap, figures reported to its daemon.
  static Result OpenInClient(const Client& client, const char* plan_text, int32_t cuda_device, Sequence* out) {
    out->Close();
    return Result::From(kvt_sequence_open_in_client(client.get(), plan_text, cuda_device, &out->seq_));
  }
  void Close() {
    kvt_sequence_close(seq_);
    seq_ = nullptr;
  }

  Result Append(uint32_t layer, const float* keys, const float* values, uint32_t tokens) {
    return Result::From(kvt_sequence_append(seq_, layer, keys, values, tokens));
  }
  Result Attend(uint32_t layer, const float* query, float* out) {
    return Result::From(kvt_sequence_attend(seq_, layer, query, out));
  }
  Result Select(uint32_t layer, const float* query, kvt_kv_segment_t* segments, uint32_t capacity, uint32_t* count) {
    return Result::From(kvt_sequence_select(seq_, layer, query, segments, capacity, count));
  }
  Result HintNext(uint32_t layer, const float* speculative_query) {
    return Result::From(kvt_sequence_hint_next(seq_, layer, speculative_query));
  }
  Result Observe(uint32_t layer, const float* queries, uint32_t window) {
    return Result::From(kvt_sequence_observe(seq_, layer, queries, window));
  }

  // ABI 1.3 / 1.5: device pointers, enqueued on `cuda_stream`, returning without waiting.
  Result AppendOnDevice(uint32_t layer, const float* keys, const float* values, uint32_t tokens,
                        void* cuda_stream) {
    return Result::From(kvt_sequence_append_on_device(seq_, layer, keys, values, tokens, cuda_stream));
  }
  Result AttendOnDevice(uint32_t layer, const float* query, float* out, void* cuda_stream) {
    return Result::From(kvt_sequence_attend_on_device(seq_, layer, query, out, cuda_stream));
  }
  Result SelectOnDevice(uint32_t layer, const float* query, void* cuda_stream, kvt_device_selection_t* out) {
    out->struct_size = sizeof *out;
    return Result::From(kvt_sequence_select_on_device(seq_, layer, query, cuda_stream, out));
  }

  // The image goes to *image (free it with kvt_sequence_image_free).
  Result Suspend(void** image, uint64_t* bytes) { return Result::From(kvt_sequence_suspend(seq_, image, bytes)); }
  Result Resume(const void* image, uint64_t bytes) { return Result::From(kvt_sequence_resume(seq_, image, bytes)); }
  Result SuspendToFile(const char* path) { return Result::From(kvt_sequence_suspend_to_file(seq_, path)); }
  Result ResumeFromFile(const char* path) { return Result::From(kvt_sequence_resume_from_file(seq_, path)); }
  Result Attach(const Client& client) { return Result::From(kvt_sequence_attach(seq_, client.get())); }

  kvt_sequence_t* get() const { return seq_; }

 private:
  kvt_sequence_t* seq_ = nullptr;
};

}  // namespace kvt

#endif  // KVT_KVT_HPP_
