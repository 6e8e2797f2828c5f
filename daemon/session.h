// Session — one connected client: its shared region, its rings, its namespaces and pins, and
// the thread that serves its submission ring.
//
// Lifecycle: Create() builds the region and eventfds (sent to the client by the Server), Start()
// launches the ring thread, Stop() (idempotent; from any thread) ends it and returns everything
// the client held: pins are released, the region is unmapped, heap accounting is returned.
// A client that corrupts its ring is cut off (the session stops); other sessions never notice.
//
// The ring thread first maps the whole region into the daemon's page tables (so no request pays
// for page faults), then serves. It polls for `idle_spin_us` after the last request, then sleeps
// on the submission eventfd, so a busy client submits without system calls. After a store or
// retrieve with data it polls for about twice that request's service time instead (at most
// kMaxStreamSpin): a client streaming a large request in pieces submits the next one by then.
#pragma once

#include <sys/types.h>

#include <utility>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>

#include "common/deadline.h"
#include "common/shared_memory.h"
#include "common/unique_fd.h"
#include "daemon/heap_view.h"
#include "daemon/namespace_registry.h"
#include "daemon/sequence_metrics.h"
#include "daemon/session_metrics.h"
#include "protocol/handshake.h"
#include "protocol/ops.h"
#include "protocol/region_layout.h"
#include "protocol/spsc_ring.h"
#include "protocol/version.h"
#include "tiering/block_plane.h"

namespace kvt::daemon {

// The longest a ring thread polls for the next piece of a streamed request before sleeping.
inline constexpr std::chrono::microseconds kMaxStreamSpin{2000};

struct PeerIdentity {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

// What sessions share: the daemon's services.
struct SessionServices {
  tiering::BlockPlane* block_plane = nullptr;
  tiering::BlockStore* block_store = nullptr;
  SessionMetrics* metrics = nullptr;
  SequenceMetrics* sequence_metrics = nullptr;  // null: kRegisterSequenceStats is UNSUPPORTED
  NamespaceRegistry* namespaces = nullptr;
  std::function<protocol::DaemonStats()> stats;  // a snapshot for kStats
  std::function<Status(Deadline)> persist;       // kPersist; empty without an NVMe tier
  uid_t daemon_uid = 0;
  uint32_t idle_spin_us = 50;
  int numa_node = -1;  // ring threads run on the host arena's node
  std::optional<protocol::GpuPoolInfo> gpu_pool;  // the GPU tier's export; absent without the tier
};

class Session {
 public:
  static StatusOr<std::unique_ptr<Session>> Create(uint64_t id, std::string tenant, PeerIdentity peer,
                                                   uint32_t ring_entries, uint64_t heap_bytes,
                                                   const SessionServices& services);
  ~Session();

  void Start();
  void Stop();

  // The reply to send, and the fds to pass with it: region memfd, sq eventfd, cq eventfd.
  protocol::HelloReply Reply() const;
  std::vector<int> FdsToPass() const { return {region_.fd(), sq_event_.get(), cq_event_.get()}; }

  // Called (on the ring thread) when the session cuts its client off for a corrupt ring.
  void set_on_cut(std::function<void()> on_cut) { on_cut_ = std::move(on_cut); }

  uint64_t id() const { return id_; }
  const std::string& tenant() const { return tenant_; }
  const PeerIdentity& peer() const { return peer_; }
  uint64_t heap_bytes() const { return layout_.heap_bytes; }
  bool stopped() const { return stop_.load(std::memory_order_acquire); }

 private:
  Session() = default;

  struct Outcome {
    Status status;
    uint64_t value = 0;
    uint64_t value2 = 0;
  };

  void Run();
  // Dispatches and completes one entry; returns how long dispatching took.
  std::chrono::nanoseconds Serve(const protocol::SubmissionEntry& entry);
  Outcome Dispatch(const protocol::SubmissionEntry& entry);
  Outcome OpenNamespace(const protocol::SubmissionEntry& entry);
  Outcome Stats(const protocol::SubmissionEntry& entry);
  Outcome Evict(const protocol::SubmissionEntry& entry);
  Outcome ListNamespaces(const protocol::SubmissionEntry& entry);
  bool Privileged() const;
  Outcome Persist(const protocol::SubmissionEntry& entry);
  Outcome RegisterSequenceStats(const protocol::SubmissionEntry& entry);
  Outcome GpuPoolInfo(const protocol::SubmissionEntry& entry);
  // kGpuAcquire, once the namespace and tokens are checked.
  Outcome GpuAcquire(const protocol::SubmissionEntry& entry, const tiering::Namespace& ns,
                     std::span<const uint32_t> tokens);
  StatusOr<const tiering::Namespace*> FindNamespace(uint32_t handle) const;
  // Posts a completion, waiting (bounded by Stop) for CQ space if a client stopped draining.
  void Complete(uint64_t user_data, const Outcome& outcome);
  void SleepUntilWork(std::chrono::microseconds spin);
  void PrefaultRegion();
  // How long to poll after serving `entry` in `served` before sleeping.
  std::chrono::microseconds SpinAfter(const protocol::SubmissionEntry& entry, std::chrono::nanoseconds served) const;
  void Cut(const std::string& why);

  uint64_t id_ = 0;
  std::string tenant_;
  PeerIdentity peer_;
  SessionServices services_;
  protocol::RegionLayout layout_;
  SharedMemory region_;
  UniqueFd sq_event_;
  UniqueFd cq_event_;
  protocol::SpscRing<protocol::SubmissionEntry> sq_;
  protocol::SpscRing<protocol::CompletionEntry> cq_;
  std::unique_ptr<HeapView> heap_;

  // Touched only by the ring thread (and by Stop after it has joined).
  std::unordered_map<uint32_t, tiering::Namespace> namespaces_;
  uint32_t next_namespace_ = 1;
  tiering::PinLease lease_;
  tiering::PinLease gpu_lease_;  // chunks this client pinned on the GPU
  double reported_occupancy_ = 0;

  std::atomic<bool> stop_{false};       // set by Stop, or by Cut from the ring thread
  std::atomic<bool> released_{false};   // pins and gauges given back (once, by Stop)
  std::thread thread_;
  prometheus::Gauge* clients_gauge_ = nullptr;
  // The client's sequence-plane block, read at scrape time; retired by Stop before the region goes.
  std::unique_ptr<SequenceMetrics::Source> sequence_source_;
  std::function<void()> on_cut_;
};

}  // namespace kvt::daemon
