// kvt-demo — a demonstration workload through libkvtier, run by `make demo`.
//
// Several client processes play inference engines serving chat requests: every request is one
// of a few shared system prompts plus a unique user turn. Each engine looks up the longest cached
// prefix, retrieves it instead of recomputing it, "computes" the rest (here: generates it), and
// stores the whole prompt's KV for the next request. Data is generated, labelled as such.
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kvt/kvt.hpp"

namespace {

struct Totals {
  int ok = 0;
  char error[200] = {};
  uint64_t requests = 0;
  uint64_t prompt_tokens = 0;
  uint64_t reused_tokens = 0;
  uint64_t stored_chunks = 0;
  uint64_t retrieved_bytes = 0;
  uint64_t stored_bytes = 0;
  double retrieve_seconds = 0;
  double store_seconds = 0;
};

std::vector<uint32_t> Prompt(uint64_t system_prompt, uint64_t user_turn, uint64_t system_tokens, uint64_t user_tokens) {
  std::vector<uint32_t> t;
  std::mt19937 sys(static_cast<uint32_t>(system_prompt + 1));
  for (uint64_t i = 0; i < system_tokens; ++i) t.push_back(sys() % 128000);
  std::mt19937 user(static_cast<uint32_t>(user_turn * 7919 + 13));
  for (uint64_t i = 0; i < user_tokens; ++i) t.push_back(user() % 128000);
  return t;
}

Totals RunEngine(const std::string& socket, int engine, int requests, int system_prompts) {
  Totals tot;
  auto fail = [&](const char* what, const kvt::Result& r) {
    std::snprintf(tot.error, sizeof tot.error, "%s: %s", what, r.message.c_str());
    return tot;
  };
  kvt_client_options_t o;
  kvt_client_options_init(&o);
  if (!socket.empty()) o.socket_path = socket.c_str();
  o.tenant = "demo";
  kvt::Client client;
  if (auto r = kvt::Client::Open(o, &client); !r) return fail("connect", r);
  // A Llama-style layout at a demo-friendly size: 8 layers x 8 KV heads x 128, f16, 16 tokens per
  // chunk = 512 KiB chunks.
  kvt_layout_t layout;
  kvt_layout_init(&layout);
  layout.model_id = "demo/llama-8layer";
  layout.num_layers = 8;
  layout.num_kv_heads = 8;
  layout.head_dim = 128;
  layout.dtype = KVT_DTYPE_F16;
  layout.tokens_per_chunk = 16;
  kvt::Namespace ns;
  if (auto r = client.OpenNamespace(layout, &ns); !r) return fail("namespace", r);
  const uint64_t cb = ns.chunk_bytes(), tpc = ns.tokens_per_chunk();
  std::mt19937 rng(static_cast<uint32_t>(engine * 31 + 5));
  std::vector<char> kv;
  for (int i = 0; i < requests; ++i) {
    auto tokens = Prompt(rng() % system_prompts, static_cast<uint64_t>(engine) * 100000 + i, 512, 64 + rng() % 192);
    const uint64_t chunks = tokens.size() / tpc;
    kv.resize(chunks * cb);
    uint64_t matched = 0;
    if (auto r = ns.Lookup(tokens.data(), tokens.size(), &matched); !r) return fail("lookup", r);
    uint64_t got = 0;
    if (matched > 0) {
      auto s = std::chrono::steady_clock::now();
      if (auto r = ns.Retrieve(tokens.data(), matched, kv.data(), kv.size(), &got); !r) return fail("retrieve", r);
      tot.retrieve_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - s).count();
      tot.retrieved_bytes += got / tpc * cb;
    }
    // "Prefill" the tokens that were not reused: generated KV stands in for the model's.
    for (uint64_t b = got / tpc * cb; b < kv.size(); b += 64) kv[b] = static_cast<char>(b ^ i);
    uint64_t stored = 0;
    auto s = std::chrono::steady_clock::now();
    if (auto r = ns.Store(tokens.data(), tokens.size(), kv.data(), kv.size(), &stored); !r) return fail("store", r);
    tot.store_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - s).count();
    tot.stored_chunks += stored;
    tot.stored_bytes += stored * cb;
    tot.requests += 1;
    tot.prompt_tokens += chunks * tpc;
    tot.reused_tokens += got;
  }
  tot.ok = 1;
  return tot;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kvt-demo: several engines sharing prompt prefixes through kv-tierd"};
  std::string socket, metrics = "127.0.0.1:9464";
  int engines = 4, requests = 60, system_prompts = 6;
  app.add_option("--socket", socket, "daemon socket (default: the daemon's default)");
  app.add_option("--engines", engines, "client processes")->check(CLI::Range(1, 64));
  app.add_option("--requests", requests, "requests per engine")->check(CLI::Range(1, 100000));
  app.add_option("--system-prompts", system_prompts, "distinct shared system prompts")->check(CLI::Range(1, 1000));
  app.add_option("--metrics-address", metrics, "where the daemon serves metrics (for the summary)");
  CLI11_PARSE(app, argc, argv);

  int pipefd[2];
  if (pipe(pipefd) != 0) return 1;
  auto start = std::chrono::steady_clock::now();
  std::vector<pid_t> pids;
  for (int e = 0; e < engines; ++e) {
    pid_t pid = fork();
    if (pid == 0) {
      close(pipefd[0]);
      Totals t = RunEngine(socket, e, requests, system_prompts);
      _exit(write(pipefd[1], &t, sizeof t) == sizeof t ? 0 : 1);
    }
    pids.push_back(pid);
  }
  close(pipefd[1]);
  Totals all;
  int failed = 0;
  for (int e = 0; e < engines; ++e) {
    Totals t;
    if (read(pipefd[0], &t, sizeof t) != sizeof t) {
      ++failed;
      continue;
    }
    if (!t.ok) {
      std::fprintf(stderr, "kvt-demo: engine failed: %s\n", t.error);
      ++failed;
      continue;
    }
    all.requests += t.requests;
    all.prompt_tokens += t.prompt_tokens;
    all.reused_tokens += t.reused_tokens;
    all.stored_chunks += t.stored_chunks;
    all.retrieved_bytes += t.retrieved_bytes;
    all.stored_bytes += t.stored_bytes;
    all.retrieve_seconds += t.retrieve_seconds;
    all.store_seconds += t.store_seconds;
  }
  for (pid_t p : pids) waitpid(p, nullptr, 0);
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  kvt_client_options_t o;
  kvt_client_options_init(&o);
  if (!socket.empty()) o.socket_path = socket.c_str();
  kvt::Client client;
  kvt_daemon_stats_t s{};
  bool have_stats = kvt::Client::Open(o, &client) && client.Stats(&s);

  std::printf("\nkv-tierd demo: %d engine processes, %llu requests in %.2f s (generated KV, 512 KiB chunks)\n", engines,
              (unsigned long long)all.requests, wall);
  std::printf("  prompt tokens        %llu, of which reused from kv-tierd %llu (prefix hit rate %.1f%%)\n",
              (unsigned long long)all.prompt_tokens, (unsigned long long)all.reused_tokens,
              all.prompt_tokens ? 100.0 * all.reused_tokens / all.prompt_tokens : 0.0);
  std::printf("  chunks stored        %llu (%.1f MiB)\n", (unsigned long long)all.stored_chunks,
              all.stored_bytes / 1048576.0);
  std::printf("  retrieve throughput  %.2f GB/s per engine (%.1f MiB in %.3f s of retrieve calls)\n",
              all.retrieve_seconds > 0 ? all.retrieved_bytes / all.retrieve_seconds / 1e9 : 0.0,
              all.retrieved_bytes / 1048576.0, all.retrieve_seconds);
  std::printf("  store throughput     %.2f GB/s per engine\n",
              all.store_seconds > 0 ? all.stored_bytes / all.store_seconds / 1e9 : 0.0);
  if (have_stats) {
    std::printf("  daemon               %llu chunks resident, %.1f of %.1f MiB host tier, chunk hit rate %.1f%%, %llu "
                "evictions\n",
                (unsigned long long)s.host_chunks, s.host_used_bytes / 1048576.0, s.host_capacity_bytes / 1048576.0,
                s.hits + s.misses ? 100.0 * s.hits / (s.hits + s.misses) : 0.0, (unsigned long long)s.evictions);
  }
  if (!metrics.empty()) std::printf("  metrics              http://%s/metrics (Prometheus)\n", metrics.c_str());
  std::printf("  operator view        build/bin/kvtierctl status | stats | ls\n\n");
  return failed ? 1 : 0;
}
