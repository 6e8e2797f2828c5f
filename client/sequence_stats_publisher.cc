#include "client/sequence_stats_publisher.h"

#include <atomic>
#include <cstring>

namespace kvt::client {
namespace {

void Add(uint64_t& field, int64_t delta) {
  if (delta != 0) std::atomic_ref<uint64_t>(field).fetch_add(static_cast<uint64_t>(delta), std::memory_order_relaxed);
}

}  // namespace

StatusOr<std::shared_ptr<SequenceStatsPublisher>> SequenceStatsPublisher::Create(Connection& connection) {
  // A daemon older than protocol 1.3 takes version-1 blocks only.
  const bool v2 = (connection.daemon_protocol_version() & 0xffff) >= 3;
  const uint32_t version = v2 ? protocol::kSequenceStatsVersion : protocol::kSequenceStatsVersion1;
  const size_t bytes = protocol::SequenceStatsBytes(version);
  KVT_ASSIGN_OR_RETURN(uint64_t offset, connection.AllocateHeap(sizeof(protocol::SequenceStatsBlock)));
  auto* block = reinterpret_cast<protocol::SequenceStatsBlock*>(connection.heap() + offset);
  std::memset(block, 0, sizeof *block);
  block->magic = protocol::kSequenceStatsMagic;
  block->version = version;
  protocol::SubmissionEntry e{};
  e.opcode = static_cast<uint16_t>(protocol::Opcode::kRegisterSequenceStats);
  e.data_offset = offset;
  e.data_bytes = bytes;
  OpResult r = connection.Call(e, connection.DefaultDeadline());
  if (!r.status.ok()) {
    // TIMEOUT leaves the op in flight: the daemon may still read the block, so keep it allocated.
    if (r.status.code() != StatusCode::kTimeout) connection.FreeHeap(offset, sizeof *block);
    if (r.status.code() == StatusCode::kUnsupported) {
      return Unsupported("the daemon does not take sequence statistics (protocol older than 1.1): " +
                         r.status.message());
    }
    return r.status.WithContext("registering the sequence statistics block");
  }
  return std::shared_ptr<SequenceStatsPublisher>(new SequenceStatsPublisher(block, v2));
}

bool SequenceStatsPublisher::Delta::Empty() const {
  if (sequences != 0 || host_tier_heap_bytes != 0 || fetch_policy >= 0) return false;
  for (int p = 0; p < protocol::kSequencePolicies; ++p) {
    if (bytes[p] != 0 || layer_tokens[p] != 0 || hidden_ns[p] != 0 || exposed_ns[p] != 0) return false;
  }
  return true;
}

void SequenceStatsPublisher::Apply(const Delta& d) {
  std::lock_guard lock(mu_);
  if (block_ == nullptr) return;
  Add(block_->sequences, d.sequences);
  if (has_heap_field_) Add(block_->host_tier_heap_bytes, d.host_tier_heap_bytes);
  for (int p = 0; p < protocol::kSequencePolicies; ++p) {
    protocol::SequenceStatsPolicy& f = block_->policy[p];
    Add(f.bytes, d.bytes[p]);
    Add(f.layer_tokens, d.layer_tokens[p]);
    Add(f.transfer_hidden_ns, d.hidden_ns[p]);
    Add(f.transfer_exposed_ns, d.exposed_ns[p]);
  }
  if (d.fetch_policy >= 0 && d.fetch_policy < protocol::kSequencePolicies) {
    protocol::SequenceStatsPolicy& f = block_->policy[d.fetch_policy];
    std::atomic_ref<uint64_t>(f.fetch_steps[protocol::FetchBucketFor(d.fetch_bytes)])
        .fetch_add(1, std::memory_order_relaxed);
    std::atomic_ref<uint64_t>(f.fetch_bytes).fetch_add(d.fetch_bytes, std::memory_order_relaxed);
  }
}

void SequenceStatsPublisher::Detach() {
  std::lock_guard lock(mu_);
  block_ = nullptr;
}

}  // namespace kvt::client
