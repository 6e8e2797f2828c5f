/* kvt.h — the C ABI of libkvtier, the client library of the kv-tierd KV-cache service.
 *
 * An engine opens a client (one connection to the daemon, with its own shared-memory rings and
 * buffer heap), opens a namespace for each cache layout it uses, and stores, looks up and
 * retrieves the KV of token prefixes in fixed-size chunks.
 *
 * Threading: a kvt_client_t and its namespaces may be used from any number of threads at once.
 * Blocking: every call that waits on the daemon has a deadline (the client's default timeout, or
 * the explicit one of kvt_op_wait); on expiry it returns KVT_STATUS_TIMEOUT and never hangs.
 * Errors: every function returning kvt_status_t sets a thread-local readable message on failure,
 * read with kvt_last_error_message().
 * Ownership: handles come from *_open and go back with *_close; closing a client closes nothing the
 * caller still holds (close namespaces and release ops first; leftovers are freed with the client).
 *
 * ABI versioning: semantic. KVT_ABI_VERSION_MAJOR changes break compatibility; a client refuses a
 * daemon whose protocol major differs (KVT_STATUS_PROTOCOL_MISMATCH), and the daemon refuses it too.
 */
#ifndef KVT_KVT_H_
#define KVT_KVT_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Symbol visibility of the shared library; nothing for static linking. */
#if defined(KVT_BUILDING_SHARED)
#define KVT_API __attribute__((visibility("default")))
#else
#define KVT_API
#endif

#define KVT_ABI_VERSION_MAJOR 1
#define KVT_ABI_VERSION_MINOR 6
#define KVT_ABI_VERSION_PATCH 0

/* ------------------------------------------------------------------------------------------------
 * Status
 * ---------------------------------------------------------------------------------------------- */
typedef enum kvt_status {
  KVT_STATUS_OK = 0,
  KVT_STATUS_INVALID_ARGUMENT = 1,   /* malformed request, wrong size, bad handle */
  KVT_STATUS_NOT_FOUND = 2,          /* a miss: the engine recomputes */
  KVT_STATUS_ALREADY_EXISTS = 3,
  KVT_STATUS_RESOURCE_EXHAUSTED = 4, /* capacity, quota, ring or heap full */
  KVT_STATUS_TIMEOUT = 5,            /* the deadline passed; the operation may still complete */
  KVT_STATUS_IO_ERROR = 6,
  KVT_STATUS_CORRUPTION = 7,
  KVT_STATUS_PROTOCOL_MISMATCH = 8,  /* client and daemon speak incompatible protocols */
  KVT_STATUS_PERMISSION_DENIED = 9,
  KVT_STATUS_DISCONNECTED = 10,      /* the daemon went away */
  KVT_STATUS_UNSUPPORTED = 11,
  KVT_STATUS_BUSY = 12,              /* kvt_op_poll: not finished yet */
  KVT_STATUS_INTERNAL = 13
} kvt_status_t;

/* "OK", "NOT_FOUND", ... Never NULL. */
KVT_API const char* kvt_status_name(kvt_status_t status);
/* The message of the last failure on this thread ("" if none). Valid until the next kvt_ call. */
KVT_API const char* kvt_last_error_message(void);

/* Library version (semantic) and the wire-protocol version it speaks. */
KVT_API void kvt_version(uint32_t* major, uint32_t* minor, uint32_t* patch);
KVT_API uint32_t kvt_protocol_version(void);
/* (ABI 1.1) The socket a client connects to when kvt_client_options_t.socket_path is NULL:
 * $KVT_SOCKET; else /run/kv-tierd/kv-tierd.sock if a socket is there (the system daemon of the
 * systemd unit); else $XDG_RUNTIME_DIR/kv-tierd.sock; else /tmp/kv-tierd-<uid>.sock (the last two
 * are where a kv-tierd started by hand listens). Writes it NUL-terminated if it fits in
 * `capacity` bytes; returns its length (without the NUL) either way. */
KVT_API uint64_t kvt_default_socket_path(char* out, uint64_t capacity);

/* ------------------------------------------------------------------------------------------------
 * Client: one connection to kv-tierd
 * ---------------------------------------------------------------------------------------------- */
