// kvt-bench remote: the remote tier's put (write-behind) and get (pipelined, verified) throughput
// against redis-benchmark's SET and GET, both against one redis-server started for the run on
// loopback, in the same shape: the same value size, the same number of connections (`clients`)
// and the same pipeline depth (`pipeline` commands in flight per client), so the same number of
// commands in flight in all.
//
//   put:  `clients` writer threads on a pool of `clients` connections drain Offer()ed chunks
//         (header + XXH3 checksum + SET ..., payload sent with writev from the caller's buffer)
//         in pipelines of at most `pipeline` SETs, until Flush().
//   get:  `clients` threads on the same pool each call ReadPrefix over `pipeline` keys at a time
//         (one pipeline of GETs), each value read straight into the output buffer and verified
//         (header, key, namespace, XXH3).
//   redis-benchmark: -t set,get -d <size> -c <clients> -P <pipeline>.
// The tier's spreading of a large pipeline over idle pooled connections is off (--split turns it
// on), so each tier pipeline is one connection's, `pipeline` commands deep, like redis-benchmark's.
// GB/s are 1e9 payload bytes per second (the tier's 128-byte record header is not counted).
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/byte_size.h"
#include "tools/kvt_bench/bench_commands.h"
#include "tools/kvt_bench/bench_util.h"

#ifdef KVT_BENCH_HAVE_REMOTE
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>

#include "host/remote/remote_tier.h"
#endif

