// The real check of issue 8: a real kv-tierd, a real Prometheus (Debian package) scraping it on
// loopback with the shipped scrape config and alert rules, a workload through libkvtier, then
// every PromQL expression of the Grafana dashboard and of the alert rules sent to Prometheus's
// HTTP API. One test per expression (named after its panel or alert):
//   - expressions over emitted metrics must return at least one finite sample, carrying the
//     labels their legend / annotations use;
//   - expressions over metrics listed in monitoring/pending_metrics.yml must be valid PromQL and
//     are reported SKIPPED with "PENDING: ..." (their component has not landed);
//   - alert rules are checked with their comparisons made `bool` (data whenever the inputs exist);
//     the alerts this workload provokes are also checked as written and must become active.
// The whole binary skips (exit 77) only when no prometheus binary is installed.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <thread>

#include "kvt/kvt.hpp"
#include "tests/integration/core/client_fixture.h"
#include "tests/integration/monitoring/http_get.h"
#include "tests/integration/monitoring/monitoring_expressions.h"
#include "tests/integration/monitoring/prometheus_server.h"

namespace kvt::testing {
namespace {

std::string MonitoringDir() {
  const char* src = std::getenv("KVT_SOURCE_DIR");
  return std::string(src && *src ? src : KVT_DEFAULT_SOURCE_DIR) + "/monitoring";
}

// Alerts whose condition the workload below makes true; checked as written, and in /api/v1/alerts.
const char* const kProvokedAlerts[] = {"KvtDaemonDown", "KvtTierFull",
                                       "KvtTierNearlyFullOfPinnedChunks", "KvtBadRequests"};

struct QueryResult {
  std::string error;  // non-empty: Prometheus refused the query or did not answer
  size_t series = 0;
  size_t finite = 0;  // series whose value is a finite number
  std::vector<std::map<std::string, std::string>> labels;
  std::string first;  // one sample, for messages
};

// The shared world: built once, before any test, torn down after all of them.
struct World {
  std::string skip;   // why every test skips (no prometheus binary)
  std::string error;  // why every test fails (set-up went wrong)
  std::unique_ptr<DaemonProcess> daemon;
  std::unique_ptr<PrometheusServer> prometheus;
  std::string live_target, dead_target;
  kvt::Client client_a, client_b;
  kvt::Namespace ns;
  uint64_t pinned_prefixes = 0, refused_stores = 0;
  uint64_t chunk_bytes = 0;
  uint64_t evicted_chunks_retrieved = 0;  // chunks of evicted prefixes retrieved (from NVMe)
  uint64_t retrieves = 0;                 // retrieve requests sent
  double setup_seconds = 0;
  // The sequence plane: one in-client sequence of client_a (its host tier in client_a's shared
  // heap, reporting through client_a's session), open until the end.
  kvt_sequence_t* sequence = nullptr;
  uint64_t sequence_tokens = 0;      // per layer
  uint64_t offload_fetched = 0;      // bytes the offload layer fetched, summed over its steps
  uint64_t decode_steps = 0;         // per layer
};
World* g_world = nullptr;

QueryResult Query(const std::string& promql) {
  QueryResult q;
  auto r = HttpGet(g_world->prometheus->port(), "/api/v1/query?query=" + UrlEncode(promql));
  if (!r.ok()) {
    q.error = r.status().ToString();
    return q;
  }
  try {
    YAML::Node doc = YAML::Load(r->body);
    if (r->status != 200 || doc["status"].as<std::string>() != "success") {
      q.error = "HTTP " + std::to_string(r->status) + ": " + doc["error"].as<std::string>(r->body);
      return q;
    }
    const auto result = doc["data"]["result"];
    if (doc["data"]["resultType"].as<std::string>() == "scalar") {
      q.series = 1;
      q.finite = std::isfinite(std::strtod(result[1].as<std::string>().c_str(), nullptr)) ? 1 : 0;
      q.labels.emplace_back();
      return q;
    }
    for (const auto& s : result) {
      ++q.series;
      std::map<std::string, std::string> labels;
      for (const auto& l : s["metric"])
        labels[l.first.as<std::string>()] = l.second.as<std::string>();
      const std::string v = s["value"][1].as<std::string>();
      if (std::isfinite(std::strtod(v.c_str(), nullptr))) ++q.finite;
      if (q.first.empty()) {
        q.first = "{";
        for (const auto& [k, val] : labels) q.first += k + "=\"" + val + "\",";
        q.first += "} " + v;
      }
      q.labels.push_back(std::move(labels));
    }
  } catch (const std::exception& e) {
    q.error = std::string("unparsable answer: ") + e.what() + ": " + r->body.substr(0, 200);
  }
  return q;
}

// Polls (bounded) until `promql` returns at least one finite sample.
bool WaitForData(const std::string& promql, std::chrono::seconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (Query(promql).finite > 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return false;
}

// A client that says less than a hello and hangs up: one kvt_bad_requests_total{kind="handshake"}.
void SendBadHandshake(const std::string& socket_path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, socket_path.c_str(), sizeof a.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const char junk[4] = {'K', 'V', 'T', '?'};
    (void)!::write(fd, junk, sizeof junk);
  }
  ::close(fd);
}

// A plan with every policy: kvt_policy_bytes_per_token gets a series per policy, the offload and
// sparse layers fetch from the host tier on every step, the sparse layer prefetches its channel
// rows when hinted (hidden transfer time).
constexpr char kSequencePlan[] =
    "kvt-sequence-plan 1\n"
    "model monitoring-model\n"
    "shape layers=4,q_heads=4,kv_heads=2,head_dim=32\n"
    "layer 0 full\n"
    "layer 1 kivi bits=2,group=32,residual=32\n"
    "layer 2 offload\n"
    "layer 3 sparse budget=64,sinks=4,recent=16,channels=4,scorer=channels\n";
constexpr int kSeqLayers = 4, kSeqKvRow = 2 * 32, kSeqQRow = 4 * 32;
constexpr uint64_t kFp16KvBytesPerToken = 2 * kSeqKvRow * 2;  // K and V, 2 bytes each

std::vector<float> RandomFloats(size_t n, uint32_t seed) {
  std::vector<float> v(n);
  uint32_t x = seed * 2654435761u + 1;
  for (auto& f : v) {
    x = x * 1664525u + 1013904223u;
    f = static_cast<float>(static_cast<int32_t>(x >> 8) % 2001 - 1000) / 1000.0f;
  }
  return v;
}

// Opens the sequence in client_a (reporting through its session) and prefills 256 tokens per layer.
std::string OpenSequence(World& w) {
  if (kvt_sequence_open_in_client(w.client_a.get(), kSequencePlan, -1, &w.sequence) != KVT_STATUS_OK)
    return std::string("kvt_sequence_open_in_client: ") + kvt_last_error_message();
  const uint32_t prompt = 256;
  auto k = RandomFloats(prompt * kSeqKvRow, 1), v = RandomFloats(prompt * kSeqKvRow, 2);
  for (uint32_t l = 0; l < kSeqLayers; ++l) {
    if (kvt_sequence_append(w.sequence, l, k.data(), v.data(), prompt) != KVT_STATUS_OK)
      return std::string("kvt_sequence_append: ") + kvt_last_error_message();
  }
  w.sequence_tokens = prompt;
  return "";
}

// Decode steps: hint the next layer, append one token, attend, for every layer.
std::string DecodeSteps(World& w, int steps) {
  std::vector<float> out(kSeqQRow);
  for (int step = 0; step < steps; ++step) {
    auto k = RandomFloats(kSeqKvRow, 10 + static_cast<uint32_t>(w.decode_steps));
    auto v = RandomFloats(kSeqKvRow, 20 + static_cast<uint32_t>(w.decode_steps));
    auto q = RandomFloats(kSeqQRow, 30 + static_cast<uint32_t>(w.decode_steps));
    for (uint32_t l = 0; l < kSeqLayers; ++l) {
      if (l + 1 < kSeqLayers && kvt_sequence_hint_next(w.sequence, l + 1, q.data()) != KVT_STATUS_OK)
        return std::string("hint_next: ") + kvt_last_error_message();
      if (kvt_sequence_append(w.sequence, l, k.data(), v.data(), 1) != KVT_STATUS_OK ||
          kvt_sequence_attend(w.sequence, l, q.data(), out.data()) != KVT_STATUS_OK)
        return std::string("decode step: ") + kvt_last_error_message();
    }
    ++w.sequence_tokens;
    ++w.decode_steps;
    w.offload_fetched += w.sequence_tokens * kFp16KvBytesPerToken;  // the whole offload layer
  }
  return "";
}

// The workload: hits, misses and latencies; capacity evictions of the host tier, which demote the
// evicted chunks to the NVMe tier; retrieves of evicted prefixes, served from NVMe (promotion, demand
// reads through the transfer scheduler), early and again at the end inside the rate windows; a host
// tier full of pinned chunks that refuses stores; malformed handshakes; two tenants. Counters that
// are born during the workload
// (an error status, a bad-request kind) are created first and scraped before they grow, so rate()
// sees the growth.
std::string RunWorkload(World& w) {
  const std::string& socket = w.daemon->socket_path();
  if (auto r = Connect(socket, &w.client_a, "tenant-a"); !r)
    return "connect tenant-a: " + r.message;
  if (auto r = Connect(socket, &w.client_b, "tenant-b"); !r)
    return "connect tenant-b: " + r.message;
  if (auto r = w.client_a.OpenNamespace(SmallLayout("monitoring-model"), &w.ns); !r)
    return "open: " + r.message;
  kvt::Namespace& ns = w.ns;
  const uint64_t cb = ns.chunk_bytes();
  const uint32_t tpc = ns.tokens_per_chunk();

  w.chunk_bytes = cb;

  auto store = [&](uint64_t seed, size_t chunks) {
    auto t = Tokens(seed, chunks * tpc);
    auto kv = Kv(seed, chunks * cb);
    return ns.Store(t.data(), t.size(), kv.data(), kv.size());
  };
  // A whole prefix that is no longer in the host tier: every chunk must come back, bit-exact.
  auto retrieve_evicted = [&](uint64_t seed, size_t chunks) -> std::string {
    auto t = Tokens(seed, chunks * tpc);
    std::vector<char> got_kv(chunks * cb);
    uint64_t got = 0;  // tokens
    ++w.retrieves;
    if (auto r = ns.Retrieve(t.data(), t.size(), got_kv.data(), got_kv.size(), &got); !r)
      return "retrieve " + std::to_string(seed) + ": " + r.message;
    if (got != t.size() || got_kv != Kv(seed, chunks * cb)) {
      return "retrieve of evicted prefix " + std::to_string(seed) + " returned " + std::to_string(got) +
             " of " + std::to_string(t.size()) + " tokens (or wrong bytes): not served from NVMe";
    }
    w.evicted_chunks_retrieved += chunks;
    return "";
  };
  // Hits, misses, retrieves: 16 prefixes of 32 chunks (2 MiB).
  for (uint64_t s = 1; s <= 16; ++s) {
    if (auto r = store(s, 32); !r) return "store " + std::to_string(s) + ": " + r.message;
  }
  std::vector<char> out(32 * cb);
  for (uint64_t s = 1; s <= 16; ++s) {
    auto t = Tokens(s, 32 * tpc);
    uint64_t got = 0, matched = 0;
    ++w.retrieves;
    if (auto r = ns.Retrieve(t.data(), t.size(), out.data(), out.size(), &got); !r)
      return "retrieve: " + r.message;
    if (auto r = ns.Lookup(t.data(), t.size(), &matched); !r) return "lookup: " + r.message;
    auto unknown = Tokens(1000 + s, 32 * tpc);
    if (auto r = ns.Lookup(unknown.data(), unknown.size(), &matched); !r)
      return "lookup: " + r.message;
  }
  // Capacity evictions: 24 MiB more into a 16 MiB tier. The least recently used chunks (prefixes
  // 1-16 first) are evicted from the host tier and written back to NVMe.
  for (uint64_t s = 100; s < 124; ++s) {
    if (auto r = store(s, 256); !r) return "store " + std::to_string(s) + ": " + r.message;
  }
  // Promotion: evicted prefixes come back from NVMe (into the host tier, evicting others).
  for (uint64_t s = 1; s <= 4; ++s) {
    if (std::string e = retrieve_evicted(s, 32); !e.empty()) return e;
  }
  // Let write-back finish first: a demotion holds its host slot until it is on NVMe, and the
  // alerts below are about a host tier full of pinned chunks, not of chunks on their way out.
  if (kvt_status_t st = kvt_persist(w.client_a.get(), -1); st != KVT_STATUS_OK) {
    return std::string("persist before pinning: ") + kvt_last_error_message();
  }
  // Pin 1 MiB prefixes until the tier holds nothing evictable and a store is refused.
  for (uint64_t s = 200; s < 240 && w.refused_stores == 0; ++s) {
    auto t = Tokens(s, 256 * tpc);
    auto kv = Kv(s, 256 * cb);
    if (auto r = ns.Store(t.data(), t.size(), kv.data(), kv.size()); !r) {
      if (r.status != KVT_STATUS_RESOURCE_EXHAUSTED) return "store while pinning: " + r.message;
      ++w.refused_stores;
      break;
    }
    if (auto r = ns.Pin(t.data(), t.size()); !r) return "pin: " + r.message;
    ++w.pinned_prefixes;
  }
  if (w.refused_stores == 0) return "the tier never filled up with pinned chunks";
  // The sequence plane: its counters are born at the first decode step and scraped before they grow.
  if (std::string e = OpenSequence(w); !e.empty()) return e;
  if (std::string e = DecodeSteps(w, 4); !e.empty()) return e;
  SendBadHandshake(socket);
  // Let Prometheus see the newborn series at their first value before they grow.
  if (!WaitForData("kvt_requests_total{status=\"RESOURCE_EXHAUSTED\"}", std::chrono::seconds(15)) ||
      !WaitForData("kvt_bad_requests_total{kind=\"handshake\"}", std::chrono::seconds(15)) ||
      !WaitForData("kvt_dominant_token_bytes_per_step_count{policy=\"sparse\"}", std::chrono::seconds(15)) ||
      !WaitForData("kvt_transfer_seconds_total{overlap=\"hidden\"}", std::chrono::seconds(15))) {
    return "Prometheus never scraped the error counters or the sequence plane's";
  }
  for (int i = 0; i < 60; ++i) SendBadHandshake(socket);
  for (uint64_t s = 300; s < 305; ++s) {
    if (store(s, 4).status == KVT_STATUS_RESOURCE_EXHAUSTED) ++w.refused_stores;
  }
  for (uint64_t s = 1; s <= 16; ++s) {  // more traffic inside the rate windows
    auto t = Tokens(s, 32 * tpc);
    uint64_t matched = 0;
    (void)ns.Lookup(t.data(), t.size(), &matched);
  }
  // NVMe reads inside the rate windows (the scheduler's demand wait, promotions): prefixes evicted
  // by the pinning above. The host tier is full of pinned chunks, so they are served from NVMe
  // without being kept in the host tier (a failed promotion is no failure of the read).
  for (uint64_t s = 100; s < 104; ++s) {
    if (std::string e = retrieve_evicted(s, 256); !e.empty()) return e;
  }
  // Decode inside the rate windows too.
  if (std::string e = DecodeSteps(w, 28); !e.empty()) return e;
  return "";
}

class MonitoringEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    const auto start = std::chrono::steady_clock::now();
    g_world = new World();
    World& w = *g_world;
    const std::string binary = FindPrometheusBinary();
    if (binary.empty()) {
      w.skip = "no prometheus binary (apt install prometheus, or set KVT_PROMETHEUS)";
      return;
    }
    DaemonOptions o;
    o.host_capacity = "16MiB";
    o.metrics = true;
    // The NVMe tier (on by default, under the daemon's data directory) with a fixed capacity: 16
    // segments of 8 MiB, twice what the workload demotes (4 KiB chunks take 8 KiB records).
    o.extra_args = {"--nvme-capacity", "128MiB", "--nvme-segment-size", "8MiB"};
    w.daemon = std::make_unique<DaemonProcess>(o);
    if (!w.daemon->Start()) {
      w.error = "kv-tierd did not start:\n" + w.daemon->Log();
      return;
    }
    w.live_target = "127.0.0.1:" + std::to_string(w.daemon->metrics_port());
    // A second target in the same job where nothing listens: a node that is down.
    w.dead_target = "127.0.0.1:" + std::to_string(FreeLoopbackPort());
    w.prometheus = std::make_unique<PrometheusServer>(binary);
    if (Status s = w.prometheus->Start(MonitoringDir() + "/prometheus/prometheus.yml", "kv-tierd",
                                       {w.live_target, w.dead_target}, "1s");
        !s.ok()) {
      w.error = s.ToString();
      return;
    }
    // Two scrapes of the idle daemon: every pre-created counter has a zero baseline.
    if (!WaitForData("count_over_time(up{instance=\"" + w.live_target + "\"}[1m]) >= 2",
                     std::chrono::seconds(20))) {
      w.error = "Prometheus never scraped kv-tierd:\n" + w.prometheus->Log();
      return;
    }
    if (std::string e = RunWorkload(w); !e.empty()) {
      w.error = "workload: " + e + "\n" + w.daemon->Log();
      return;
    }
    // Three scrapes after the workload, so rates over the window see all of it.
    if (!WaitForData("count_over_time(kvt_bad_requests_total{kind=\"handshake\"}[1m]) >= 4",
                     std::chrono::seconds(20)) ||
        !WaitForData("increase(kvt_bad_requests_total{kind=\"handshake\"}[1m]) > 30",
                     std::chrono::seconds(20))) {
      w.error = "Prometheus did not scrape the workload's results";
      return;
    }
    // The NVMe retrieves end the workload: a scrape after the last of them, then the asynchronous
    // write-back settled (nothing queued, no transfer started and no chunk moved for 3 scrapes),
    // so FiguresMatchTheWorkload reads final, consistent figures.
    const std::string live = "{instance=\"" + w.live_target + "\"}";
    if (!WaitForData("sum(kvt_requests_total{op=\"retrieve\",instance=\"" + w.live_target + "\"}) >= " +
                         std::to_string(w.retrieves),
                     std::chrono::seconds(20)) ||
        !WaitForData("kvt_dominant_token_bytes_per_step_count{policy=\"offload\"} >= " + std::to_string(w.decode_steps),
                     std::chrono::seconds(20)) ||
        !WaitForData("sum(kvt_scheduler_queue_depth" + live + ") == 0 and sum(changes(kvt_scheduler_wait_seconds_count" +
                         live + "[3s])) == 0 and sum(changes(kvt_tier_moves_chunks_total" + live + "[3s])) == 0",
                     std::chrono::seconds(20))) {
      w.error = "Prometheus did not scrape the end of the workload, or the NVMe write-back never settled";
      return;
    }
    w.setup_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  void TearDown() override {
    World& w = *g_world;
    kvt_sequence_close(w.sequence);
    w.ns = kvt::Namespace();
    w.client_a = kvt::Client();
    w.client_b = kvt::Client();
    if (w.prometheus) w.prometheus->Stop();
    if (w.daemon && w.daemon->Alive()) {
      EXPECT_EQ(w.daemon->Stop(), 0) << "kv-tierd must exit cleanly on SIGTERM\n"
                                     << w.daemon->Log();
    }
    delete g_world;
    g_world = nullptr;
  }
};

const auto* const kEnvironment = ::testing::AddGlobalTestEnvironment(new MonitoringEnvironment());

// Skips or fails every test the same way when the world is not there.
#define KVT_REQUIRE_WORLD()                                    \
  do {                                                         \
    if (!g_world->skip.empty()) GTEST_SKIP() << g_world->skip; \
    ASSERT_TRUE(g_world->error.empty()) << g_world->error;     \
  } while (0)

std::vector<MonitoringExpression> LoadOrReport() {
  auto e = LoadMonitoringExpressions(MonitoringDir());
  if (e.ok() && !e->empty()) return *e;
  MonitoringExpression broken;
  broken.source = "error";
  broken.name = e.ok() ? "no expressions found" : e.status().ToString();
  broken.test_name = "LoadingTheDashboardAndRules";
  return {broken};
}

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

class ExpressionTest : public ::testing::TestWithParam<MonitoringExpression> {};

TEST_P(ExpressionTest, ReturnsData) {
  const MonitoringExpression& e = GetParam();
  ASSERT_NE(e.source, "error") << e.name;
  KVT_REQUIRE_WORLD();
  const std::string& q = e.source == "alert" ? e.bool_query : e.query;
  QueryResult r = Query(q);
  ASSERT_TRUE(r.error.empty()) << e.source << " '" << e.name << "': Prometheus refused\n  " << q
                               << "\n  " << r.error;
  if (!e.pending.empty()) {
    GTEST_SKIP() << "PENDING " << e.source << " '" << e.name << "': valid PromQL, reads "
                 << Join(e.pending)
                 << " which this build does not emit yet (see monitoring/pending_metrics.yml)";
  }
  ASSERT_GT(r.finite, 0u) << e.source << " '" << e.name << "' returned " << r.series
                          << " series and no finite value:\n  " << q;
  for (const auto& label : e.labels_used) {
    bool present = false;
    for (const auto& l : r.labels) present = present || l.count(label);
    EXPECT_TRUE(present) << e.source << " '" << e.name << "' uses label '" << label
                         << "' but its result does not carry it:\n  " << q << "\n  e.g. "
                         << r.first;
  }
  std::printf("  VERIFIED %-9s %-50s %zu series, e.g. %s\n", e.source.c_str(), e.name.c_str(),
              r.series, r.first.substr(0, 100).c_str());
}

INSTANTIATE_TEST_SUITE_P(Monitoring, ExpressionTest, ::testing::ValuesIn(LoadOrReport()),
                         [](const ::testing::TestParamInfo<MonitoringExpression>& info) {
                           return info.param.test_name;
                         });

TEST(MonitoringSetup, ListsEveryExpressionAndEveryPendingMetricIsUsed) {
  if (!g_world->skip.empty()) GTEST_SKIP() << g_world->skip;  // the binary skips as a whole
  auto exprs = LoadMonitoringExpressions(MonitoringDir());
  ASSERT_TRUE(exprs.ok()) << exprs.status().ToString();
  auto pending = LoadPendingMetrics(MonitoringDir());
  ASSERT_TRUE(pending.ok()) << pending.status().ToString();
  size_t n_pending = 0;
  std::printf("  %-9s %-50s %s\n", "source", "name", "status");
  for (const auto& e : *exprs) {
    n_pending += !e.pending.empty();
    std::printf("  %-9s %-50s %s\n", e.source.c_str(), e.name.c_str(),
                e.pending.empty() ? "must return data" : ("PENDING: " + Join(e.pending)).c_str());
  }
  std::printf("  %zu expressions: %zu must return data, %zu pending\n", exprs->size(),
              exprs->size() - n_pending, n_pending);
  EXPECT_GE(exprs->size(), 40u);
  for (const auto& p : *pending) {
    bool used = false;
    for (const auto& e : *exprs)
      used = used || std::find(e.pending.begin(), e.pending.end(), p.name) != e.pending.end();
    EXPECT_TRUE(used) << p.name << " is listed as pending but no panel or rule reads it";
  }
  for (const auto& e : *exprs) {
    if (e.source != "variable") {
      EXPECT_FALSE(e.metrics.empty() && e.expr.find("up{") == std::string::npos)
          << e.name << " reads no metric";
    }
  }
}

TEST(MonitoringSetup, PendingMetricsAreReallyNotEmittedYet) {
  KVT_REQUIRE_WORLD();
  auto pending = LoadPendingMetrics(MonitoringDir());
  ASSERT_TRUE(pending.ok()) << pending.status().ToString();
  for (const auto& p : *pending) {
    QueryResult r = Query("count({__name__=~\"" + p.name + "(_bucket|_sum|_count)?\"})");
    ASSERT_TRUE(r.error.empty()) << r.error;
    EXPECT_EQ(r.series, 0u) << p.name
                            << " is emitted now: remove it from monitoring/pending_metrics.yml so "
                            << "the expressions reading it are required to return data";
  }
}

TEST(MonitoringSetup, AllAlertRulesLoadedAndHealthy) {
  KVT_REQUIRE_WORLD();
  auto r = HttpGet(g_world->prometheus->port(), "/api/v1/rules");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  YAML::Node doc = YAML::Load(r->body);
  size_t rules = 0;
  for (const auto& g : doc["data"]["groups"]) {
    for (const auto& rule : g["rules"]) {
      ++rules;
      EXPECT_EQ(rule["health"].as<std::string>(""), "ok")
          << rule["name"].as<std::string>("") << ": " << rule["lastError"].as<std::string>("");
    }
  }
  auto exprs = LoadMonitoringExpressions(MonitoringDir());
  ASSERT_TRUE(exprs.ok());
  size_t alerts = 0;
  for (const auto& e : *exprs) alerts += e.source == "alert";
  EXPECT_EQ(rules, alerts) << "Prometheus loaded a different number of rules than the file has";
}

TEST(MonitoringSetup, ProvokedAlertsFireInARealPrometheus) {
  KVT_REQUIRE_WORLD();
  auto exprs = LoadMonitoringExpressions(MonitoringDir());
  ASSERT_TRUE(exprs.ok());
  for (const char* alert : kProvokedAlerts) {
    auto it =
        std::find_if(exprs->begin(), exprs->end(), [&](const auto& e) { return e.name == alert; });
    ASSERT_NE(it, exprs->end()) << alert << " is not in the rules any more";
    QueryResult r = Query(it->query);
    EXPECT_TRUE(r.error.empty() && r.series > 0)
        << alert << " condition is not true after the workload:\n  " << it->query << "\n  "
        << r.error;
  }
  // Rules are evaluated every second; each provoked alert must become pending (or firing).
  std::map<std::string, std::string> state;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (std::chrono::steady_clock::now() < until && state.size() < std::size(kProvokedAlerts)) {
    auto r = HttpGet(g_world->prometheus->port(), "/api/v1/alerts");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    YAML::Node doc = YAML::Load(r->body);
    for (const auto& a : doc["data"]["alerts"]) {
      const std::string name = a["labels"]["alertname"].as<std::string>();
      if (name == "KvtDaemonDown") {
        EXPECT_EQ(a["labels"]["instance"].as<std::string>(), g_world->dead_target)
            << "the live daemon is up";
      }
      state[name] = a["state"].as<std::string>();
    }
    if (state.size() < std::size(kProvokedAlerts))
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  for (const char* alert : kProvokedAlerts) {
    EXPECT_TRUE(state.count(alert)) << alert << " never became active";
    if (state.count(alert)) std::printf("  ALERT %-34s %s\n", alert, state[alert].c_str());
  }
}

TEST(MonitoringSetup, FiguresMatchTheWorkload) {
  KVT_REQUIRE_WORLD();
  const World& w = *g_world;
  const std::string sel = "{instance=\"" + w.live_target + "\"}";
  auto value = [&](const std::string& q) {
    QueryResult r = Query(q);
    EXPECT_TRUE(r.error.empty()) << q << ": " << r.error;
    EXPECT_EQ(r.series, 1u) << q;
    return r.first.empty() ? -1.0
                           : std::strtod(r.first.substr(r.first.rfind(' ') + 1).c_str(), nullptr);
  };
  EXPECT_EQ(value("kvt_tier_capacity_bytes{tier=\"host\"}"), 16.0 * 1024 * 1024);
  EXPECT_EQ(value("kvt_tier_pinned_chunks{tier=\"host\"}"), 256.0 * w.pinned_prefixes);
  EXPECT_EQ(value("kvt_requests_total{op=\"store\",status=\"RESOURCE_EXHAUSTED\"}"),
            static_cast<double>(w.refused_stores));
  // 61 from the workload, plus the test harness's readiness probes (connect, close).
  EXPECT_GE(value("kvt_bad_requests_total{kind=\"handshake\"}"), 61.0);
  EXPECT_EQ(value("sum(kvt_clients{tenant=~\"tenant-a|tenant-b\"})"), 2.0);
  const double host_evictions = value("kvt_evictions_total{tier=\"host\",reason=\"capacity\"}");
  EXPECT_GT(host_evictions, 0.0);

  // The NVMe tier: serving, with the configured capacity, on the queue the probe chose.
  EXPECT_EQ(value("kvt_tier_capacity_bytes{tier=\"nvme\"}"), 128.0 * 1024 * 1024);
  EXPECT_EQ(value("kvt_tier_enabled{tier=\"nvme\"}"), 1.0);
  EXPECT_EQ(value("count(kvt_nvme_queue_info == 1)"), 1.0);
  // Demotion: evicted host chunks written back to NVMe. Every eviction is written except a chunk
  // NVMe holds already (one promoted from it). Staging (64 MiB) holds all the workload demotes, so
  // nothing is dropped.
  const double cb = static_cast<double>(w.chunk_bytes);
  const double demoted = value("kvt_tier_moves_chunks_total{direction=\"demotion\",priority=\"writeback\"}");
  const double promoted = value("kvt_tier_moves_chunks_total{direction=\"promotion\",priority=\"demand\"}");
  EXPECT_GT(demoted, 0.0);
  EXPECT_EQ(value("kvt_chunks_stored_total{tier=\"nvme\"}"), demoted);
  EXPECT_EQ(value("kvt_tier_moves_bytes_total{direction=\"demotion\",priority=\"writeback\"}"), demoted * cb);
  EXPECT_LE(demoted, host_evictions);
  EXPECT_GE(demoted, host_evictions - promoted);
  EXPECT_EQ(value("sum(kvt_nvme_demotions_dropped_total)"), 0.0);
  EXPECT_GT(value("kvt_tier_chunks{tier=\"nvme\"}"), 0.0);
  EXPECT_GT(value("kvt_tier_used_bytes{tier=\"nvme\"}"), 0.0);
  // Promotion: every chunk of the evicted prefixes retrieved came from NVMe (demand reads).
  EXPECT_GE(promoted, static_cast<double>(w.evicted_chunks_retrieved));
  EXPECT_EQ(value("kvt_tier_moves_bytes_total{direction=\"promotion\",priority=\"demand\"}"), promoted * cb);
  EXPECT_GE(value("kvt_tier_hits_total{tier=\"nvme\"}"), promoted);
  EXPECT_EQ(value("kvt_tier_moves_chunks_total{direction=\"promotion\",priority=\"prefetch\"}"), 0.0);
  // The transfer scheduler ran the write-back and the demand reads, and has nothing queued now.
  EXPECT_GT(value("kvt_scheduler_wait_seconds_count{priority=\"writeback\"}"), 0.0);
  EXPECT_GT(value("kvt_scheduler_wait_seconds_count{priority=\"demand\"}"), 0.0);
  EXPECT_EQ(value("sum(kvt_scheduler_queue_depth)"), 0.0);
  // No fault was injected: no corrupt record, no I/O error.
  EXPECT_EQ(value("kvt_checksum_failures_total{tier=\"nvme\"}"), 0.0);
  EXPECT_EQ(value("sum(kvt_io_errors_total)"), 0.0);

  // The sequence plane, as libkvtier reported it through client_a's session: one open sequence;
  // fp16 layers hold exactly K + V per token (resident or in the host tier), KIVI less; one
  // observation per decode step and fetching layer; the offload layer fetched all its tokens.
  EXPECT_EQ(value("kvt_sequences{tenant=\"tenant-a\"}"), 1.0);
  const double fp16 = static_cast<double>(kFp16KvBytesPerToken);
  EXPECT_EQ(value("kvt_policy_bytes_per_token{policy=\"full\"}"), fp16);
  EXPECT_EQ(value("kvt_policy_bytes_per_token{policy=\"offload\"}"), fp16);
  const double kivi = value("kvt_policy_bytes_per_token{policy=\"kivi\"}");
  EXPECT_GT(kivi, 0.0);
  EXPECT_LT(kivi, fp16);
  EXPECT_GE(value("kvt_policy_bytes_per_token{policy=\"sparse\"}"), fp16) << "fp16 K/V plus the transposed keys";
  const double steps = static_cast<double>(w.decode_steps);
  EXPECT_EQ(value("kvt_dominant_token_bytes_per_step_count{policy=\"offload\"}"), steps);
  EXPECT_EQ(value("kvt_dominant_token_bytes_per_step_sum{policy=\"offload\"}"), static_cast<double>(w.offload_fetched));
  EXPECT_EQ(value("kvt_dominant_token_bytes_per_step_count{policy=\"sparse\"}"), steps);
  // Past the budget the sparse layer gathers budget - sinks - recent = 44 tokens per KV head.
  const double gathered = 44.0 * kFp16KvBytesPerToken;
  EXPECT_EQ(value("kvt_dominant_token_bytes_per_step_sum{policy=\"sparse\"}"), steps * gathered);
  EXPECT_EQ(value("kvt_dominant_token_bytes_per_step_bucket{policy=\"sparse\",le=\"8192\"}"), 0.0);
  EXPECT_EQ(value("kvt_dominant_token_bytes_per_step_bucket{policy=\"sparse\",le=\"16384\"}"), steps)
      << "each step gathers " << gathered << " bytes";
  EXPECT_GT(value("sum(kvt_transfer_seconds_total{policy=\"sparse\"})"), 0.0);
  EXPECT_GT(value("sum(kvt_transfer_seconds_total{policy=\"offload\"})"), 0.0);
  EXPECT_EQ(value("count(kvt_transfer_seconds_total{policy=~\"full|kivi\"}) or vector(0)"), 0.0)
      << "resident layers move nothing";
  // The host tier in client_a's heap: the offload layer's K/V and the sparse layer's K/V and
  // transposed keys, in arrays whose capacity doubles, page-rounded.
  const double host_tier = static_cast<double>(w.sequence_tokens) * (2.0 * kFp16KvBytesPerToken + kSeqKvRow * 2);
  const double heap = value("kvt_sequence_host_tier_heap_bytes{tenant=\"tenant-a\"}");
  EXPECT_GE(heap, host_tier);
  EXPECT_LE(heap, 2 * host_tier + 16 * 4096);

  EXPECT_GT(value("kvt_process_resident_memory_bytes" + sel), 16.0 * 1024 * 1024)
      << "the touched arena is resident";
  EXPECT_GE(value("kvt_process_open_fds" + sel), 5.0);
  const double age = value("time() - kvt_process_start_time_seconds" + sel);
  EXPECT_GT(age, 0.0);
  EXPECT_LT(age, w.setup_seconds + 120);
  std::printf("  set-up (daemon, Prometheus, workload, scrapes): %.1f s\n", w.setup_seconds);
}

}  // namespace
}  // namespace kvt::testing