typedef struct kvt_client kvt_client_t;

typedef struct kvt_client_options {
  uint32_t struct_size;        /* sizeof(kvt_client_options_t); set by kvt_client_options_init */
  const char* socket_path;     /* NULL: kvt_default_socket_path() */
  const char* tenant;          /* NULL: "default". 1-63 chars of [A-Za-z0-9._-] */
  uint64_t heap_bytes;         /* shared buffer heap for this client; 0: 64 MiB */
  uint32_t ring_entries;       /* submission/completion ring depth (power of two); 0: 256 */
  int64_t timeout_ns;          /* deadline of blocking calls; 0: 10 s; <0: never (not advised) */
} kvt_client_options_t;

KVT_API void kvt_client_options_init(kvt_client_options_t* options);

/* Connects, checks protocol versions and maps the shared memory. */
KVT_API kvt_status_t kvt_client_open(const kvt_client_options_t* options, kvt_client_t** out_client);
/* Disconnects. The daemon releases this client's pins and buffers. NULL is a no-op. Close the
 * sequences opened in this client (kvt_sequence_open_in_client) first: their host tier is its heap. */
KVT_API void kvt_client_close(kvt_client_t* client);

/* ------------------------------------------------------------------------------------------------
 * Namespaces: one cache layout
 * ---------------------------------------------------------------------------------------------- */
typedef enum kvt_dtype {
  KVT_DTYPE_F16 = 1,
  KVT_DTYPE_BF16 = 2,
  KVT_DTYPE_F32 = 3
} kvt_dtype_t;

typedef struct kvt_layout {
  uint32_t struct_size;        /* sizeof(kvt_layout_t) */
  const char* model_id;        /* model identity, e.g. "meta-llama/Llama-3.1-8B@rev"; 1-255 bytes */
  uint32_t num_layers;
  uint32_t num_kv_heads;
  uint32_t head_dim;
  kvt_dtype_t dtype;
  uint32_t tokens_per_chunk;
} kvt_layout_t;

KVT_API void kvt_layout_init(kvt_layout_t* layout);

typedef struct kvt_namespace kvt_namespace_t;

/* Opens a namespace. Its fingerprint (layout + storage format version + tenant) goes into every
 * chunk key, so two layouts, or two tenants, never see each other's chunks. */
KVT_API kvt_status_t kvt_namespace_open(kvt_client_t* client, const kvt_layout_t* layout,
                                kvt_namespace_t** out_namespace);
KVT_API void kvt_namespace_close(kvt_namespace_t* ns);

/* Bytes of one chunk: layers * 2 * tokens_per_chunk * kv_heads * head_dim * sizeof(dtype). */
KVT_API uint64_t kvt_namespace_chunk_bytes(const kvt_namespace_t* ns);
KVT_API uint32_t kvt_namespace_tokens_per_chunk(const kvt_namespace_t* ns);

/* ------------------------------------------------------------------------------------------------
 * Block plane
 *
 * KV layout of every buffer: [chunk][layer][K|V][token][kv_head][head_dim], chunks back to back.
 * Only whole chunks take part: the tokens after the last multiple of tokens_per_chunk are ignored.
 * Chunk i's key chains chunk i-1's key, chunk i's token ids and the namespace fingerprint, so a
 * chunk is found only after the very same prefix.
 *
 * Zero copy: buffers from kvt_buffer_alloc live in shared memory. When `kv`/`out` (and `tokens`)
 * lie inside such a buffer, the daemon reads or writes them in place; otherwise the library
 * stages them through its heap (one extra copy).
 * ---------------------------------------------------------------------------------------------- */

/* Stores the KV of tokens[0, n). kv_bytes must be exactly (n / tokens_per_chunk) chunks.
 * Chunks already present are not stored again. *out_stored_chunks (may be NULL) receives the
 * number of chunks newly stored. Capacity pressure evicts unpinned chunks (LRU); if nothing can
 * be evicted the call fails with RESOURCE_EXHAUSTED after storing the leading chunks that fit. */
KVT_API kvt_status_t kvt_block_store(kvt_namespace_t* ns, const uint32_t* tokens, uint64_t num_tokens,
                             const void* kv, uint64_t kv_bytes, uint64_t* out_stored_chunks);

