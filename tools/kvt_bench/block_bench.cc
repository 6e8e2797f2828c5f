// kvt-bench block — the block plane against memcpy, measured in the same run.
//
// Starts its own kv-tierd (or uses --socket), forks 1..N client processes, and for each chunk
// size measures per phase, all clients running at once for the same duration:
//   store_copy          store fresh prefixes from private memory (library stages through the heap)
//   retrieve_copy       retrieve resident (pinned) prefixes into private memory
//   retrieve_zero_copy  retrieve into kvt_buffer_alloc buffers (the daemon writes in place)
//   lookup              lookups of resident prefixes: latency percentiles and rate
// Prefixes are 8 chunks; each client's working set is 256 MiB so caches do not flatter copies.
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "kvt/kvt.hpp"
#include "tools/kvt_bench/bench_commands.h"
#include "tools/kvt_bench/bench_util.h"

namespace kvt::bench {
namespace {

constexpr uint64_t kChunksPerPrefix = 8;
constexpr uint64_t kWorkingSet = 256ull << 20;
constexpr uint64_t kLookupBatch = 16;

struct WorkerResult {
  int ok = 0;
  char error[200] = {};
  double store_copy_gbps = 0;
  double retrieve_copy_gbps = 0;
  double retrieve_zero_copy_gbps = 0;
  double lookups_per_s = 0;        // synchronous lookups, one at a time
  double batched_lookups_per_s = 0;  // kvt_block_lookup_batch, kLookupBatch prefixes per call
  double lookup_p50_us = 0;
  double lookup_p99_us = 0;
};

struct WorkerArgs {
  std::string socket;
  uint64_t chunk_bytes;
  int client;
  double seconds;
  uint64_t warm_bytes;  // client 0 writes this much through the host tier before timing
  int go_fd;  // read end: one byte per phase releases all clients together
};

std::vector<uint32_t> PrefixTokens(uint64_t id, uint64_t n) {
  std::vector<uint32_t> t(n);
  uint64_t x = id * 0x9e3779b97f4a7c15ull + 1;
  for (auto& v : t) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    v = static_cast<uint32_t>(x % 128000);
  }
  return t;
}

int g_ready_fd = -1;  // in a worker: tells the parent it finished setting up

void WaitGo(int fd) {
  if (g_ready_fd >= 0) {  // the first wait: report ready once
    char b = 'r';
    if (write(g_ready_fd, &b, 1) != 1) _exit(3);
    close(g_ready_fd);
    g_ready_fd = -1;
  }
  char b;
  if (read(fd, &b, 1) != 1) _exit(3);
}

WorkerResult RunWorker(const WorkerArgs& a) {
  WorkerResult r;
  auto fail = [&](const char* what, const kvt::Result& res) {
    std::snprintf(r.error, sizeof r.error, "%s: %s", what, res.message.c_str());
    return r;
  };
  kvt_client_options_t o;
  kvt_client_options_init(&o);
  o.socket_path = a.socket.c_str();
  o.tenant = "bench";
  o.heap_bytes = 320ull << 20;
  kvt::Client client;
  if (auto res = kvt::Client::Open(o, &client); !res) return fail("connect", res);
  kvt_layout_t layout;
  kvt_layout_init(&layout);
  layout.model_id = "kvt-bench";
  layout.num_layers = 1;
  layout.num_kv_heads = 8;
  layout.head_dim = 128;
  layout.dtype = KVT_DTYPE_F16;
  layout.tokens_per_chunk = static_cast<uint32_t>(a.chunk_bytes / (2 * 8 * 128 * 2));
  kvt::Namespace ns;
  if (auto res = client.OpenNamespace(layout, &ns); !res) return fail("namespace", res);
  const uint64_t tokens_per_prefix = kChunksPerPrefix * layout.tokens_per_chunk;
  const uint64_t prefix_bytes = kChunksPerPrefix * a.chunk_bytes;
  const uint64_t prefixes = std::max<uint64_t>(1, kWorkingSet / prefix_bytes);
  // Write every page of both buffers now: on virtual machines the first write to a page can cost
  // far more than later ones, and a serving engine's buffers are warm.
  std::vector<char> src(prefixes * prefix_bytes), dst(prefixes * prefix_bytes);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<char>(i * 131 >> 7);
  std::memset(dst.data(), 1, dst.size());

  // The resident set for the retrieve and lookup phases, pinned so store traffic cannot evict it.
  std::vector<std::vector<uint32_t>> resident(prefixes);
  for (uint64_t p = 0; p < prefixes; ++p) {
    resident[p] = PrefixTokens((uint64_t{1} << 40) + a.client * 1000000 + p, tokens_per_prefix);
    if (auto res = ns.Store(resident[p].data(), tokens_per_prefix, src.data() + p * prefix_bytes, prefix_bytes); !res) {
      return fail("store resident set", res);
    }
    if (auto res = ns.Pin(resident[p].data(), tokens_per_prefix); !res) return fail("pin", res);
  }
  // Warm the daemon's arena the same way: client 0 stores fresh prefixes until the host tier has
  // been written through once (evictions appear), so stores measure steady state, not first touch.
  if (a.client == 0 && a.warm_bytes > 0) {
    uint64_t written = 0;
    for (uint64_t w = 0; written < a.warm_bytes; ++w) {
      auto t = PrefixTokens((uint64_t{3} << 40) + w, tokens_per_prefix);
      if (auto res = ns.Store(t.data(), t.size(), src.data() + (w % prefixes) * prefix_bytes, prefix_bytes); !res) {
        return fail("warm-up store", res);
      }
      written += prefix_bytes;
    }
  }
  auto timed = [&](auto&& body) {
    uint64_t ops = 0;
    auto start = std::chrono::steady_clock::now();
    while (Seconds(std::chrono::steady_clock::now() - start) < a.seconds) body(ops++);
    return std::make_pair(ops, Seconds(std::chrono::steady_clock::now() - start));
  };

  WaitGo(a.go_fd);
  uint64_t fresh = 0;
  bool failed = false;
  auto [stores, t_store] = timed([&](uint64_t i) {
    auto t = PrefixTokens((uint64_t{2} << 40) + a.client * (uint64_t{1} << 32) + fresh++, tokens_per_prefix);
    if (!ns.Store(t.data(), t.size(), src.data() + (i % prefixes) * prefix_bytes, prefix_bytes)) failed = true;
  });
  if (failed) return fail("store", kvt::Result{KVT_STATUS_INTERNAL, "a timed store failed"});
  r.store_copy_gbps = static_cast<double>(stores * prefix_bytes) / t_store / 1e9;

  WaitGo(a.go_fd);
  auto [retrieves, t_ret] = timed([&](uint64_t i) {
    uint64_t got = 0;
    uint64_t p = i % prefixes;
    if (!ns.Retrieve(resident[p].data(), tokens_per_prefix, dst.data() + p * prefix_bytes, prefix_bytes, &got) ||
        got != tokens_per_prefix) {
      failed = true;
    }
  });
  if (failed) return fail("retrieve", kvt::Result{KVT_STATUS_INTERNAL, "a timed retrieve missed"});
  r.retrieve_copy_gbps = static_cast<double>(retrieves * prefix_bytes) / t_ret / 1e9;

  void* bufs[2] = {};
  for (auto& b : bufs) {
    if (auto res = client.AllocateBuffer(prefix_bytes, &b); !res) return fail("buffer", res);
    std::memset(b, 0, prefix_bytes);  // warm, like an engine's long-lived buffers
  }
  WaitGo(a.go_fd);
  auto [zc, t_zc] = timed([&](uint64_t i) {
    uint64_t got = 0;
    uint64_t p = i % prefixes;
    if (!ns.Retrieve(resident[p].data(), tokens_per_prefix, bufs[i % 2], prefix_bytes, &got) ||
        got != tokens_per_prefix) {
      failed = true;
    }
  });
  if (failed) return fail("zero-copy retrieve", kvt::Result{KVT_STATUS_INTERNAL, "a timed retrieve missed"});
  r.retrieve_zero_copy_gbps = static_cast<double>(zc * prefix_bytes) / t_zc / 1e9;

  std::vector<double> lat;
  lat.reserve(1 << 20);
  WaitGo(a.go_fd);
  auto [lookups, t_lk] = timed([&](uint64_t i) {
    uint64_t matched = 0;
    auto s = std::chrono::steady_clock::now();
    ns.Lookup(resident[i % prefixes].data(), tokens_per_prefix, &matched);
    if (lat.size() < lat.capacity()) lat.push_back(Seconds(std::chrono::steady_clock::now() - s) * 1e6);
    if (matched != tokens_per_prefix) failed = true;
  });
  if (failed) return fail("lookup", kvt::Result{KVT_STATUS_INTERNAL, "a timed lookup missed"});
  r.lookups_per_s = static_cast<double>(lookups) / t_lk;
  r.lookup_p50_us = Percentile(lat, 0.50);
  r.lookup_p99_us = Percentile(lat, 0.99);

  // What an engine's scheduler does with many waiting requests: one batch call for all of them.
  std::vector<kvt_token_span_t> spans(kLookupBatch);
  std::vector<uint64_t> matched(kLookupBatch);
  WaitGo(a.go_fd);
  auto [batches, t_batch] = timed([&](uint64_t i) {
    for (uint64_t j = 0; j < kLookupBatch; ++j) {
      spans[j] = {resident[(i * kLookupBatch + j) % prefixes].data(), tokens_per_prefix};
    }
    if (kvt_block_lookup_batch(ns.get(), spans.data(), kLookupBatch, matched.data()) != KVT_STATUS_OK ||
        matched[0] != tokens_per_prefix) {
      failed = true;
    }
  });
  if (failed) return fail("lookup batch", kvt::Result{KVT_STATUS_INTERNAL, "a timed batch lookup missed"});
  r.batched_lookups_per_s = static_cast<double>(batches * kLookupBatch) / t_batch;
  for (auto& b : bufs) client.FreeBuffer(b);
  r.ok = 1;
  return r;
}

struct CaseResult {
  uint64_t chunk_bytes;
  int clients;
  WorkerResult sum;  // rates summed over clients; latencies from client 0
  std::string error;
};

CaseResult RunCase(const std::string& socket, uint64_t chunk_bytes, int clients, double seconds, uint64_t warm_bytes) {
  CaseResult cr{chunk_bytes, clients, {}, ""};
  int go[2], results[2], ready[2];
  if (pipe(go) != 0 || pipe(results) != 0 || pipe(ready) != 0) {
    cr.error = "pipe failed";
    return cr;
  }
  std::vector<pid_t> pids;
  for (int c = 0; c < clients; ++c) {
    pid_t pid = fork();
    if (pid == 0) {
      close(go[1]);
      close(results[0]);
      close(ready[0]);
      g_ready_fd = ready[1];
      WorkerResult r = RunWorker({socket, chunk_bytes, c, seconds, warm_bytes, go[0]});
      ssize_t n = write(results[1], &r, sizeof r);
      _exit(n == sizeof r ? 0 : 1);
    }
    pids.push_back(pid);
  }
  close(go[0]);
  close(results[1]);
  close(ready[1]);
  // Release each of the 5 phases for all clients at once, after every client reported ready.
  for (int c = 0; c < clients; ++c) {
    char b;
    if (read(ready[0], &b, 1) != 1) break;
  }
  for (int phase = 0; phase < 5; ++phase) {
    std::vector<char> bytes(clients, 'g');
    if (write(go[1], bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) break;
    usleep(static_cast<useconds_t>(seconds * 1e6) + 50000);
  }
  close(go[1]);
  for (int c = 0; c < clients; ++c) {
    WorkerResult r;
    if (read(results[0], &r, sizeof r) != sizeof r) {
      cr.error = "a client process died";
      break;
    }
    if (!r.ok) {
      cr.error = r.error;
      continue;
    }
    cr.sum.store_copy_gbps += r.store_copy_gbps;
    cr.sum.retrieve_copy_gbps += r.retrieve_copy_gbps;
    cr.sum.retrieve_zero_copy_gbps += r.retrieve_zero_copy_gbps;
    cr.sum.lookups_per_s += r.lookups_per_s;
    cr.sum.batched_lookups_per_s += r.batched_lookups_per_s;
    if (c == 0 || cr.sum.lookup_p50_us == 0) {
      cr.sum.lookup_p50_us = r.lookup_p50_us;
      cr.sum.lookup_p99_us = r.lookup_p99_us;
    }
  }
  close(results[0]);
  close(ready[0]);
  for (pid_t p : pids) waitpid(p, nullptr, 0);
  return cr;
}

}  // namespace

int RunBlockBench(int argc, char** argv) {
  CLI::App app{"kvt-bench block: block plane throughput and latency vs memcpy"};
  bool json = false, quick = false;
  std::string socket;
  int max_clients = 2;
  app.add_flag("--json", json, "print one JSON object");
  app.add_flag("--quick", quick, "short phases (0.3 s) and fewer chunk sizes");
  app.add_option("--socket", socket, "use a running daemon instead of starting one");
  app.add_option("--clients", max_clients, "largest number of client processes")->check(CLI::Range(1, 16));
  CLI11_PARSE(app, argc, argv);

  const double seconds = quick ? 0.3 : 1.0;
  // Room for every client's pinned 256 MiB resident set plus as much again for store traffic.
  const uint64_t capacity_bytes = uint64_t(max_clients) * 2 * kWorkingSet;
  std::unique_ptr<BenchDaemon> daemon;
  if (socket.empty()) {
    // The host tier alone: evictions are not demoted (kvt-bench nvme measures the NVMe tier).
    daemon = std::make_unique<BenchDaemon>(std::to_string(capacity_bytes >> 20) + "MiB",
                                           std::vector<std::string>{"--nvme", "off"});
    if (!daemon->ok()) {
      std::fprintf(stderr, "kvt-bench block: could not start kv-tierd next to this binary\n");
      return 1;
    }
    socket = daemon->socket();
  }
  double memcpy_gbps = MeasureMemcpyGbps(2ull << 20, kWorkingSet, quick ? 0.5 : 1.5);
  std::vector<uint64_t> sizes = quick ? std::vector<uint64_t>{256ull << 10, 2ull << 20}
                                      : std::vector<uint64_t>{64ull << 10, 256ull << 10, 2ull << 20, 16ull << 20};
  std::vector<int> client_counts = {1};
  if (max_clients > 1) client_counts.push_back(max_clients);
  std::vector<CaseResult> cases;
  for (uint64_t size : sizes) {
    for (int clients : client_counts) {
      CaseResult cr = RunCase(socket, size, clients, seconds, quick ? 0 : capacity_bytes);
      if (!cr.error.empty()) {
        std::fprintf(stderr, "kvt-bench block: %llu-byte chunks, %d clients: %s\n", (unsigned long long)size, clients,
                     cr.error.c_str());
        return 1;
      }
      if (!json) {
        std::fprintf(stderr, "chunk %6llu KiB clients %d: store %.2f GB/s  retrieve %.2f GB/s  zero-copy %.2f GB/s  "
                     "lookup p50 %.1f us p99 %.1f us  %.0f lookups/s (%.0f batched)\n",
                     (unsigned long long)(size >> 10), clients, cr.sum.store_copy_gbps, cr.sum.retrieve_copy_gbps,
                     cr.sum.retrieve_zero_copy_gbps, cr.sum.lookup_p50_us, cr.sum.lookup_p99_us,
                     cr.sum.lookups_per_s, cr.sum.batched_lookups_per_s);
      }
      cases.push_back(cr);
    }
  }
  auto find = [&](uint64_t size, int clients) -> const WorkerResult& {
    for (const auto& c : cases) {
      if (c.chunk_bytes == size && c.clients == clients) return c.sum;
    }
    return cases.front().sum;
  };
  const WorkerResult& one = find(2ull << 20, 1);
  const WorkerResult& two = find(2ull << 20, client_counts.back());
  std::printf("{\n  \"bench\": \"block\",\n  \"machine\": \"%s\",\n  \"data\": \"generated\",\n", MachineDescription().c_str());
  std::printf("  \"memcpy_gbps\": %.3f,\n", memcpy_gbps);
  std::printf("  \"retrieve_zero_copy_gbps\": %.3f,\n  \"store_copy_gbps\": %.3f,\n  \"retrieve_copy_gbps\": %.3f,\n",
              one.retrieve_zero_copy_gbps, one.store_copy_gbps, one.retrieve_copy_gbps);
  std::printf("  \"retrieve_zero_copy_ratio\": %.3f,\n  \"store_copy_ratio\": %.3f,\n  \"retrieve_copy_ratio\": %.3f,\n",
              one.retrieve_zero_copy_gbps / memcpy_gbps, one.store_copy_gbps / memcpy_gbps,
              one.retrieve_copy_gbps / memcpy_gbps);
  std::printf("  \"lookup_p50_us\": %.2f,\n  \"lookup_p99_us\": %.2f,\n  \"lookups_per_s\": %.0f,\n"
              "  \"lookups_per_s_sync\": %.0f,\n  \"lookup_batch\": %llu,\n  \"lookup_clients\": %d,\n",
              one.lookup_p50_us, one.lookup_p99_us, two.batched_lookups_per_s, two.lookups_per_s,
              (unsigned long long)kLookupBatch, client_counts.back());
  std::printf("  \"sweep\": [\n");
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    std::printf("    {\"chunk_bytes\": %llu, \"clients\": %d, \"store_copy_gbps\": %.3f, \"retrieve_copy_gbps\": %.3f, "
                "\"retrieve_zero_copy_gbps\": %.3f, \"lookup_p50_us\": %.2f, \"lookup_p99_us\": %.2f, "
                "\"lookups_per_s\": %.0f, \"batched_lookups_per_s\": %.0f}%s\n",
                (unsigned long long)c.chunk_bytes, c.clients, c.sum.store_copy_gbps, c.sum.retrieve_copy_gbps,
                c.sum.retrieve_zero_copy_gbps, c.sum.lookup_p50_us, c.sum.lookup_p99_us, c.sum.lookups_per_s,
                c.sum.batched_lookups_per_s, i + 1 < cases.size() ? "," : "");
  }
  std::printf("  ]\n}\n");
  return 0;
}

}  // namespace kvt::bench
