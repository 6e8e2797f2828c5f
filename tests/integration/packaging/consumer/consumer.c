/* An out-of-tree engine in plain C against the installed libkvtier: checks the ABI version, runs
 * a sequence in process on the CPU (the sequence plane: no daemon, no GPU), and, given a socket,
 * stores and retrieves a chunk through the daemon.
 *   consumer [SOCKET]   exit 0 on success, 1 with a message otherwise */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include <kvt/kvt.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK(call)                                                                           \
  do {                                                                                        \
    kvt_status_t s_ = (call);                                                                 \
    if (s_ != KVT_STATUS_OK) {                                                                \
      fprintf(stderr, "%s: %s: %s\n", #call, kvt_status_name(s_), kvt_last_error_message()); \
      return 1;                                                                               \
    }                                                                                         \
  } while (0)

/* A full, a KIVI (2-bit) and a TailorKV sparse layer: the host kernels, the KV methods, the
 * transfer scheduler. 300 tokens, so KIVI quantizes past its residual and sparse selects. */
static const char kPlan[] =
    "kvt-sequence-plan 1\n"
    "shape layers=3,q_heads=4,kv_heads=2,head_dim=64\n"
    "layer 0 full\n"
    "layer 1 kivi bits=2,group=32,residual=64\n"
    "layer 2 sparse budget=96,sinks=4,recent=32,channels=8\n";
enum { kLayers = 3, kQHeads = 4, kKvHeads = 2, kHeadDim = 64, kTokens = 300 };

static float NextUniform(uint32_t* state) { /* [-1, 1) */
  *state = *state * 1664525u + 1013904223u;
  return (float)(*state >> 8) / (float)(1u << 23) - 1.0f;
}

/* Attention output is a convex combination of the values, all in [-1, 1): each element must be
 * finite and within that range (plus rounding: fp16 storage, KIVI's dequantization), and the
 * output must not be all zeros. */
static int SaneAttention(const float* out, const char* what) {
  double sum = 0;
  for (int i = 0; i < kQHeads * kHeadDim; ++i) {
    if (!isfinite(out[i]) || fabsf(out[i]) > 1.01f) {
      fprintf(stderr, "%s: out[%d] = %g, not a convex combination of the values\n", what, i, out[i]);
      return 0;
    }
    sum += fabs(out[i]);
  }
  if (sum == 0) fprintf(stderr, "%s: the output is all zeros\n", what);
  return sum > 0;
}

static int RunSequence(void) {
  const size_t rows = (size_t)kTokens * kKvHeads * kHeadDim;
  float* keys = malloc(rows * sizeof *keys);
  float* values = malloc(rows * sizeof *values);
  float query[kQHeads * kHeadDim], out[kLayers][kQHeads * kHeadDim], again[kQHeads * kHeadDim];
  uint32_t rng = 7;
  for (size_t i = 0; i < rows; ++i) keys[i] = NextUniform(&rng), values[i] = NextUniform(&rng);
  for (int i = 0; i < kQHeads * kHeadDim; ++i) query[i] = NextUniform(&rng);

  kvt_sequence_t* seq = NULL;
  CHECK(kvt_sequence_open(kPlan, &seq));
  for (uint32_t l = 0; l < kLayers; ++l) {
    CHECK(kvt_sequence_append(seq, l, keys, values, kTokens));
    CHECK(kvt_sequence_attend(seq, l, query, out[l]));
    if (!SaneAttention(out[l], "kvt_sequence_attend")) return 1;
  }
  free(keys);
  free(values);
  /* Suspend to a file (XXH3-checksummed) and resume: the same attention, bit for bit. */
  char dir[] = "/tmp/kvt-consumer-XXXXXX";
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  char path[sizeof dir + 16];
  snprintf(path, sizeof path, "%s/seq", dir);
  CHECK(kvt_sequence_suspend_to_file(seq, path));
  CHECK(kvt_sequence_resume_from_file(seq, path));
  unlink(path);
  rmdir(dir);
  for (uint32_t l = 0; l < kLayers; ++l) {
    CHECK(kvt_sequence_attend(seq, l, query, again));
    if (memcmp(again, out[l], sizeof again) != 0) {
      fprintf(stderr, "layer %u attends differently after suspend/resume\n", l);
      return 1;
    }
  }
  kvt_sequence_close(seq);
  printf("sequence: %d layers x %d tokens on the CPU, attention sane, suspend/resume bit-exact\n", kLayers,
         kTokens);
  return 0;
}

int main(int argc, char** argv) {
  uint32_t major = 0, minor = 0, patch = 0;
  kvt_version(&major, &minor, &patch);
  printf("libkvtier %u.%u.%u (protocol %u.%u)\n", major, minor, patch, kvt_protocol_version() >> 16,
         kvt_protocol_version() & 0xffff);
  if (major != KVT_ABI_VERSION_MAJOR || minor < KVT_ABI_VERSION_MINOR) {
    fprintf(stderr, "header ABI %d.%d does not match the library's %u.%u\n", KVT_ABI_VERSION_MAJOR,
            KVT_ABI_VERSION_MINOR, major, minor);
    return 1;
  }
  if (RunSequence() != 0) return 1;
  if (argc < 2) return 0;

  kvt_client_options_t options;
  kvt_client_options_init(&options);
  options.socket_path = argv[1];
  kvt_client_t* client = NULL;
  CHECK(kvt_client_open(&options, &client));
  kvt_layout_t layout;
  kvt_layout_init(&layout);
  layout.model_id = "consumer";
  layout.num_layers = 1;
  layout.num_kv_heads = 1;
  layout.head_dim = 64;
  layout.dtype = KVT_DTYPE_F16;
  layout.tokens_per_chunk = 16;
  kvt_namespace_t* ns = NULL;
  CHECK(kvt_namespace_open(client, &layout, &ns));
  uint64_t bytes = kvt_namespace_chunk_bytes(ns);
  uint32_t tokens[16];
  for (int i = 0; i < 16; ++i) tokens[i] = 1000u + (uint32_t)i;
  unsigned char* kv = NULL;
  CHECK(kvt_buffer_alloc(client, bytes, (void**)&kv)); /* zero copy */
  for (uint64_t i = 0; i < bytes; ++i) kv[i] = (unsigned char)(i * 7u);
  uint64_t stored = 0, matched = 0, got = 0;
  CHECK(kvt_block_store(ns, tokens, 16, kv, bytes, &stored));
  CHECK(kvt_block_lookup(ns, tokens, 16, &matched));
  unsigned char* out = malloc(bytes);
  CHECK(kvt_block_retrieve(ns, tokens, 16, out, bytes, &got));
  int same = got == 16 && memcmp(out, kv, bytes) == 0;
  free(out);
  kvt_buffer_free(client, kv);
  kvt_namespace_close(ns);
  kvt_client_close(client);
  printf("matched %llu tokens, retrieved %llu, %s\n", (unsigned long long)matched, (unsigned long long)got,
         same ? "bit-exact" : "MISMATCH");
  return matched == 16 && same ? 0 : 1;
}
