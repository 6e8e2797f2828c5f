// ModelKvIdentity — the `model_id` under which kvt-llama stores prefix KV in kv-tierd.
//
// Two runs may share a chunk only when they would have computed bit-identical K/V for the same
// tokens. That depends on the weights as the engine uses them (float32 after loading), the
// hyper-parameters (RoPE theta, RMS epsilon, shapes) and the engine's own arithmetic — not on the
// file that held the weights. So the identity is a content hash, not a path or an mtime:
//
//   kvt-llama/<layers>L<kv_heads>x<head_dim>@xxh3-128:<32 hex digits>/kv<kEngineKvVersion>
//
// The hash is XXH3-128 over the config's fields and every weight tensor that K/V depends on
// (everything but rms_final and the classifier). Consequences: stories260K.bin and an F32 GGUF of
// the same weights share chunks (they load to the same floats); an F16 GGUF does not (different
// floats); renaming, copying or touching a file changes nothing; a rebuilt engine whose kernels
// round differently must bump kEngineKvVersion. Hashing costs one pass over the weights (~0.1 ms
// for stories260K, a few seconds for an 8B model); pass an explicit id to skip it.
#pragma once

#include <string>

#include "examples/llama/model_weights.h"

namespace kvt::llama {

// Bump when the engine's K/V arithmetic changes (kernel order, RoPE implementation, ...).
inline constexpr int kEngineKvVersion = 1;

// Stable for the same weights and config; at most 100 bytes (kv-tierd allows 255).
std::string ModelKvIdentity(const ModelWeights& weights);

}  // namespace kvt::llama
