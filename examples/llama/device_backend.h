// DeviceBackend — the seam through which Transformer runs its forward pass on an accelerator
// (the CUDA path: examples/llama/cuda/), keeping this header and the CPU engine free of CUDA.
//
// A backend holds the model's weights on its device (uploaded once, when it is made) and runs
// whole forward passes there: embedding, RMSNorm, projections, RoPE, exact causal grouped-query
// attention over a KV cache that lives on the device, SwiGLU, the classifier. Only the logits
// come back. The device cache is the engine's uncompressed one, so a backend stands in for the
// `exact`/`full` (float32) policies only; other KV methods run on the CPU (see cuda_backend.h).
//
// Ownership and threads: the backend must outlive every Transformer and state made from it; its
// methods are const and may be called from several threads at once, each with its own state. A
// DeviceSequenceState is one sequence's device memory and queue, used by one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "common/status_or.h"

namespace kvt::llama {

// One sequence's state on a device (its KV cache, scratch, queue). Opaque to the engine.
class DeviceSequenceState {
 public:
  virtual ~DeviceSequenceState() = default;
  // Tokens whose K/V the device cache holds (the next position).
  virtual int64_t tokens() const = 0;
  // Bytes of K/V held on the device.
  virtual uint64_t stored_bytes() const = 0;
};

class DeviceBackend {
 public:
  virtual ~DeviceBackend() = default;

  // For messages: "cuda:0 (NVIDIA H100 80GB HBM3)".
  virtual std::string name() const = 0;

  // A fresh sequence; `max_tokens` sizes its cache up front (0: the model's context). The cache
  // grows past it when needed.
  virtual StatusOr<std::unique_ptr<DeviceSequenceState>> NewSequenceState(int max_tokens) const = 0;

  // Runs `tokens` (ids already checked against the vocabulary) at positions state.tokens() onward:
  // their K/V are appended to the device cache and each attends causally to everything before it
  // and itself. Writes the logits of every token [tokens][vocab] when `all_logits`, else of the
  // last one [vocab], to host memory. Blocks until the logits are in `logits`. On error the state's
  // token count is unchanged (the rows written past it are overwritten by the next call).
  virtual Status Forward(DeviceSequenceState& state, std::span<const int32_t> tokens,
                         bool all_logits, float* logits) const = 0;
};

}  // namespace kvt::llama
