// TaleMirror / KvComposeMirror — what a device mirror of a CPU TaleCache / KvComposeCache must
// copy to reflect the cache's current state, as plain C++ so the logic is tested on the CPU
// (tests/unit/sequence/mirror_plan_test.cc runs the CPU attention kernels over a host mirror built
// from these plans and checks it bit-equal to the caches) and executed on the device by the GPU
// layers (gpu_tale_layer.cu, gpu_kvcompose_layer.cu).
//
// A mirror is a set of byte buffers; each Plan call lists, for every buffer, the size it must have
// (growing keeps the prefix, as DeviceArray::Resize does), whether to free it first (a shrink),
// and the host -> buffer copies, in order, that bring it up to date — only what changed since the
// previous Plan where the cache's layout allows it. The copies' sources point into the cache (or
// into the tracker, for the level counts) and stay valid until the next non-const call on either.
// Reset() forgets what was mirrored (after the cache Loads an image): the next Plan copies all.
// Not thread-safe; the cache and its tracker are used by one thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "host/kernels/lowrank/tale_format.h"
#include "policies/lowrank/kvcompose_cache.h"
#include "policies/lowrank/tale_cache.h"

namespace kvt::sequence::internal {

struct MirrorCopy {
  int buffer = 0;
  size_t offset = 0;  // bytes into the buffer
  const void* src = nullptr;
  size_t bytes = 0;
};

struct MirrorPlan {
  std::vector<size_t> sizes;       // [buffers] bytes
  std::vector<uint8_t> release;    // [buffers] 1: free the buffer before sizing it
  std::vector<MirrorCopy> copies;  // in order
};

// Buffers: the two bases [kv][d][d] fp32; per level its key and value records
// [kv][capacity(l)][record bytes]; the level counts [levels][kv] int32; the exact window's keys
// and values [window_tokens][kv][d] fp32 (row i is token cache.compressed_tokens() + i).
class TaleMirror {
 public:
  enum Buffer {
    kKeyBasis = 0,
    kValueBasis = 1,
    kLevelKeys = 2,    // + 2 * level
    kLevelValues = 3,  // + 2 * level
    kCounts = 2 + 2 * kernels::lowrank::kTaleLevels,
    kWindowKeys,
    kWindowValues,
    kBuffers
  };
  void Reset() { mirrored_ = false; }
  void Plan(const policies::lowrank::TaleCache& cache, MirrorPlan* plan);
  // Record slots per head of level l in the mirror (the cache's capacity when planned).
  int64_t capacity(int level) const { return capacity_[static_cast<size_t>(level)]; }

 private:
  bool mirrored_ = false, calibrated_ = false;
  std::array<int64_t, kernels::lowrank::kTaleLevels> capacity_{};
  std::array<std::vector<int32_t>, kernels::lowrank::kTaleLevels> records_;  // [l][kv] mirrored
  std::vector<int32_t> counts_;  // [l][kv], a copy source
  int64_t window_first_ = -1, window_rows_ = 0;
  size_t window_peak_ = 0;  // bytes the window buffers were last grown to
};

// Buffers: kept keys and values, fp16 [kv][capacity][d] in the cache's layout.
class KvComposeMirror {
 public:
  enum Buffer { kKeys = 0, kValues = 1, kBuffers };
  void Reset() { mirrored_ = false; }
  void Plan(const policies::lowrank::KvComposeCache& cache, int kv_heads, int head_dim,
            MirrorPlan* plan);

 private:
  bool mirrored_ = false;
  uint64_t version_ = 0;
  std::vector<int64_t> counts_;  // [kv] slots mirrored per head
};

}  // namespace kvt::sequence::internal
