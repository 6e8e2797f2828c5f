// kvtierctl — the operator's view of a running kv-tierd.
//
//   kvtierctl [--socket PATH] status              one-screen health summary
//   kvtierctl [--socket PATH] stats [--json] [--watch [SECONDS]]
//   kvtierctl [--socket PATH] ls [--json]         namespaces and what each holds
//   kvtierctl [--socket PATH] evict (--bytes SIZE | --all)
//
// Exit status: 0 success, 1 the daemon refused or is unreachable (message on stderr), 2 usage.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "common/byte_size.h"
#include "kvt/kvt.hpp"

namespace {

std::string Bytes(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

std::string Duration(uint64_t ns) {
  uint64_t s = ns / 1'000'000'000ull;
  char buf[48];
  std::snprintf(buf, sizeof buf, "%llud %02lluh %02llum %02llus", (unsigned long long)(s / 86400),
                (unsigned long long)(s / 3600 % 24), (unsigned long long)(s / 60 % 60), (unsigned long long)(s % 60));
  return buf;
}

const char* DtypeName(uint32_t d) {
  switch (d) {
    case KVT_DTYPE_F16: return "f16";
    case KVT_DTYPE_BF16: return "bf16";
    case KVT_DTYPE_F32: return "f32";
  }
  return "?";
}

int Fail(const kvt::Result& r, const char* what) {
  std::fprintf(stderr, "kvtierctl: %s: %s\n", what, r.message.c_str());
  return 1;
}

void PrintSequenceJson(const kvt_daemon_stats_t& s);

void PrintStatsJson(const kvt_daemon_stats_t& s) {
  std::printf(
      "{\"protocol_version\": %u, \"uptime_s\": %.3f, \"clients\": %llu, \"host_capacity_bytes\": %llu, "
      "\"host_used_bytes\": %llu, \"host_chunks\": %llu, \"pinned_chunks\": %llu, \"hits\": %llu, \"misses\": %llu, "
      "\"stores\": %llu, \"lookups\": %llu, \"retrieves\": %llu, \"evictions\": %llu, \"bad_requests\": %llu, "
      "\"nvme_capacity_bytes\": %llu, \"nvme_used_bytes\": %llu, \"nvme_chunks\": %llu, \"sequence_plane\": ",
      s.protocol_version, s.uptime_ns / 1e9, (unsigned long long)s.clients, (unsigned long long)s.host_capacity_bytes,
      (unsigned long long)s.host_used_bytes, (unsigned long long)s.host_chunks, (unsigned long long)s.pinned_chunks,
      (unsigned long long)s.hits, (unsigned long long)s.misses, (unsigned long long)s.stores,
      (unsigned long long)s.lookups, (unsigned long long)s.retrieves, (unsigned long long)s.evictions,
      (unsigned long long)s.bad_requests, (unsigned long long)s.nvme_capacity_bytes,
      (unsigned long long)s.nvme_used_bytes, (unsigned long long)s.nvme_chunks);
  PrintSequenceJson(s);
  std::printf("}\n");
}

const char* const kPolicyNames[KVT_LAYER_POLICY_COUNT] = {"full", "offload", "kivi", "sparse"};

// The sequence plane, as clients report it (kvt_sequence_attach): an object per policy.
void PrintSequenceJson(const kvt_daemon_stats_t& s) {
  std::printf("{\"sequences\": %llu, \"host_tier_heap_bytes\": %llu, \"fetch_steps\": %llu, \"fetch_bytes\": %llu, "
              "\"transfer_hidden_s\": %.6f, \"transfer_exposed_s\": %.6f, \"policies\": {",
              (unsigned long long)s.sequences, (unsigned long long)s.sequence_host_tier_heap_bytes,
              (unsigned long long)s.fetch_steps, (unsigned long long)s.fetch_bytes, s.transfer_hidden_ns / 1e9,
              s.transfer_exposed_ns / 1e9);
  for (int p = 0; p < KVT_LAYER_POLICY_COUNT; ++p) {
    std::printf("%s\"%s\": {\"bytes\": %llu, \"layer_tokens\": %llu}", p ? ", " : "", kPolicyNames[p],
                (unsigned long long)s.policy_bytes[p], (unsigned long long)s.policy_layer_tokens[p]);
  }
  std::printf("}}");
}

void PrintSequenceTable(const kvt_daemon_stats_t& s) {
  const uint64_t transfer_ns = s.transfer_hidden_ns + s.transfer_exposed_ns;
  std::printf("sequences: %llu open   fetched %s in %llu steps (%s/step)   transfer %.3f s, %.1f%% hidden behind compute\n",
              (unsigned long long)s.sequences, Bytes(s.fetch_bytes).c_str(), (unsigned long long)s.fetch_steps,
              Bytes(s.fetch_steps ? s.fetch_bytes / s.fetch_steps : 0).c_str(), transfer_ns / 1e9,
              transfer_ns ? 100.0 * static_cast<double>(s.transfer_hidden_ns) / static_cast<double>(transfer_ns) : 0.0);
  if (s.sequence_host_tier_heap_bytes) {
    std::printf("in-client host tiers: %s of the clients' shared heaps\n", Bytes(s.sequence_host_tier_heap_bytes).c_str());
  }
  bool header = false;
  for (int p = 0; p < KVT_LAYER_POLICY_COUNT; ++p) {
    if (s.policy_layer_tokens[p] == 0 && s.policy_bytes[p] == 0) continue;
    if (!header) std::printf("%-8s %12s %14s %14s\n", "policy", "KV held", "layer-tokens", "bytes/token");
    header = true;
    std::printf("%-8s %12s %14llu %14.1f\n", kPolicyNames[p], Bytes(s.policy_bytes[p]).c_str(),
                (unsigned long long)s.policy_layer_tokens[p],
                s.policy_layer_tokens[p] ? static_cast<double>(s.policy_bytes[p]) / s.policy_layer_tokens[p] : 0.0);
  }
}

void PrintSequenceTable(const kvt_daemon_stats_t& s);

void PrintStatsTable(const kvt_daemon_stats_t& s, const kvt_daemon_stats_t* prev, double interval_s) {
  auto pct = [](uint64_t a, uint64_t b) { return b ? 100.0 * static_cast<double>(a) / static_cast<double>(b) : 0.0; };
  std::printf("uptime %s   clients %llu   protocol %u.%u\n", Duration(s.uptime_ns).c_str(),
              (unsigned long long)s.clients, s.protocol_version >> 16, s.protocol_version & 0xffff);
  std::printf("%-6s %12s %12s %7s %10s %8s\n", "tier", "used", "capacity", "use%", "chunks", "pinned");
  if (s.gpu_capacity_bytes) {
    std::printf("%-6s %12s %12s %6.1f%% %10llu %8llu\n", "gpu", Bytes(s.gpu_used_bytes).c_str(),
                Bytes(s.gpu_capacity_bytes).c_str(), pct(s.gpu_used_bytes, s.gpu_capacity_bytes),
                (unsigned long long)s.gpu_chunks, (unsigned long long)s.gpu_pinned_chunks);
  }
  std::printf("%-6s %12s %12s %6.1f%% %10llu %8llu\n", "host", Bytes(s.host_used_bytes).c_str(),
              Bytes(s.host_capacity_bytes).c_str(), pct(s.host_used_bytes, s.host_capacity_bytes),
              (unsigned long long)s.host_chunks, (unsigned long long)s.pinned_chunks);
  if (s.nvme_capacity_bytes) {
    std::printf("%-6s %12s %12s %6.1f%% %10llu %8s\n", "nvme", Bytes(s.nvme_used_bytes).c_str(),
                Bytes(s.nvme_capacity_bytes).c_str(), pct(s.nvme_used_bytes, s.nvme_capacity_bytes),
                (unsigned long long)s.nvme_chunks, "-");
  }
  std::printf("requests: %llu stores  %llu lookups  %llu retrieves   chunk hit rate %.1f%%   evictions %llu   "
              "bad requests %llu\n",
              (unsigned long long)s.stores, (unsigned long long)s.lookups, (unsigned long long)s.retrieves,
              pct(s.hits, s.hits + s.misses), (unsigned long long)s.evictions, (unsigned long long)s.bad_requests);
  if (prev && interval_s > 0) {
    auto rate = [&](uint64_t now, uint64_t before) { return static_cast<double>(now - before) / interval_s; };
    std::printf("rates/s:  %.0f stores  %.0f lookups  %.0f retrieves  %.0f evictions\n", rate(s.stores, prev->stores),
                rate(s.lookups, prev->lookups), rate(s.retrieves, prev->retrieves), rate(s.evictions, prev->evictions));
  }
  PrintSequenceTable(s);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kvtierctl: inspect and manage a running kv-tierd"};
  app.require_subcommand(1);
  std::string socket;
  app.add_option("--socket", socket, "daemon socket (default: $KVT_SOCKET or the daemon's default)");
  auto* status = app.add_subcommand("status", "health summary");
  auto* stats = app.add_subcommand("stats", "counters and gauges");
  bool json = false;
  double watch = 0;
  stats->add_flag("--json", json, "one JSON object per sample");
  stats->add_option("--watch", watch, "refresh every SECONDS (Ctrl-C to stop)")->expected(0, 1)->default_str("2");
  auto* ls = app.add_subcommand("ls", "namespaces and their resident chunks");
  bool ls_json = false;
  ls->add_flag("--json", ls_json, "JSON output");
  auto* evict = app.add_subcommand("evict", "evict unpinned chunks, oldest first");
  std::string evict_bytes;
  bool evict_all = false;
  evict->add_option("--bytes", evict_bytes, "how much to free, e.g. 1GiB");
  evict->add_flag("--all", evict_all, "evict every unpinned chunk");
  CLI11_PARSE(app, argc, argv);

  kvt_client_options_t o;
  kvt_client_options_init(&o);
  if (!socket.empty()) o.socket_path = socket.c_str();
  o.heap_bytes = 4 << 20;
  o.ring_entries = 8;
  o.timeout_ns = 5'000'000'000;
  kvt::Client client;
  if (auto r = kvt::Client::Open(o, &client); !r) return Fail(r, "connect");

  if (*status) {
    kvt_daemon_stats_t s;
    if (auto r = client.Stats(&s); !r) return Fail(r, "stats");
    std::printf("kv-tierd is up (protocol %u.%u, uptime %s, %llu client%s besides this one)\n", s.protocol_version >> 16,
                s.protocol_version & 0xffff, Duration(s.uptime_ns).c_str(), (unsigned long long)(s.clients > 0 ? s.clients - 1 : 0),
                s.clients == 2 ? "" : "s");
    if (s.gpu_capacity_bytes) {
      std::printf("gpu tier: %s of %s used, %llu chunks (%llu pinned)\n", Bytes(s.gpu_used_bytes).c_str(),
                  Bytes(s.gpu_capacity_bytes).c_str(), (unsigned long long)s.gpu_chunks,
                  (unsigned long long)s.gpu_pinned_chunks);
    }
    std::printf("host tier: %s of %s used, %llu chunks (%llu pinned)\n", Bytes(s.host_used_bytes).c_str(),
                Bytes(s.host_capacity_bytes).c_str(), (unsigned long long)s.host_chunks,
                (unsigned long long)s.pinned_chunks);
    if (s.nvme_capacity_bytes) {
      std::printf("nvme tier: %s of %s used, %llu chunks\n", Bytes(s.nvme_used_bytes).c_str(),
                  Bytes(s.nvme_capacity_bytes).c_str(), (unsigned long long)s.nvme_chunks);
    }
    return 0;
  }
  if (*stats) {
    bool watching = stats->count("--watch") > 0;
    if (watching && watch <= 0) watch = 2;
    kvt_daemon_stats_t prev{};
    bool have_prev = false;
    for (;;) {
      kvt_daemon_stats_t s;
      if (auto r = client.Stats(&s); !r) return Fail(r, "stats");
      if (json) {
        PrintStatsJson(s);
      } else {
        if (watching) std::printf("\033[H\033[2J");  // clear the terminal between samples
        PrintStatsTable(s, have_prev ? &prev : nullptr, watch);
      }
      std::fflush(stdout);
      if (!watching) return 0;
      prev = s;
      have_prev = true;
      std::this_thread::sleep_for(std::chrono::duration<double>(watch));
    }
  }
  if (*ls) {
    std::vector<kvt_namespace_info_t> infos(256);
    uint64_t count = 0;
    for (;;) {
      kvt::Result r = kvt::Result::From(kvt_daemon_list_namespaces(client.get(), infos.data(), infos.size(), &count));
      if (!r) return Fail(r, "ls");
      if (count <= infos.size()) break;
      infos.resize(count);
    }
    infos.resize(count);
    if (ls_json) {
      std::printf("[");
      for (size_t i = 0; i < infos.size(); ++i) {
        const auto& n = infos[i];
        std::printf("%s{\"tenant\": \"%s\", \"model_id\": \"%s\", \"layers\": %u, \"kv_heads\": %u, \"head_dim\": %u, "
                    "\"dtype\": \"%s\", \"tokens_per_chunk\": %u, \"chunks\": %llu, \"bytes\": %llu}",
                    i ? ", " : "", n.tenant, n.model_id, n.num_layers, n.num_kv_heads, n.head_dim, DtypeName(n.dtype),
                    n.tokens_per_chunk, (unsigned long long)n.chunks, (unsigned long long)n.bytes);
      }
      std::printf("]\n");
      return 0;
    }
    std::printf("%-16s %-32s %-22s %10s %12s\n", "TENANT", "MODEL", "LAYOUT", "CHUNKS", "BYTES");
    for (const auto& n : infos) {
      char layout[64];
      std::snprintf(layout, sizeof layout, "%ux%ux%u %s/%u", n.num_layers, n.num_kv_heads, n.head_dim,
                    DtypeName(n.dtype), n.tokens_per_chunk);
      std::printf("%-16s %-32s %-22s %10llu %12s\n", n.tenant, n.model_id, layout, (unsigned long long)n.chunks,
                  Bytes(n.bytes).c_str());
    }
    return 0;
  }
  if (*evict) {
    uint64_t bytes = 0;
    if (evict_all) {
      bytes = UINT64_MAX;
    } else if (!evict_bytes.empty()) {
      auto parsed = kvt::ParseByteSize(evict_bytes);
      if (!parsed.ok()) {
        std::fprintf(stderr, "kvtierctl: --bytes: %s\n", parsed.status().ToString().c_str());
        return 2;
      }
      bytes = *parsed;
    } else {
      std::fprintf(stderr, "kvtierctl evict: give --bytes SIZE or --all\n");
      return 2;
    }
    uint64_t evicted = 0;
    kvt::Result r = kvt::Result::From(kvt_daemon_evict(client.get(), bytes, &evicted));
    if (!r) return Fail(r, "evict");
    std::printf("evicted %llu chunks\n", (unsigned long long)evicted);
    return 0;
  }
  return 2;
}