namespace kvt::bench {

#ifdef KVT_BENCH_HAVE_REMOTE
namespace {

struct Redis {
  pid_t pid = -1;
  int port = 0;
  ~Redis() {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

std::string Run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

bool StartRedis(Redis* r) {
  std::mt19937 rng(static_cast<uint32_t>(::getpid()));
  r->port = 20000 + static_cast<int>(rng() % 20000);
  r->pid = ::fork();
  if (r->pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    std::string port = std::to_string(r->port);
    ::execl("/usr/bin/redis-server", "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--protected-mode", "no", "--logfile", "/dev/null", "--dir", "/tmp",
            static_cast<char*>(nullptr));
    _exit(127);
  }
  for (int i = 0; i < 100; ++i) {
    if (Run("/usr/bin/redis-cli -p " + std::to_string(r->port) + " PING 2>/dev/null").find("PONG") == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// Requests per second of one redis-benchmark test from its --csv output ("SET","12345.67",...).
double BenchmarkRps(const std::string& csv, const std::string& test) {
  std::istringstream in(csv);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("\"" + test + "\"", 0) != 0) continue;
    size_t a = line.find(",\"");
    if (a == std::string::npos) continue;
    return std::atof(line.c_str() + a + 2);
  }
  return 0;
}

// Both sides write and read the same number of distinct keys (redis-benchmark -r), and both
// fill that keyspace with values of the measured size before timing, so both measure
// steady-state overwrites and reads of keys that exist: on this kind of VM a SET to a fresh key
// costs Redis page faults that dominate everything else (10x slower). Without the warm-up the
// tier (keys in order: every key fresh on its first pass) would be compared against
// redis-benchmark's random keys (a third of them overwrites in the first pass), and a
// redis-benchmark GET of a key its SETs missed would be a cheap nil.
constexpr uint64_t kKeyspace = 64;
// Untimed writes per key before timing, on both sides (redis-benchmark: kKeyspace * this random
// SETs; the tier: this many passes over the keyspace).
constexpr uint64_t kWarmupWritesPerKey = 8;

struct SizeResult {
  uint64_t bytes = 0;
  double put_gbps = 0, get_gbps = 0, set_gbps = 0, redis_get_gbps = 0;
  // Median over the runs of each run's tier / redis-benchmark ratio (both halves of a run see
  // about the same background load, so this moves less than the ratio of the medians).
  double put_ratio_runs = 0, get_ratio_runs = 0;
  uint64_t bad_reads = 0;
};

SizeResult RunSize(int port, uint64_t size, int clients, uint64_t total_bytes, uint32_t batch, bool split) {
  SizeResult res;
  res.bytes = size;
  const uint64_t n = std::max<uint64_t>(total_bytes / size, std::max<uint64_t>(kKeyspace, clients * batch));
  const std::string host = "127.0.0.1";
  Run("/usr/bin/redis-cli -p " + std::to_string(port) + " FLUSHALL >/dev/null 2>&1");

  // redis-benchmark first, so both runs start from the same (empty) server.
  const std::string common = "/usr/bin/redis-benchmark -h " + host + " -p " + std::to_string(port) + " -d " +
                             std::to_string(size) + " -c " + std::to_string(clients) + " -r " +
                             std::to_string(kKeyspace) + " -P " + std::to_string(batch);
  // Warm-up, untimed: 8 random SETs per key leave a key unwritten with probability (63/64)^512.
  Run(common + " -t set -n " + std::to_string(kKeyspace * kWarmupWritesPerKey) + " -q >/dev/null 2>&1");
  std::string csv = Run(common + " -t set,get -n " + std::to_string(n) + " --csv 2>/dev/null");
  res.set_gbps = BenchmarkRps(csv, "SET") * static_cast<double>(size) / 1e9;
  res.redis_get_gbps = BenchmarkRps(csv, "GET") * static_cast<double>(size) / 1e9;
  Run("/usr/bin/redis-cli -p " + std::to_string(port) + " FLUSHALL >/dev/null 2>&1");

  prometheus::Registry registry;
  remote::RemoteOptions o;
  o.endpoints = {host + ":" + std::to_string(port)};
  o.key_prefix = "bench:";
  o.pool_size = static_cast<uint32_t>(clients);
  o.writer_threads = static_cast<uint32_t>(clients);
  o.op_timeout_ms = 10000;
  o.write_queue_bytes = ~0ull;
  o.write_batch_bytes = size * batch;  // at most `batch` SETs per pipeline, like -P
  // One pipeline per batch on one connection, like redis-benchmark's clients (the tier would
  // otherwise spread a batch over idle connections, leaving other threads waiting for one).
  o.split_pipeline_bytes = split ? 1ull << 20 : 0;
  auto tier = remote::RemoteTier::Create(o, registry);
  if (!tier.ok() || !(*tier)->WaitReady(Deadline::After(std::chrono::seconds(5)))) {
    std::fprintf(stderr, "kvt-bench remote: remote tier not ready\n");
    return res;
  }
  // 16 distinct payloads, shared by the chunks (the tier never copies them).
  std::vector<std::shared_ptr<char>> payloads;
  std::mt19937_64 rng(7);
  for (int i = 0; i < 16; ++i) {
    std::shared_ptr<char> p(new char[size], std::default_delete<char[]>());
    for (uint64_t b = 0; b + 8 <= size; b += 8) {
      uint64_t v = rng();
      std::memcpy(p.get() + b, &v, 8);
    }
    payloads.push_back(std::move(p));
  }
  tiering::Fingerprint fp{0x1234, 0x5678};
  std::vector<tiering::ChunkKey> keys(n);
  for (uint64_t i = 0; i < n; ++i) keys[i] = {(i % kKeyspace) * 0x9e3779b97f4a7c15ull + 1, i % kKeyspace};
  auto put = [&](uint64_t count) {
    for (uint64_t i = 0; i < count; ++i) {
      const auto& p = payloads[i % payloads.size()];
      (*tier)->Offer(keys[i], fp, 0, std::shared_ptr<const char>(p, p.get()), size);
    }
    (*tier)->Flush(Deadline::After(std::chrono::seconds(120)));
  };
  // Warm-up, untimed, as deep as redis-benchmark's (8 SETs per key): every key written 8 times.
  // One pass is not enough: right after the FLUSHALL that separates the two sides, the first
  // overwrite pass makes redis-server take ~20 minor page faults per 2 MiB SET (its allocator
  // hands out pages it has given back), which doubled the server's CPU per SET and cost the tier
  // ~30 % of its put rate; any client shows it (a plain blocking Python client: 2,568 faults
  // in 128 SETs after one pass, 2 after four). By the eighth pass the server is in the same
  // steady state redis-benchmark measured in.
  for (uint64_t pass = 0; pass < kWarmupWritesPerKey; ++pass) put(kKeyspace);
  auto t0 = std::chrono::steady_clock::now();
  put(n);
  double put_s = Seconds(std::chrono::steady_clock::now() - t0);
  res.put_gbps = static_cast<double>(n * size) / put_s / 1e9;

  std::atomic<uint64_t> next{0}, bad{0};
  // Output buffers are touched before timing, like the daemon's host arena (allocated and locked
  // at start-up): a first-touch page fault per 4 KiB inside read() costs more than the copy on
  // this VM, and redis-benchmark reuses its buffers too.
  std::vector<std::vector<char>> outs(clients, std::vector<char>(batch * size));
  for (auto& o : outs) std::memset(o.data(), 0x5a, o.size());
  std::atomic<int> next_out{0};
  auto reader = [&] {
    std::vector<char>& out = outs[next_out.fetch_add(1)];
    for (;;) {
      uint64_t first = next.fetch_add(batch);
      if (first >= n) return;
      uint64_t count = std::min<uint64_t>(batch, n - first);
      uint64_t got = (*tier)->ReadPrefix(fp, std::span(keys).subspan(first, count), out.data(), size);
      if (got != count) bad += count - got;
    }
  };
  t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) threads.emplace_back(reader);
  for (auto& t : threads) t.join();
  double get_s = Seconds(std::chrono::steady_clock::now() - t0);
  res.get_gbps = static_cast<double>(n * size) / get_s / 1e9;
  res.bad_reads = bad.load();
  return res;
}

}  // namespace
#endif

int RunRemoteBench(int argc, char** argv) {
  CLI::App app{"kvt-bench remote: remote tier (Redis) put/get throughput vs redis-benchmark"};
  bool json = false, quick = false;
  int clients = 4;
  std::vector<uint32_t> pipelines = {1, 8};
  app.add_flag("--json", json, "print one JSON object");
  app.add_flag("--quick", quick, "less data per size");
  app.add_option("--clients", clients, "connections (and threads) on both sides")->check(CLI::Range(1, 64));
  app.add_option("--pipeline", pipelines,
                 "commands in flight per connection on both sides: redis-benchmark -P, the tier's keys per "
                 "ReadPrefix and SETs per write pipeline (a list: one sweep each)")
      ->delimiter(',')
      ->check(CLI::Range(1, 1024));
  std::vector<std::string> size_texts = {"256KiB", "2MiB"};
  app.add_option("--sizes", size_texts, "value sizes (a list)")->delimiter(',');
  bool split = false;
  app.add_flag("--split", split,
               "let the tier spread a pipeline over 1 MiB over idle connections (its default; off here so that "
               "each tier pipeline is one connection's, like redis-benchmark's)");
  int reps = 3;
  app.add_option("--reps", reps, "runs per figure (the median is reported)")->check(CLI::Range(1, 15));
  CLI11_PARSE(app, argc, argv);
#ifndef KVT_BENCH_HAVE_REMOTE
  std::fprintf(stderr, "kvt-bench remote: built without hiredis (libhiredis-dev)\n");
  return 2;
#else
  if (::access("/usr/bin/redis-server", X_OK) != 0 || ::access("/usr/bin/redis-benchmark", X_OK) != 0) {
    std::fprintf(stderr, "kvt-bench remote: needs /usr/bin/redis-server and redis-benchmark\n");
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);  // the tier's start-up lines would land in the JSON on stdout
  Redis redis;
  if (!StartRedis(&redis)) {
    std::fprintf(stderr, "kvt-bench remote: could not start redis-server\n");
    return 1;
  }
  const uint64_t total = quick ? (64ull << 20) : (256ull << 20);
  std::vector<SizeResult> results;
  // The machine is shared: each figure is the median of `reps` runs, tier and redis-benchmark
  // alternating so that both see the same background load.
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::vector<uint64_t> sizes;
  for (const std::string& t : size_texts) {
    auto bytes = ParseByteSize(t);
    if (!bytes.ok() || *bytes < 1024 || *bytes > (256ull << 20)) {
      std::fprintf(stderr, "kvt-bench remote: --sizes: '%s' is not a size between 1 KiB and 256 MiB\n", t.c_str());
      return 2;
    }
    sizes.push_back(*bytes);
  }
  std::vector<uint32_t> result_pipeline;
  for (uint32_t batch : pipelines) {
    for (uint64_t size : sizes) {
      std::vector<double> put, get, set, rget, put_ratio, get_ratio;
      SizeResult r;
      for (int rep = 0; rep < reps; ++rep) {
        SizeResult one = RunSize(redis.port, size, clients, total, batch, split);
        put.push_back(one.put_gbps);
        get.push_back(one.get_gbps);
        set.push_back(one.set_gbps);
        rget.push_back(one.redis_get_gbps);
        put_ratio.push_back(one.set_gbps > 0 ? one.put_gbps / one.set_gbps : 0);
        get_ratio.push_back(one.redis_get_gbps > 0 ? one.get_gbps / one.redis_get_gbps : 0);
        r.bad_reads += one.bad_reads;
      }
      r.bytes = size;
      r.put_gbps = median(put);
      r.get_gbps = median(get);
      r.set_gbps = median(set);
      r.redis_get_gbps = median(rget);
      r.put_ratio_runs = median(put_ratio);
      r.get_ratio_runs = median(get_ratio);
      if (!json) {
        std::fprintf(stderr,
                     "%5llu KiB, %d clients, pipeline %u: tier put %.2f GB/s get %.2f GB/s | redis-benchmark SET %.2f "
                     "GB/s GET %.2f GB/s | ratios put %.2f get %.2f\n",
                     (unsigned long long)(size >> 10), clients, batch, r.put_gbps, r.get_gbps, r.set_gbps,
                     r.redis_get_gbps, r.set_gbps > 0 ? r.put_gbps / r.set_gbps : 0,
                     r.redis_get_gbps > 0 ? r.get_gbps / r.redis_get_gbps : 0);
      }
      results.push_back(r);
      result_pipeline.push_back(batch);
    }
  }
  std::printf("{\n  \"bench\": \"remote\",\n  \"machine\": \"%s\",\n  \"data\": \"generated\",\n",
              MachineDescription().c_str());
  std::printf("  \"server\": \"redis-server (single instance, loopback, started for the run)\",\n");
  std::printf("  \"keyspace\": %llu,\n  \"reps\": %d,\n  \"bytes_per_run\": %llu,\n", (unsigned long long)kKeyspace,
              reps, (unsigned long long)total);
  std::printf("  \"clients\": %d,\n", clients);
  std::printf("  \"shape\": \"both sides: %d connections (tier: pool_size %d, %d writer threads, %d reader threads; "
              "redis-benchmark -c %d), `pipeline` commands in flight per connection (redis-benchmark -P; tier: keys "
              "per ReadPrefix, SETs per write pipeline, %s); both fill the %llu-key keyspace before timing and "
              "then overwrite / read it\",\n",
              clients, clients, clients, clients, clients,
              split ? "a pipeline over 1 MiB spread over idle pooled connections (--split)" : "one connection per pipeline",
              (unsigned long long)kKeyspace);
  std::printf("  \"limit\": \"redis-benchmark SET / GET against the same redis-server in the same run, same "
              "value size, connections and pipeline depth; goal: remote_put_gbps >= 0.8 x redis_benchmark_set_gbps, "
              "remote_get_gbps >= 0.8 x redis_benchmark_get_gbps\",\n");
  std::printf("  \"sweep\": [\n");
  for (size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    std::printf("    {\"chunk_bytes\": %llu, \"pipeline\": %u, \"remote_put_gbps\": %.3f, \"remote_get_gbps\": %.3f, "
                "\"redis_benchmark_set_gbps\": %.3f, \"redis_benchmark_get_gbps\": %.3f, \"put_ratio\": %.3f, "
                "\"get_ratio\": %.3f, \"put_ratio_median_of_runs\": %.3f, \"get_ratio_median_of_runs\": %.3f, "
                "\"unverified_reads\": %llu}%s\n",
                (unsigned long long)r.bytes, result_pipeline[i], r.put_gbps, r.get_gbps, r.set_gbps, r.redis_get_gbps,
                r.set_gbps > 0 ? r.put_gbps / r.set_gbps : 0, r.redis_get_gbps > 0 ? r.get_gbps / r.redis_get_gbps : 0,
                r.put_ratio_runs, r.get_ratio_runs, (unsigned long long)r.bad_reads, i + 1 < results.size() ? "," : "");
  }
  std::printf("  ]\n}\n");
  return 0;
#endif
}

}  // namespace kvt::bench
