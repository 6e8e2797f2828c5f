// Ring entries: what a client submits and what the daemon completes.
//
// Offsets and lengths refer to the client's shared heap (HelloReply::heap_offset/heap_bytes);
// the daemon checks every one against the heap bounds before touching memory. Token arrays are
// uint32 ids; KV buffers use the layout of include/kvt/kvt.h.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kvt::protocol {

enum class Opcode : uint16_t {
  kNop = 0,
  kOpenNamespace = 1,   // data: NamespaceRequest. value: namespace handle
  kCloseNamespace = 2,  // namespace
  kStore = 3,           // namespace, tokens, data (kv of chunks [arg0, ...)). value: chunks stored
  kLookup = 4,          // namespace, tokens. value: matched tokens
  kRetrieve = 5,        // namespace, tokens, data (out for chunks [arg0, ...)). value: retrieved tokens
  kRemove = 6,          // namespace, tokens. value: chunks removed
  kPin = 7,             // namespace, tokens. value: pinned tokens
  kUnpin = 8,           // namespace, tokens. value: unpinned tokens
  kStats = 9,           // data: DaemonStats out
  kEvict = 10,          // arg0: bytes. value: chunks evicted
  kPersist = 11,        // arg0: timeout in ns (0: the daemon's default). Everything stored before is durable
  kListNamespaces = 12, // data: NamespaceListing[n] out. value: entries written, value2: entries known
  kRegisterSequenceStats = 13,  // data: SequenceStatsBlock in the heap (protocol/sequence_stats.h), 8-aligned,
                                // read by the daemon at scrape time until the session ends (protocol 1.1)
  kGpuPoolInfo = 14,    // data: GpuPoolInfo out. UNSUPPORTED without a GPU tier (protocol 1.2)
  kGpuAcquire = 15,     // namespace, tokens, data: uint64 pool offsets out, one per chunk (8-aligned).
                        // value: tokens GPU-resident and pinned for this client (protocol 1.2)
  kGpuRelease = 16,     // namespace, tokens. value: tokens whose GPU pin was given back (protocol 1.2)
  kCount
};

struct SubmissionEntry {
  uint64_t user_data;      // echoed in the completion
  uint16_t opcode;         // Opcode
  uint16_t flags;          // must be 0
  uint32_t ns;             // namespace handle (from kOpenNamespace)
  uint64_t tokens_offset;  // heap offset of uint32 token ids
  uint64_t num_tokens;
  uint64_t data_offset;    // heap offset of the data buffer
  uint64_t data_bytes;
  uint64_t arg0;           // kStore/kRetrieve: first chunk the data covers; kEvict: bytes
  uint64_t arg1;           // must be 0
};
static_assert(sizeof(SubmissionEntry) == 64);

struct CompletionEntry {
  uint64_t user_data;
  uint32_t status;         // kvt::StatusCode
  uint32_t has_message;    // 1: messages[slot of this entry] holds a readable message
  uint64_t value;
  uint64_t value2;
};
static_assert(sizeof(CompletionEntry) == 32);

inline constexpr uint32_t kModelIdMax = 256;

// The payload of kOpenNamespace, placed in the heap.
struct NamespaceRequest {
  char model_id[kModelIdMax];  // NUL-terminated
  uint32_t num_layers;
  uint32_t num_kv_heads;
  uint32_t head_dim;
  uint32_t dtype;              // kvt_dtype_t
  uint32_t tokens_per_chunk;
  uint32_t reserved[3];
};
static_assert(sizeof(NamespaceRequest) == 288);

// One entry of kListNamespaces: a namespace some client opened, with what it holds resident.
struct NamespaceListing {
  char tenant[64];
  char model_id[kModelIdMax];
  uint32_t num_layers;
  uint32_t num_kv_heads;
  uint32_t head_dim;
  uint32_t dtype;
  uint32_t tokens_per_chunk;
  uint32_t reserved;
  uint64_t chunks;
  uint64_t bytes;
};
static_assert(sizeof(NamespaceListing) == 360);

// The payload of kStats, written by the daemon. Mirrors kvt_daemon_stats_t after struct_size.
struct DaemonStats {
  uint32_t protocol_version;
  uint32_t reserved;
  uint64_t uptime_ns;
  uint64_t clients;
  uint64_t host_capacity_bytes;
  uint64_t host_used_bytes;
  uint64_t host_chunks;
  uint64_t pinned_chunks;
  uint64_t hits;
  uint64_t misses;
  uint64_t stores;
  uint64_t lookups;
  uint64_t retrieves;
  uint64_t evictions;
  uint64_t bad_requests;
  uint64_t nvme_capacity_bytes;
  uint64_t nvme_used_bytes;
  uint64_t nvme_chunks;
  // Appended in protocol 1.1: the sequence plane, as the clients report it (SequenceStatsBlock).
  // A 1.0 client asks for the bytes above only; the daemon writes what the buffer holds.
  uint64_t sequences;
  uint64_t policy_bytes[4];         // by policy: full, offload, kivi, sparse
  uint64_t policy_layer_tokens[4];
  uint64_t fetch_steps;             // decode steps (per layer) that fetched KV from the host tier
  uint64_t fetch_bytes;
  uint64_t transfer_hidden_ns;
  uint64_t transfer_exposed_ns;
  // Appended in protocol 1.2: the GPU tier (all 0 when absent).
  uint64_t gpu_capacity_bytes;
  uint64_t gpu_used_bytes;
  uint64_t gpu_chunks;
  uint64_t gpu_pinned_chunks;
  // Appended in protocol 1.3: shared-heap bytes held by in-client sequences' host tiers.
  uint64_t sequence_host_tier_heap_bytes;
};
// The 1.0 size of DaemonStats: a buffer at least this large is accepted.
inline constexpr size_t kDaemonStatsV10Bytes = 8 + 8 * 16;
static_assert(sizeof(DaemonStats) == kDaemonStatsV10Bytes + 8 * 13 + 8 * 4 + 8);

// The payload of kGpuPoolInfo, written by the daemon: what a client needs to map the GPU pool
// through CUDA IPC (gpu/pool_mapping.h). Chunk offsets from kGpuAcquire are relative to its base.
struct GpuPoolInfo {
  uint64_t capacity_bytes;
  int32_t device;            // the daemon's CUDA ordinal (informational: ordinals differ by process)
  uint32_t reserved;
  char pci_bus_id[32];       // NUL-terminated: selects the device in the client
  uint8_t ipc_handle[64];    // cudaIpcMemHandle_t of the pool
};
static_assert(sizeof(GpuPoolInfo) == 112);

}  // namespace kvt::protocol
