// RemoteOptions — how the remote tier reaches its Redis deployment and what it writes there.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kvt::remote {

enum class Admission {
  kAll,      // every chunk newly stored on this node is written behind
  kLeading,  // only the first `admit_leading_chunks` chunks of a prefix (the shared system prompt
             // and documents that recur across nodes; per-conversation tails rarely do)
  kNone,     // read-only: this node consumes the shared cache but never fills it
};

struct RemoteOptions {
  // "HOST:PORT" of one or more seeds: every node of a cluster (CLUSTER SLOTS on any one of them
  // finds the rest), or one single instance.
  std::vector<std::string> endpoints;
  std::string user;      // ACL user; "" for the default user
  std::string password;  // never logged; "" for no AUTH
  std::string key_prefix = "kvt:";
  uint64_t ttl_ms = 0;   // 0: no expiry
  uint32_t pool_size = 4;             // connections per Redis node
  uint32_t writer_threads = 1;        // write-behind workers
  uint32_t connect_timeout_ms = 500;
  uint32_t op_timeout_ms = 1000;      // bound on one batch (a lookup, a retrieve, one write batch)
  uint32_t backoff_min_ms = 50;       // reconnection back-off doubles from min to max
  uint32_t backoff_max_ms = 2000;
  uint32_t max_redirects = 3;         // MOVED/ASK rounds followed per batch
  uint64_t write_queue_bytes = 256ull << 20;  // write-behind bytes held (host slots kept alive)
  uint64_t write_batch_bytes = 8ull << 20;    // pipelined per write round
  // A node's share of one batch over this size is spread over idle pooled connections (a lone
  // large retrieve or write batch uses the whole pool); 0: one pipeline per node and batch (as
  // many threads as connections keep the pool busy on their own).
  uint64_t split_pipeline_bytes = 1ull << 20;
  Admission admission = Admission::kAll;
  uint64_t admit_leading_chunks = 64;
};

}  // namespace kvt::remote
