// The wire protocol as a hostile or buggy client speaks it: raw submission entries (any opcode,
// flags, namespace handle, offsets, lengths and arguments) over a shared heap holding any bytes,
// sent through a real session of an in-process kv-tierd.
//
// Input: [u16 n][n bytes copied to the start of the client's heap][64-byte submission entries,
// the last one zero-padded; user_data is the connection's]. Each input runs on a new connection.
// Properties: the daemon answers every entry (no TIMEOUT, no DISCONNECTED: a bad request is an
// error completion, never a cut or a hang); and a bystander client's pinned chunks, stored before
// any input, still retrieve bit for bit after it (a bad request loses nothing already stored),
// and the client's session is gone once it closes (in_process_daemon.h).
#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "client/connection.h"
#include "kvt/kvt.h"
#include "protocol/ops.h"
#include "tests/fuzz/fuzz_target.h"
#include "tests/fuzz/in_process_daemon.h"

namespace {

using kvt::protocol::Opcode;
using kvt::protocol::SubmissionEntry;

constexpr uint64_t kHeapBytes = kvt::fuzz::InProcessDaemon::kHeapBytes;
constexpr size_t kMaxEntries = 32;
constexpr auto kAnswerWithin = std::chrono::seconds(10);

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
  kvt::fuzz::InProcessDaemon& daemon = kvt::fuzz::InProcessDaemon::Get();
  kvt::client::ConnectionOptions options;
  options.socket_path = daemon.socket();
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
  daemon.CheckBystander();
  return 0;
}
