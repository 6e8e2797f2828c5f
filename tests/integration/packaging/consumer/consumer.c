/* An out-of-tree engine in plain C against the installed libkvtier: checks the ABI version,
 * and, given a socket, stores and retrieves a chunk through the daemon.
 *   consumer [SOCKET]   exit 0 on success, 1 with a message otherwise */
#include <kvt/kvt.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call)                                                                           \
  do {                                                                                        \
    kvt_status_t s_ = (call);                                                                 \
    if (s_ != KVT_STATUS_OK) {                                                                \
      fprintf(stderr, "%s: %s: %s\n", #call, kvt_status_name(s_), kvt_last_error_message()); \
      return 1;                                                                               \
    }                                                                                         \
  } while (0)

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