/* The number of leading tokens (a multiple of tokens_per_chunk) whose chunks are all present. */
KVT_API kvt_status_t kvt_block_lookup(kvt_namespace_t* ns, const uint32_t* tokens, uint64_t num_tokens,
                              uint64_t* out_matched_tokens);

/* Copies the longest present prefix (at most num_tokens, at most out_bytes / chunk_bytes chunks)
 * into out, bit-exact. *out_retrieved_tokens receives its length; 0 is a miss, not an error. */
KVT_API kvt_status_t kvt_block_retrieve(kvt_namespace_t* ns, const uint32_t* tokens, uint64_t num_tokens,
                                void* out, uint64_t out_bytes, uint64_t* out_retrieved_tokens);

/* Removes every stored chunk of the prefix (pinned ones too). */
KVT_API kvt_status_t kvt_block_remove(kvt_namespace_t* ns, const uint32_t* tokens, uint64_t num_tokens,
                              uint64_t* out_removed_chunks);

/* Pins the present chunks of the longest present prefix: they are never evicted while pinned.
 * A pin is a lease of this client: it ends with kvt_block_unpin or when the client disconnects. */
KVT_API kvt_status_t kvt_block_pin(kvt_namespace_t* ns, const uint32_t* tokens, uint64_t num_tokens,
                           uint64_t* out_pinned_tokens);
KVT_API kvt_status_t kvt_block_unpin(kvt_namespace_t* ns, const uint32_t* tokens, uint64_t num_tokens,
                             uint64_t* out_unpinned_tokens);

/* ---- Asynchronous variants -------------------------------------------------------------------
 * Submit returns at once with an op handle. The caller's buffers must stay valid and untouched
 * until the op completes (kvt_op_wait returned something other than TIMEOUT, or kvt_op_poll
 * returned something other than BUSY). kvt_op_release frees the handle; releasing a pending op
 * is allowed and lets it finish in the background (its buffers must still stay valid). */
typedef struct kvt_op kvt_op_t;

KVT_API kvt_status_t kvt_block_store_async(kvt_namespace_t* ns, const uint32_t* tokens,
                                   uint64_t num_tokens, const void* kv, uint64_t kv_bytes,
                                   kvt_op_t** out_op);
KVT_API kvt_status_t kvt_block_lookup_async(kvt_namespace_t* ns, const uint32_t* tokens,
                                    uint64_t num_tokens, kvt_op_t** out_op);
KVT_API kvt_status_t kvt_block_retrieve_async(kvt_namespace_t* ns, const uint32_t* tokens,
                                      uint64_t num_tokens, void* out, uint64_t out_bytes,
                                      kvt_op_t** out_op);

/* BUSY while pending; otherwise the op's final status, and *out_value (may be NULL) its result:
 * stored chunks (store), matched tokens (lookup), retrieved tokens (retrieve). */
KVT_API kvt_status_t kvt_op_poll(kvt_op_t* op, uint64_t* out_value);
/* Waits until the op completes or timeout_ns passes (<0: the client's default timeout). */
KVT_API kvt_status_t kvt_op_wait(kvt_op_t* op, int64_t timeout_ns, uint64_t* out_value);
KVT_API void kvt_op_release(kvt_op_t* op);

/* ---- Batches: many prefixes in one call, submitted together --------------------------------- */
typedef struct kvt_token_span {
  const uint32_t* tokens;
  uint64_t num_tokens;
} kvt_token_span_t;

/* out_matched_tokens[i] for spans[i]. Returns the first failure, if any. */
KVT_API kvt_status_t kvt_block_lookup_batch(kvt_namespace_t* ns, const kvt_token_span_t* spans,
                                    uint64_t count, uint64_t* out_matched_tokens);
/* kvs[i] holds the KV of spans[i] (kv_bytes[i] bytes). */
KVT_API kvt_status_t kvt_block_store_batch(kvt_namespace_t* ns, const kvt_token_span_t* spans,
                                   const void* const* kvs, const uint64_t* kv_bytes,
                                   uint64_t count, uint64_t* out_stored_chunks);

