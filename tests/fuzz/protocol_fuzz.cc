// The wire protocol as a hostile or buggy client speaks it: raw submission entries (any opcode,
// flags, namespace handle, offsets, lengths and arguments) over a shared heap holding any bytes,
// sent through a real session of an in-process kv-tierd.
//
// Input: [u16 n][n bytes copied to the start of the client's heap][64-byte submission entries,
// the last one zero-padded; user_data is the connection's]. Each input runs on a new connection.
// Properties: the daemon answers every entry (no TIMEOUT, no DISCONNECTED: a bad request is an
// error completion, never a cut or a hang); and a bystander client's pinned chunks, stored before
// any input, still retrieve bit for bit after it (a bad request loses nothing already stored).
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "client/connection.h"
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "kvt/kvt.hpp"
#include "protocol/ops.h"
#include "tests/fuzz/fuzz_target.h"

namespace {

using kvt::protocol::Opcode;
using kvt::protocol::SubmissionEntry;

constexpr uint64_t kHeapBytes = 1ull << 20;
constexpr size_t kMaxEntries = 32;
constexpr uint64_t kBystanderTokens = 64;
constexpr auto kAnswerWithin = std::chrono::seconds(10);

kvt_layout_t BystanderLayout() {
  kvt_layout_t l;
  kvt_layout_init(&l);
  l.model_id = "bystander";
  l.num_layers = 2;
  l.num_kv_heads = 2;
  l.head_dim = 16;
  l.dtype = KVT_DTYPE_F16;
  l.tokens_per_chunk = 16;
  return l;
}

// A daemon started on the first input and kept for the process's life, and a bystander client
// whose pinned chunks every input must leave intact.
class World {
 public:
  static World& Get() {
    // Stopped at exit, before the libraries' statics it uses go.
    static World* world = [] {
      auto* w = new World();
      std::atexit([] { Get().Stop(); });
      return w;
    }();
    return *world;
  }

  const std::string& socket() const { return socket_; }

  void CheckBystander() {
    std::vector<char> out(kv_.size());
    uint64_t retrieved = 0;
    const kvt::Result r = ns_.Retrieve(tokens_.data(), tokens_.size(), out.data(), out.size(), &retrieved);
    KVT_FUZZ_CHECK(static_cast<bool>(r), "the bystander still retrieves: " + r.message);
    KVT_FUZZ_CHECK(retrieved == tokens_.size(), "the bystander's pinned chunks are all still stored");
    KVT_FUZZ_CHECK(out == kv_, "the bystander's chunks are unchanged");
  }

 private:
  World() {
    char tmpl[] = "/tmp/kvt-protocol-fuzz-XXXXXX";
    KVT_FUZZ_CHECK(mkdtemp(tmpl) != nullptr, "temporary directory");
    dir_ = tmpl;
    kvt::daemon::DaemonConfig c = kvt::daemon::DefaultConfig();
    c.socket_path = dir_ + "/kv-tierd.sock";
    c.data_dir = dir_ + "/data";
    c.metrics_address = "";
    c.host_capacity_bytes = 64ull << 20;
    c.lock_memory = false;
    c.nvme.enabled = false;
    c.default_heap_bytes = kHeapBytes;
    c.max_heap_bytes = 8 * kHeapBytes;
    c.total_heap_bytes = 64 * kHeapBytes;
    c.default_ring_entries = 64;
    spdlog::set_level(spdlog::level::err);  // refused requests are logged; an input makes many
    auto daemon = kvt::daemon::Daemon::Create(c);
    KVT_FUZZ_CHECK(daemon.ok(), "the daemon starts: " + daemon.status().ToString());
    daemon_ = std::move(*daemon);
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
    kv_.resize(kBystanderTokens / 16 * 2 * 2 * 2 * 16 * 16 * 2);  // chunks * layers * K,V * heads * tokens * dim * fp16
    for (size_t i = 0; i < kv_.size(); ++i) kv_[i] = static_cast<char>(i * 131 + 7);
    r = ns_.Store(tokens_.data(), tokens_.size(), kv_.data(), kv_.size());
    KVT_FUZZ_CHECK(static_cast<bool>(r), "the bystander stores: " + r.message);
    uint64_t pinned = 0;
    r = ns_.Pin(tokens_.data(), tokens_.size(), &pinned);
    KVT_FUZZ_CHECK(static_cast<bool>(r) && pinned == kBystanderTokens, "the bystander pins: " + r.message);
  }

