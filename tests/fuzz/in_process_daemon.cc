#include "tests/fuzz/in_process_daemon.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdlib>

#include "daemon/config.h"
#include "tests/fuzz/fuzz_target.h"

namespace kvt::fuzz {
namespace {

constexpr uint64_t kBystanderTokens = 64;
constexpr uint32_t kTokensPerChunk = 16;

kvt_layout_t BystanderLayout() {
  kvt_layout_t l;
  kvt_layout_init(&l);
  l.model_id = "bystander";
  l.num_layers = 2;
  l.num_kv_heads = 2;
  l.head_dim = 16;
  l.dtype = KVT_DTYPE_F16;
  l.tokens_per_chunk = kTokensPerChunk;
  return l;
}

}  // namespace

InProcessDaemon& InProcessDaemon::Get() {
  // Stopped at exit, before the libraries' statics it uses go.
  static InProcessDaemon* daemon = [] {
    auto* d = new InProcessDaemon();
    std::atexit([] { Get().Stop(); });
    return d;
  }();
  return *daemon;
}

InProcessDaemon::InProcessDaemon() {
  dir_ = std::make_unique<testing::TempDir>();
  daemon::DaemonConfig c = daemon::DefaultConfig();
  c.socket_path = dir_->File("kv-tierd.sock");
  c.data_dir = dir_->File("data");
  c.metrics_address = "";
  c.host_capacity_bytes = 64ull << 20;
  c.lock_memory = false;
  c.nvme.enabled = false;
  c.default_heap_bytes = kHeapBytes;
  c.max_heap_bytes = 8 * kHeapBytes;
  c.total_heap_bytes = 64 * kHeapBytes;
  c.default_ring_entries = 64;
  c.handshake_timeout_ms = 1000;
  spdlog::set_level(spdlog::level::err);  // refused requests are logged; an input makes many
  auto d = daemon::Daemon::Create(c);
  KVT_FUZZ_CHECK(d.ok(), "the daemon starts: " + d.status().ToString());
  daemon_ = std::move(*d);
  runner_ = std::thread([this] { daemon_->Run(); });
  socket_ = c.socket_path;

  kvt_client_options_t o;
  kvt_client_options_init(&o);
  o.socket_path = socket_.c_str();
  o.tenant = "bystander";
  kvt::Result r = kvt::Client::Open(o, &client_);
  KVT_FUZZ_CHECK(static_cast<bool>(r), "the bystander connects: " + r.message);
  r = client_.OpenNamespace(BystanderLayout(), &ns_);
  KVT_FUZZ_CHECK(static_cast<bool>(r), "the bystander's namespace: " + r.message);
  tokens_.resize(kBystanderTokens);
  for (uint64_t i = 0; i < kBystanderTokens; ++i) tokens_[i] = static_cast<uint32_t>(i * 7 + 3);
  // chunks * layers * (K, V) * heads * tokens * head_dim * fp16
  kv_.resize(kBystanderTokens / kTokensPerChunk * 2 * 2 * 2 * kTokensPerChunk * 16 * 2);
  for (size_t i = 0; i < kv_.size(); ++i) kv_[i] = static_cast<char>(i * 131 + 7);
  r = ns_.Store(tokens_.data(), tokens_.size(), kv_.data(), kv_.size());
  KVT_FUZZ_CHECK(static_cast<bool>(r), "the bystander stores: " + r.message);
  uint64_t pinned = 0;
  r = ns_.Pin(tokens_.data(), tokens_.size(), &pinned);
  KVT_FUZZ_CHECK(static_cast<bool>(r) && pinned == kBystanderTokens, "the bystander pins: " + r.message);
}

void InProcessDaemon::CheckBystander() {
  std::vector<char> out(kv_.size());
  uint64_t retrieved = 0;
  const kvt::Result r = ns_.Retrieve(tokens_.data(), tokens_.size(), out.data(), out.size(), &retrieved);
  KVT_FUZZ_CHECK(static_cast<bool>(r), "the bystander still retrieves: " + r.message);
  KVT_FUZZ_CHECK(retrieved == tokens_.size(), "the bystander's pinned chunks are all still stored");
  KVT_FUZZ_CHECK(out == kv_, "the bystander's chunks are unchanged");
  // A client that closed its socket is noticed asynchronously: give the daemon a moment.
  kvt_daemon_stats_t stats;
  for (int attempt = 0;; ++attempt) {
    const kvt::Result s = client_.Stats(&stats);
    KVT_FUZZ_CHECK(static_cast<bool>(s), "the bystander reads the daemon's stats: " + s.message);
    if (stats.clients == 1) break;
    KVT_FUZZ_CHECK(attempt < 20000, "clients that went away leave no session behind (" +
                                       std::to_string(stats.clients) + " clients)");
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

void InProcessDaemon::Stop() {
  ns_ = kvt::Namespace();
  client_ = kvt::Client();
  daemon_->Shutdown();
  runner_.join();
  daemon_.reset();
  dir_.reset();
}

}  // namespace kvt::fuzz