/* ---- Zero-copy buffers in shared memory ------------------------------------------------------ */
/* Allocates `bytes` (rounded up to 4 KiB, 4 KiB aligned) in this client's shared heap. */
KVT_API kvt_status_t kvt_buffer_alloc(kvt_client_t* client, uint64_t bytes, void** out_ptr);
/* Frees a buffer from kvt_buffer_alloc. Must not be in use by a pending op. */
KVT_API void kvt_buffer_free(kvt_client_t* client, void* ptr);

/* ------------------------------------------------------------------------------------------------
 * Operator view (used by kvtierctl; any client may read, only the daemon's user or root may evict)
 * ---------------------------------------------------------------------------------------------- */
typedef struct kvt_daemon_stats {
  uint32_t struct_size;
  uint32_t protocol_version;
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
  uint64_t nvme_capacity_bytes;   /* 0 when the tier is absent */
  uint64_t nvme_used_bytes;
  uint64_t nvme_chunks;
  /* Appended in ABI 1.1: the sequence plane, summed over the sequences clients attached
   * (kvt_sequence_attach); arrays are indexed by kvt_layer_policy_t. A 1.0 daemon leaves them 0.
   * struct_size may be the 1.0 size (up to nvme_chunks): only that part is then written. */
  uint64_t sequences;                  /* open attached sequences */
  uint64_t policy_bytes[4];            /* KV bytes held (all tiers) by layers of each policy */
  uint64_t policy_layer_tokens[4];     /* tokens those layers hold, summed over layers */
  uint64_t fetch_steps;                /* decode steps (per layer) that fetched KV from the host tier */
  uint64_t fetch_bytes;                /* bytes they fetched (sparse: dominant tokens; offload: all) */
  uint64_t transfer_hidden_ns;         /* host-tier transfer time overlapped with compute */
  uint64_t transfer_exposed_ns;        /* transfer time a decode step waited for */
  /* Appended in ABI 1.2: the GPU tier; all 0 when the daemon has none (or is older than 1.2).
   * A struct_size of the 1.1 size (up to transfer_exposed_ns) gets that part only. */
  uint64_t gpu_capacity_bytes;
  uint64_t gpu_used_bytes;
  uint64_t gpu_chunks;
  uint64_t gpu_pinned_chunks;
  /* Appended in ABI 1.6: bytes of the clients' shared heaps that the host tiers of in-client
   * sequences (kvt_sequence_open_in_client) hold; 0 from a daemon older than 1.3. A struct_size of
   * the 1.5 size (up to gpu_pinned_chunks) gets the fields before it only. */
  uint64_t sequence_host_tier_heap_bytes;
} kvt_daemon_stats_t;

KVT_API kvt_status_t kvt_daemon_stats(kvt_client_t* client, kvt_daemon_stats_t* out_stats);

/* Evicts unpinned chunks, oldest first, until at least `bytes` are freed (UINT64_MAX: all).
 * Requires the daemon's uid or root. */
KVT_API kvt_status_t kvt_daemon_evict(kvt_client_t* client, uint64_t bytes, uint64_t* out_evicted_chunks);

typedef struct kvt_namespace_info {
  char tenant[64];
  char model_id[256];
  uint32_t num_layers;
  uint32_t num_kv_heads;
  uint32_t head_dim;
  uint32_t dtype;            /* kvt_dtype_t */
  uint32_t tokens_per_chunk;
  uint32_t reserved;
  uint64_t chunks;           /* resident in the host tier */
  uint64_t bytes;
} kvt_namespace_info_t;

/* Lists the namespaces clients have opened since the daemon started, with what each holds.
 * Writes at most `capacity` entries; *out_count receives how many exist (call again with more
 * room if larger). Requires the daemon's uid or root (it reveals tenants and models). */
KVT_API kvt_status_t kvt_daemon_list_namespaces(kvt_client_t* client, kvt_namespace_info_t* out, uint64_t capacity,
                                                uint64_t* out_count);
/* ------------------------------------------------------------------------------------------------
 * Durability (appended in ABI 1.x)
 * ---------------------------------------------------------------------------------------------- */