  void Stop() {
    ns_ = kvt::Namespace();
    client_ = kvt::Client();
    daemon_->Shutdown();
    runner_.join();
    daemon_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  std::string dir_, socket_;
  std::unique_ptr<kvt::daemon::Daemon> daemon_;
  std::thread runner_;
  kvt::Client client_;
  kvt::Namespace ns_;
  std::vector<uint32_t> tokens_;
  std::vector<char> kv_;
};

SubmissionEntry Entry(Opcode op, uint32_t ns = 0, uint64_t tokens_offset = 0, uint64_t num_tokens = 0,
                      uint64_t data_offset = 0, uint64_t data_bytes = 0, uint64_t arg0 = 0) {
  SubmissionEntry e{};
  e.opcode = static_cast<uint16_t>(op);
  e.ns = ns;
  e.tokens_offset = tokens_offset;
  e.num_tokens = num_tokens;
  e.data_offset = data_offset;
  e.data_bytes = data_bytes;
  e.arg0 = arg0;
  return e;
}

}  // namespace

namespace kvt::fuzz {

std::vector<std::vector<uint8_t>> Seeds() {
  // Heap: a NamespaceRequest at 0, 64 token ids at 512; KV (zeros) at 64 KiB, outputs above.
  protocol::NamespaceRequest request{};
  std::strcpy(request.model_id, "fuzz-model");
  request.num_layers = 2;
  request.num_kv_heads = 2;
  request.head_dim = 16;
  request.dtype = KVT_DTYPE_F16;
  request.tokens_per_chunk = 16;
  std::vector<uint8_t> heap(512 + 64 * 4);
  std::memcpy(heap.data(), &request, sizeof(request));
  for (uint32_t i = 0; i < 64; ++i) {
    const uint32_t token = 1000 + i;
    std::memcpy(heap.data() + 512 + 4 * i, &token, 4);
  }
  const uint64_t chunk = 2 * 2 * 2 * 16 * 16 * 2;  // one 16-token chunk of the layout above
  const SubmissionEntry session[] = {
      Entry(Opcode::kOpenNamespace, 0, 0, 0, 0, sizeof(request)),
      Entry(Opcode::kStore, 1, 512, 64, 65536, 4 * chunk, 0),
      Entry(Opcode::kLookup, 1, 512, 64),
      Entry(Opcode::kRetrieve, 1, 512, 64, 131072, 4 * chunk, 0),
      Entry(Opcode::kPin, 1, 512, 32),
      Entry(Opcode::kStats, 0, 0, 0, 262144, sizeof(protocol::DaemonStats)),
      Entry(Opcode::kListNamespaces, 0, 0, 0, 262144, 4096),
      Entry(Opcode::kEvict, 0, 0, 0, 0, 0, 1ull << 20),
      Entry(Opcode::kUnpin, 1, 512, 32),
      Entry(Opcode::kGpuAcquire, 1, 512, 16, 262144, 64),
      Entry(Opcode::kGpuRelease, 1, 512, 16),
      Entry(Opcode::kGpuPoolInfo, 0, 0, 0, 262144, 4096),
      Entry(Opcode::kRemove, 1, 512, 64),
      Entry(Opcode::kPersist),
      Entry(Opcode::kCloseNamespace, 1),
      Entry(Opcode::kNop),
  };
  auto input = [&](const SubmissionEntry* entries, size_t n) {
    std::vector<uint8_t> in(2);
    const uint16_t len = static_cast<uint16_t>(heap.size());
    std::memcpy(in.data(), &len, 2);
    in.insert(in.end(), heap.begin(), heap.end());
    const auto* p = reinterpret_cast<const uint8_t*>(entries);
    in.insert(in.end(), p, p + n * sizeof(SubmissionEntry));
    return in;
  };
  // The whole session, and its namespace opened and used one operation at a time.
  std::vector<std::vector<uint8_t>> seeds{input(session, std::size(session))};
  for (size_t i = 1; i < std::size(session); ++i) {
    const SubmissionEntry pair[] = {session[0], session[i]};
    seeds.push_back(input(pair, 2));
  }
  return seeds;
}

}  // namespace kvt::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  World& world = World::Get();
  kvt::client::ConnectionOptions options;
  options.socket_path = world.socket();
  options.tenant = "fuzz";
  options.heap_bytes = kHeapBytes;
  options.timeout = kAnswerWithin;
  auto connection = kvt::client::Connection::Open(options);
  KVT_FUZZ_CHECK(connection.ok(), "a client connects: " + connection.status().ToString());

  uint16_t heap_len = 0;
  if (size >= 2) std::memcpy(&heap_len, data, 2);
  size_t at = std::min<size_t>(size, 2);
  const size_t copy = std::min<size_t>(heap_len, size - at);
  if (copy > 0) std::memcpy((*connection)->heap(), data + at, copy);
  at += copy;
  for (size_t n = 0; n < kMaxEntries && at < size; ++n, at += sizeof(SubmissionEntry)) {
    SubmissionEntry entry{};
    std::memcpy(&entry, data + at, std::min(sizeof(entry), size - at));
    const kvt::client::OpResult result = (*connection)->Call(entry, kvt::Deadline::After(kAnswerWithin));
    const kvt::StatusCode code = result.status.code();
    KVT_FUZZ_CHECK(code != kvt::StatusCode::kTimeout && code != kvt::StatusCode::kDisconnected,
                   "the daemon answers entry " + std::to_string(n) + " (opcode " + std::to_string(entry.opcode) +
                       "): " + result.status.ToString());
    if (result.status.ok()) kvt::fuzz::CountAccepted();
  }
  connection->reset();
  world.CheckBystander();
  return 0;
}
