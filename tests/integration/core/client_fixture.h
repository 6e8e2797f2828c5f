// Helpers shared by the core integration tests: a daemon, clients, layouts and random KV.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kvt/kvt.hpp"
#include "tests/support/daemon_process.h"

namespace kvt::testing {

inline kvt_layout_t SmallLayout(const char* model = "test-model", uint32_t tokens_per_chunk = 16) {
  kvt_layout_t l;
  kvt_layout_init(&l);
  l.model_id = model;
  l.num_layers = 2;
  l.num_kv_heads = 2;
  l.head_dim = 16;
  l.dtype = KVT_DTYPE_F16;
  l.tokens_per_chunk = tokens_per_chunk;  // 2*2*16*2*16*2 = 4 KiB chunks
  return l;
}

inline kvt::Result Connect(const std::string& socket, kvt::Client* client, const char* tenant = nullptr,
                           uint64_t heap_bytes = 0) {
  kvt_client_options_t o;
  kvt_client_options_init(&o);
  o.socket_path = socket.c_str();
  o.tenant = tenant;
  o.heap_bytes = heap_bytes;
  o.timeout_ns = 10'000'000'000;
  return kvt::Client::Open(o, client);
}

// Deterministic tokens and KV for prefix `seed`.
inline std::vector<uint32_t> Tokens(uint64_t seed, size_t n) {
  std::mt19937 rng(static_cast<uint32_t>(seed * 2654435761u + 17));
  std::vector<uint32_t> t(n);
  for (auto& x : t) x = rng() % 32000;
  return t;
}

inline std::vector<char> Kv(uint64_t seed, size_t bytes) {
  std::mt19937_64 rng(seed ^ 0xabcdef1234567ull);
  std::vector<char> kv(bytes);
  for (size_t i = 0; i + 8 <= bytes; i += 8) {
    uint64_t v = rng();
    std::memcpy(&kv[i], &v, 8);
  }
  return kv;
}

}  // namespace kvt::testing