/* Makes every chunk stored before the call durable on the daemon's NVMe tier: after a crash of
 * the daemon they are retrievable bit-exact (unless later evicted from NVMe for capacity).
 * Blocks up to timeout_ns (<0: the client's default timeout). KVT_STATUS_UNSUPPORTED when the
 * daemon runs without an NVMe tier; KVT_STATUS_IO_ERROR when some chunks could not be written. */
KVT_API kvt_status_t kvt_persist(kvt_client_t* client, int64_t timeout_ns);

/* ------------------------------------------------------------------------------------------------
 * Sequence plane: one live sequence's KV, kept per layer as a plan says (full, KIVI-quantized dense
 * layers, TailorKV sparse layers offloaded with dominant-token selection). Runs inside the calling
 * process (no daemon round trip on the decode path); needs no client, though
 * kvt_sequence_open_in_client (ABI 1.5) puts its host tier in a client's shared heap, the daemon's
 * arena. A sequence is used by one thread at a time. Shapes are row-major float32 (keys post-RoPE):
 *   keys / values [tokens][kv_heads][head_dim]; query / out [q_heads][head_dim].
 * ---------------------------------------------------------------------------------------------- */
typedef struct kvt_sequence kvt_sequence_t;

/* `plan_text`: a plan in its text form ("kvt-sequence-plan 1" ..., as `kvt-llama plan` writes). */
KVT_API kvt_status_t kvt_sequence_open(const char* plan_text, kvt_sequence_t** out_sequence);
/* Waits for the sequence's transfers and frees everything. NULL is fine. */
KVT_API void kvt_sequence_close(kvt_sequence_t* sequence);

KVT_API kvt_status_t kvt_sequence_append(kvt_sequence_t* sequence, uint32_t layer, const float* keys,
                                         const float* values, uint32_t tokens);
/* One decode step's attention for `layer` over what the layer keeps. */
KVT_API kvt_status_t kvt_sequence_attend(kvt_sequence_t* sequence, uint32_t layer, const float* query, float* out);

/* What `layer` would attend to, for an engine running its own kernel: fp16 segments in attention
 * order; element (t, h, c) of a segment at keys[t * token_stride + h * head_stride + c]. Pointers
 * stay valid until the next call on this sequence. Writes at most `capacity` segments; *out_count
 * receives how many there are. */
typedef struct kvt_kv_segment {
  const uint16_t* keys;   /* IEEE binary16 bits */
  const uint16_t* values;
  int64_t tokens;
  int64_t token_stride;   /* elements */
  int64_t head_stride;    /* elements */
} kvt_kv_segment_t;
KVT_API kvt_status_t kvt_sequence_select(kvt_sequence_t* sequence, uint32_t layer, const float* query,
                                         kvt_kv_segment_t* segments, uint32_t capacity, uint32_t* out_count);

/* A speculative query for `layer` (computed while the previous layer runs) so the layer's channel
 * rows are prefetched; optional. */
KVT_API kvt_status_t kvt_sequence_hint_next(kvt_sequence_t* sequence, uint32_t layer, const float* speculative_query);

/* Moves the whole state into a new image (*out_image, *out_bytes; free it with
 * kvt_sequence_image_free) and releases it; the sequence then accepts only resume and close.
 * Resuming from the image restores the sequence bit for bit. */
KVT_API kvt_status_t kvt_sequence_suspend(kvt_sequence_t* sequence, void** out_image, uint64_t* out_bytes);
KVT_API kvt_status_t kvt_sequence_resume(kvt_sequence_t* sequence, const void* image, uint64_t bytes);
KVT_API void kvt_sequence_image_free(void* image);

/* (ABI 1.2) Suspends to a file on local storage (NVMe) instead of host memory: the same image,
 * behind a header with its length and XXH3-64 checksums, written to "<path>.partial", fsync'd and
 * renamed to `path` (replacing a file there); the sequence's memory is then released and it
 * accepts only resume (from the file or an image) and close. On failure the sequence stays live and
 * unchanged and the partial file is removed (a file already at `path` is untouched, unless only the
 * final fsync of the directory failed: the complete new file is then there):
 * KVT_STATUS_RESOURCE_EXHAUSTED when the disk is full (ENOSPC, EDQUOT, EFBIG), IO_ERROR /
 * PERMISSION_DENIED / NOT_FOUND (no such directory) as the file system says, UNSUPPORTED when it is
 * suspended already. Blocks until the file is durable. */
