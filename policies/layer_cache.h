// LayerCache — one layer's KV cache for one sequence, in the form a method keeps it.
//
// This is the seam between the methods (KIVI, TailorKV, TALE, LoRC, KVCompose, Quest, SnapKV,
// StreamingLLM, full) and their users: the reference engine's attention, the fidelity harness and
// the sequence plane. A method decides what it stores (codes, coefficients, selected tokens) and
// computes attention over it; the caller never sees the stored form.
//
// Shapes (row-major, float32 at this interface; methods store whatever they like):
//   keys / values appended:  [tokens][kv_heads][head_dim]
//   query of one step:       [q_heads][head_dim]   (q_heads = kv_heads * group, grouped-query)
//   attention output:        [q_heads][head_dim]
// Keys are given both before and after RoPE (methods that factor keys pre-RoPE, like LoRC, need
// the former; most use the latter). RoPE is the Llama interleaved-pair rotation described by
// RopeConfig, so a method that stores pre-RoPE keys can rotate them itself at attention time.
//
// Threading: a LayerCache is used by one thread at a time. Implementations may use oneTBB inside.
// Errors: Status for bad shapes or exhausted budgets; never abort on input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "common/status_or.h"

namespace kvt::policies {

struct RopeConfig {
  float theta = 10000.0f;  // frequency base; pair i of a head rotates by pos * theta^(-2i/head_dim)
};

struct LayerShape {
  int layer = 0;          // index of this layer in the model
  int num_layers = 1;
  int num_kv_heads = 1;
  int num_q_heads = 1;    // a multiple of num_kv_heads
  int head_dim = 1;
  int max_tokens = 0;     // upper bound on tokens this cache will hold (0: unknown)
  RopeConfig rope;
};

// What one Append carries. `positions` are absolute token positions (for RoPE).
struct AppendBatch {
  const float* keys = nullptr;          // [tokens][kv_heads][head_dim], post-RoPE
  const float* keys_pre_rope = nullptr; // same shape, before RoPE (may be null if unused)
  const float* values = nullptr;        // [tokens][kv_heads][head_dim]
  const int32_t* positions = nullptr;   // [tokens]
  int tokens = 0;
};

// Observation the engine can offer after prefill: the last `window` queries of the prompt
// (post-RoPE), [window][q_heads][head_dim]. Methods that select by attention (SnapKV, KVCompose,
// TALE's importance, TailorKV's classification) use it; others ignore it.
struct Observation {
  const float* queries = nullptr;
  int window = 0;
};

class LayerCache {
 public:
  virtual ~LayerCache() = default;

  // Appends tokens (prefill in bulk, decode one at a time).
  virtual Status Append(const AppendBatch& batch) = 0;

  // Called once after prefill with the prompt's last queries; a method may compress now.
  virtual Status Compress(const Observation& observation) { return Status::Ok(); }

  // Attention of one decode step: softmax(q K^T / sqrt(head_dim)) V over whatever the method
  // keeps, grouped-query. `out` is [q_heads][head_dim].
  virtual Status Attend(const float* query, float* out) = 0;

  // Tokens appended so far (logical length), and tokens actually kept.
  virtual int64_t tokens() const = 0;
  virtual int64_t kept_tokens() const { return tokens(); }

  // Bytes the cache occupies as actually stored (codes, scales, zeros, indices, residual
  // windows, bases amortized per sequence), for bytes-per-token reporting.
  virtual uint64_t stored_bytes() const = 0;

  virtual std::string name() const = 0;
};

}  // namespace kvt::policies