KVT_API kvt_status_t kvt_sequence_suspend_to_file(kvt_sequence_t* sequence, const char* path);
/* (ABI 1.2) Resumes from a file kvt_sequence_suspend_to_file wrote, bit for bit. A truncated or
 * corrupt file is KVT_STATUS_CORRUPTION, a file that is not a suspend file INVALID_ARGUMENT, a
 * missing one NOT_FOUND; after any failure the sequence is still suspended and intact (resume it
 * from a good copy, or close it). The file is left in place for the caller to remove. */
KVT_API kvt_status_t kvt_sequence_resume_from_file(kvt_sequence_t* sequence, const char* path);

/* (ABI 1.3) kvt_sequence_open with the layers on CUDA device `cuda_device` (-1: the CPU, as
 * kvt_sequence_open): full layers fp16 in device memory, KIVI layers quantized on the device,
 * sparse layers with K/V in pinned host memory and the key sketch (or transposed keys), scoring,
 * top-k and the zero-copy gather on the device; tale and kvcompose layers (ABI 1.4) attended on
 * the device over a mirror of their CPU cache's state. KVT_STATUS_UNSUPPORTED without CUDA in the
 * library or without a visible device; INVALID_ARGUMENT for a device the machine does not have.
 * kvt_sequence_append, kvt_sequence_attend, kvt_sequence_select (host pointers, copied back from
 * the device where needed) and suspend/resume work as on the CPU (images move between CPU and GPU
 * sequences); an engine with its own kernels keeps everything on the device with
 * kvt_sequence_append_on_device, kvt_sequence_attend_on_device and kvt_sequence_select_on_device. */
KVT_API kvt_status_t kvt_sequence_open_on_device(const char* plan_text, int32_t cuda_device,
                                                 kvt_sequence_t** out_sequence);
/* (ABI 1.3) Attention with `query` and `out` ([q_heads][head_dim] float32) in the sequence's device
 * memory, enqueued on `cuda_stream` (a cudaStream_t; NULL: the legacy default stream) after the
 * sequence's earlier work; returns without waiting: `out` is ready when the stream reaches this
 * point. KVT_STATUS_UNSUPPORTED on a CPU sequence. */
KVT_API kvt_status_t kvt_sequence_attend_on_device(kvt_sequence_t* sequence, uint32_t layer, const float* query,
                                                   float* out, void* cuda_stream);

/* (ABI 1.5) kvt_sequence_append with `keys` and `values` ([tokens][kv_heads][head_dim] float32) in
 * device memory of the sequence's device (device, managed or mapped pinned memory; a host pointer
 * is KVT_STATUS_INVALID_ARGUMENT, checked with cudaPointerGetAttributes). Enqueued after the work
 * queued on `cuda_stream` so far (a cudaStream_t; NULL: the legacy default stream: the rows may be
 * the output of the caller's last kernel there) and after the sequence's earlier work; the
 * stream's later work waits for it. Returns without waiting; the caller may overwrite the rows
 * from `cuda_stream` right away, from elsewhere once the stream has reached this point. Converted
 * and quantized on the device; host-tier rows (offload, sparse) are written from the device into
 * pinned memory. The resulting state equals kvt_sequence_append's of the same rows, bit for bit.
 * KVT_STATUS_UNSUPPORTED on a CPU sequence. */
KVT_API kvt_status_t kvt_sequence_append_on_device(kvt_sequence_t* sequence, uint32_t layer, const float* keys,
                                                   const float* values, uint32_t tokens, void* cuda_stream);

/* (ABI 1.5) Where a device segment's bytes live; its pointers are device pointers either way. */
typedef enum kvt_kv_memory {
  KVT_KV_MEMORY_DEVICE = 0,      /* device memory of the sequence's device */
  KVT_KV_MEMORY_MAPPED_HOST = 1  /* pinned host memory mapped for the device: reads cross PCIe */
} kvt_kv_memory_t;

/* (ABI 1.5) One segment of kvt_sequence_select_on_device: as kvt_kv_segment_t, device pointers. */
typedef struct kvt_device_kv_segment {
  const uint16_t* keys;   /* IEEE binary16 bits, device pointer */
  const uint16_t* values;
  int64_t tokens;
  int64_t token_stride;   /* elements */
  int64_t head_stride;    /* elements */
  uint32_t memory;        /* kvt_kv_memory_t */
  uint32_t reserved;      /* 0 */
} kvt_device_kv_segment_t;

/* (ABI 1.5) What kvt_sequence_select_on_device answers. Extensible: fields may be appended. */
typedef struct kvt_device_selection {
  uint32_t struct_size;   /* sizeof(kvt_device_selection_t), set by the caller */
  uint32_t count;         /* segments filled in, attention order (at most 4) */
  int64_t tokens;         /* their tokens, summed */
  kvt_device_kv_segment_t segments[4];
} kvt_device_selection_t;

/* (ABI 1.5) kvt_sequence_select with `query` ([q_heads][head_dim] float32) in the sequence's device
 * memory, answering device pointers: the same segments as kvt_sequence_select. full: the layer's
 * device storage; offload: the pinned host tier through its device mapping (MAPPED_HOST); kivi:
 * K/V dequantized on the device into the sequence's scratch; sparse: resident sinks and recent
 * window and the gathered dominant rows (DEVICE), or the whole mapped host tier when the budget
 * covers every token. Ordered as kvt_sequence_append_on_device (the selection runs after the
 * stream's work so far; the stream's later work sees it); returns without waiting. The pointers
 * stay valid until the next call on this sequence; kernels reading them go on `cuda_stream` (or
 * finish before that next call) and finish before suspend or close.
 * KVT_STATUS_UNSUPPORTED on a CPU sequence and for tale/kvcompose layers. */
KVT_API kvt_status_t kvt_sequence_select_on_device(kvt_sequence_t* sequence, uint32_t layer, const float* query,
                                                   void* cuda_stream, kvt_device_selection_t* out_selection);

/* (ABI 1.4) After prefill: `queries` [window][q_heads][head_dim] float32, the prompt's last
 * `window` (>= 1) post-RoPE queries of `layer`. Plan layers "tale" and "kvcompose" compress on it
 * (KVCompose picks its kept tokens, TALE weighs token importance); a no-op for the other kinds. */
KVT_API kvt_status_t kvt_sequence_observe(kvt_sequence_t* sequence, uint32_t layer, const float* queries,
                                          uint32_t window);

/* (ABI 1.5) kvt_sequence_open_on_device with the sequence's host tier — offload layers' K/V,
 * sparse layers' K, V and transposed keys — in `client`'s shared heap: the daemon's arena, mapped
 * into this process, counted as this client's heap and taken back by the daemon if the client
 * dies. With `cuda_device` >= 0 the heap is registered for DMA (cudaHostRegister, once per client,
 * undone by kvt_client_close) and the kernels read it zero-copy; -1 keeps the layers on the CPU.
 * Resident layers (full, KIVI, TALE, KVCompose, sparse sinks/windows/sketches) stay in this
 * process's (or the device's) memory. The sequence reports its figures to the daemon as after
 * kvt_sequence_attach(sequence, client).
 * The client must outlive the sequence: close the sequence first.
 * The heap is shared with kvt_buffer_alloc buffers and the staging of block calls; host-tier arrays
 * grow by doubling, so size heap_bytes (kvt_client_options_t, within the daemon's max_heap) for
 * about twice the host-tier bytes. An append that needs more than the heap has left fails with
 * KVT_STATUS_RESOURCE_EXHAUSTED (the message names the heap's size) and changes nothing: what is
 * stored still attends. Suspend gives the heap ranges back; resume takes them again (and fails
 * with RESOURCE_EXHAUSTED, still suspended, when they no longer fit). KVT_STATUS_UNSUPPORTED for a
 * device without CUDA or a visible GPU. */
KVT_API kvt_status_t kvt_sequence_open_in_client(kvt_client_t* client, const char* plan_text, int32_t cuda_device,
                                                 kvt_sequence_t** out_sequence);

/* How a layer keeps its KV (the plan's layer kinds); indexes kvt_daemon_stats_t's policy arrays.
 * The plan kinds "tale" and "kvcompose" (ABI 1.4) are counted under KIVI (compressed, resident)
 * and FULL (fp16 kept tokens, resident): the arrays keep their four slots. */
typedef enum kvt_layer_policy {
  KVT_LAYER_POLICY_FULL = 0,
  KVT_LAYER_POLICY_OFFLOAD = 1,
  KVT_LAYER_POLICY_KIVI = 2,
  KVT_LAYER_POLICY_SPARSE = 3,
  KVT_LAYER_POLICY_COUNT = 4
} kvt_layer_policy_t;

/* (ABI 1.1) Reports this sequence's figures to the daemon through `client`'s session, for its
 * metrics and kvt_daemon_stats: that it is open, the KV bytes and tokens each policy holds, the
 * bytes each decode step fetches from the host tier, and how much transfer time was hidden behind
 * compute. Costs a few relaxed atomic adds per call, no round trip. `client` NULL detaches. A
 * sequence reports to one client at a time; closing the client stops the reporting (the sequence
 * keeps working). KVT_STATUS_UNSUPPORTED from a daemon older than protocol 1.1. */
KVT_API kvt_status_t kvt_sequence_attach(kvt_sequence_t* sequence, kvt_client_t* client);

/* ------------------------------------------------------------------------------------------------
 * GPU tier (ABI 1.2)
 *
 * A daemon started with a GPU pool (kv-tierd --gpu-pool-bytes) keeps chunks in one allocation of
 * device memory that clients map through CUDA IPC. Without that pool (no GPU, no driver, a build
 * without CUDA, or a daemon older than protocol 1.2) these calls return KVT_STATUS_UNSUPPORTED
 * and everything else works as before on the host path.
 * ---------------------------------------------------------------------------------------------- */
typedef struct kvt_gpu_pool {
  uint32_t struct_size;        /* sizeof(kvt_gpu_pool_t), set by the caller */
  int32_t device;              /* this process's CUDA ordinal of the pool's device */
  uint64_t capacity_bytes;
  void* device_base;           /* the pool in this process; a chunk's device pointer is base + offset */
} kvt_gpu_pool_t;

/* Maps the daemon's GPU pool into this process (cudaIpcOpenMemHandle, on the first call only;
 * later calls return the same mapping) and registers this client's shared heap with
 * cudaHostRegister. CUDA is touched only here, never by a client that does not call it. The caller's
 * current CUDA device is left as it was. The mapping lasts until kvt_client_close. */
KVT_API kvt_status_t kvt_gpu_pool_map(kvt_client_t* client, kvt_gpu_pool_t* out_pool);

/* Makes the chunks of the longest present prefix GPU-resident (copying them from the host tier or
 * NVMe) and pins them there for this client, at most max_chunks of them; out_offsets[i] receives
 * chunk i's byte offset in the pool (the chunk's bytes, in the block-plane layout, start at
 * device_base + out_offsets[i]). *out_pinned_tokens (may be NULL) receives the prefix length
 * covered; 0 is a miss, not an error. While pinned a chunk is neither evicted nor moved, even if
 * removed meanwhile. Each call pins again: balance it with kvt_block_gpu_unpin; a client that
 * disconnects gives its pins back. RESOURCE_EXHAUSTED (after pinning the leading chunks that fit)
 * when the pool is full of pinned chunks. Unpinned chunks are evicted from the GPU, least recently
 * used first, into the host tier (copied back there if the host tier no longer holds them). */
KVT_API kvt_status_t kvt_block_gpu_pin(kvt_namespace_t* ns, const uint32_t* tokens, uint64_t num_tokens,
                                       uint64_t* out_offsets, uint64_t max_chunks, uint64_t* out_pinned_tokens);
/* Gives back one GPU pin of each chunk of the prefix that this client holds. */
KVT_API kvt_status_t kvt_block_gpu_unpin(kvt_namespace_t* ns, const uint32_t* tokens, uint64_t num_tokens,
                                         uint64_t* out_unpinned_tokens);

#ifdef __cplusplus
}  /* extern "C" */
#endif

#endif  /* KVT_KVT_H_ */
