#include "daemon/session.h"

#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "host/numa_placement.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <vector>

namespace kvt::daemon {
namespace {

using protocol::CompletionEntry;
using protocol::Opcode;
using protocol::RingResult;
using protocol::SubmissionEntry;

constexpr size_t kMaxNamespacesPerSession = 1024;

void DrainEventFd(int fd) {
  uint64_t v;
  while (::read(fd, &v, sizeof v) > 0) {
  }
}

void Signal(int fd) {
  uint64_t one = 1;
  ssize_t n = ::write(fd, &one, sizeof one);
  (void)n;  // EAGAIN means the counter is already non-zero: the peer will wake anyway
}

}  // namespace

StatusOr<std::unique_ptr<Session>> Session::Create(uint64_t id, std::string tenant, PeerIdentity peer,
                                                   uint32_t ring_entries, uint64_t heap_bytes,
                                                   const SessionServices& services) {
  std::unique_ptr<Session> s(new Session());
  s->id_ = id;
  s->tenant_ = std::move(tenant);
  s->peer_ = peer;
  s->services_ = services;
  s->layout_ = protocol::RegionLayout::For(ring_entries, heap_bytes);
  KVT_ASSIGN_OR_RETURN(s->region_, SharedMemory::Create("kvt-client-" + std::to_string(id),
                                                        s->layout_.total_bytes, /*populate=*/false));
  s->sq_event_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  s->cq_event_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!s->sq_event_.valid() || !s->cq_event_.valid()) return ErrnoStatus("eventfd", errno);
  char* base = s->region_.data();
  protocol::SpscRing<SubmissionEntry>::Initialize(base + s->layout_.sq_offset);
  protocol::SpscRing<CompletionEntry>::Initialize(base + s->layout_.cq_offset);
  s->sq_ = protocol::SpscRing<SubmissionEntry>(base + s->layout_.sq_offset, ring_entries);
  s->cq_ = protocol::SpscRing<CompletionEntry>(base + s->layout_.cq_offset, ring_entries);
  s->heap_ = std::make_unique<HeapView>(base + s->layout_.heap_offset, s->layout_.heap_bytes);
  s->clients_gauge_ = &services.metrics->ClientsGauge(s->tenant_);
  if (services.sequence_metrics) {
    s->sequence_source_ = std::make_unique<SequenceMetrics::Source>(s->tenant_);
    services.sequence_metrics->Add(s->sequence_source_.get());
  }
  return s;
}

Session::~Session() { Stop(); }

protocol::HelloReply Session::Reply() const {
  protocol::HelloReply r{};
  r.magic = protocol::kReplyMagic;
  r.protocol_version = protocol::kProtocolVersion;
  r.status = static_cast<uint32_t>(StatusCode::kOk);
  r.ring_entries = layout_.ring_entries;
  r.region_bytes = layout_.total_bytes;
  r.sq_offset = layout_.sq_offset;
  r.cq_offset = layout_.cq_offset;
  r.messages_offset = layout_.messages_offset;
  r.heap_offset = layout_.heap_offset;
  r.heap_bytes = layout_.heap_bytes;
  r.session_id = id_;
  return r;
}

void Session::Start() {
  clients_gauge_->Increment();
  thread_ = std::thread([this] { Run(); });
}

void Session::Stop() {
  stop_.store(true, std::memory_order_release);
  if (sq_event_.valid()) Signal(sq_event_.get());
  if (thread_.joinable()) thread_.join();
  // Also after Cut (which sets stop_ first, from the ring thread): a cut client's pins and
  // gauges come back like a disconnected one's. Once only: Stop runs again from the destructor.
  if (released_.exchange(true, std::memory_order_acq_rel)) return;
  // The region is unmapped once Stop has returned.
  if (sequence_source_) services_.sequence_metrics->Retire(sequence_source_.get());
  if (!lease_.empty()) {
    spdlog::debug("session {}: releasing {} pins", id_, lease_.size());
    services_.block_plane->ReleaseLease(&lease_);
  }
  if (!gpu_lease_.empty()) {
    spdlog::debug("session {}: releasing {} GPU pins", id_, gpu_lease_.size());
    services_.block_plane->ReleaseGpuLease(&gpu_lease_);
  }
  services_.metrics->RingOccupancyGauge("submission").Decrement(reported_occupancy_);
  reported_occupancy_ = 0;
}

void Session::Cut(const std::string& why) {
  spdlog::warn("session {} (tenant {}, pid {}): {}; disconnecting it", id_, tenant_, peer_.pid, why);
  services_.metrics->BadRequest("corrupt_ring");
  stop_.store(true, std::memory_order_release);
  if (on_cut_) on_cut_();
}

void Session::SleepUntilWork(std::chrono::microseconds spin) {
  // Poll a little: a client in a tight loop submits again within microseconds. After the first
  // couple of microseconds, yield between polls, so that on a machine with more busy threads than
  // cores the client we are waiting for gets the CPU.
  auto now = std::chrono::steady_clock::now();
  auto pause_until = now + std::chrono::microseconds(2);
  auto spin_until = now + spin;
  while ((now = std::chrono::steady_clock::now()) < spin_until) {
    if (!sq_.Empty() || stop_.load(std::memory_order_relaxed)) return;
    if (now < pause_until) {
#if defined(__x86_64__)
      __builtin_ia32_pause();
#endif
    } else {
      sched_yield();
    }
  }
  if (!sq_.PrepareToWait()) return;
  pollfd p{sq_event_.get(), POLLIN, 0};
  ::poll(&p, 1, 200);  // bounded: re-checks stop_ even without a wake-up
  sq_.FinishWait();
  DrainEventFd(sq_event_.get());
}

void Session::PrefaultRegion() {
  // The client populated the region in its own page tables; ours are empty until the ring thread
  // touches each page, and a first touch inside a copy costs more than the copy. Slices keep
  // Stop() prompt for a client that leaves at once: Stop waits for the slice in progress, and
  // MADV_POPULATE_WRITE of pages the client already populated took 16 ms per 64 MiB in the 2-core
  // VM the project is built on (1-5 ms per 8 MiB), so 4 MiB slices bound that wait near 1 ms.
  constexpr uint64_t kSliceBytes = 4ull << 20;
  for (uint64_t off = 0; off < region_.size() && !stop_.load(std::memory_order_acquire); off += kSliceBytes) {
    if (Status s = region_.PrefaultForWrite(off, kSliceBytes); !s.ok()) {
      spdlog::debug("session {}: region not prefaulted: {}", id_, s.message());
      return;
    }
  }
}

std::chrono::microseconds Session::SpinAfter(const SubmissionEntry& entry, std::chrono::nanoseconds served) const {
  const std::chrono::microseconds idle(services_.idle_spin_us);
  const auto op = static_cast<Opcode>(entry.opcode);
  if ((op != Opcode::kStore && op != Opcode::kRetrieve) || entry.data_bytes == 0) return idle;
  // A client streaming a request in pieces copies its next piece while we copy this one, so the
  // next submission comes about one piece-time from now: wait that long (twice, for slack) before
  // paying for a sleep and a wake-up. Bounded, and the spin yields the CPU to anyone runnable.
  auto budget = std::chrono::duration_cast<std::chrono::microseconds>(2 * served);
  return std::clamp(budget, idle, std::max(idle, kMaxStreamSpin));
}

void Session::Run() {
  if (Status s = host::BindThreadToNumaNode(services_.numa_node); !s.ok()) {
    spdlog::debug("session {}: thread placement skipped: {}", id_, s.message());
  }
  PrefaultRegion();
  uint64_t served = 0;
  std::chrono::microseconds spin(services_.idle_spin_us);
  while (!stop_.load(std::memory_order_acquire)) {
    SubmissionEntry entry;
    RingResult r = sq_.TryPop(&entry);
    if (r == RingResult::kOk) {
      spin = SpinAfter(entry, Serve(entry));
      if (++served % 64 == 0) {  // sample the backlog now and then while busy
        double now = sq_.Occupancy();
        services_.metrics->RingOccupancyGauge("submission").Increment(now - reported_occupancy_);
        reported_occupancy_ = now;
      }
      continue;
    }
    if (r == RingResult::kCorrupt) {
      Cut("submission ring counters are inconsistent");
      break;
    }
    // Report occupancy changes while idle (cheap, and bounded in rate by the sleep).
    if (reported_occupancy_ != 0) {
      services_.metrics->RingOccupancyGauge("submission").Decrement(reported_occupancy_);
      reported_occupancy_ = 0;
    }
    SleepUntilWork(spin);
    spin = std::chrono::microseconds(services_.idle_spin_us);
  }
  clients_gauge_->Decrement();
}

std::chrono::nanoseconds Session::Serve(const SubmissionEntry& entry) {
  auto start = std::chrono::steady_clock::now();
  Outcome out = Dispatch(entry);
  std::chrono::nanoseconds took = std::chrono::steady_clock::now() - start;
  double seconds = std::chrono::duration<double>(took).count();
  auto op = entry.opcode < static_cast<uint16_t>(Opcode::kCount) ? static_cast<Opcode>(entry.opcode) : Opcode::kNop;
  services_.metrics->Observe(op, out.status.code(), seconds);
  Complete(entry.user_data, out);
  return took;
}

void Session::Complete(uint64_t user_data, const Outcome& outcome) {
  CompletionEntry c{};
  c.user_data = user_data;
  c.status = static_cast<uint32_t>(outcome.status.code());
  c.value = outcome.value;
  c.value2 = outcome.value2;
  for (;;) {
    uint32_t slot = cq_.NextPushSlot();
    if (!outcome.status.ok()) {
      char* msg = region_.data() + layout_.messages_offset + uint64_t{slot} * protocol::kMessageMax;
      const std::string& m = outcome.status.message();
      size_t n = std::min(m.size(), protocol::kMessageMax - 1);
      std::memcpy(msg, m.data(), n);
      msg[n] = '\0';
      c.has_message = 1;
    }
    RingResult r = cq_.TryPush(c);
    if (r == RingResult::kOk) break;
    if (r == RingResult::kCorrupt) {
      Cut("completion ring counters are inconsistent");
      return;
    }
    // Full: the client has more than ring_entries requests in flight or stopped reaping.
    if (stop_.load(std::memory_order_acquire)) return;
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  if (cq_.ConsumerNeedsWake()) Signal(cq_event_.get());
}

StatusOr<const tiering::Namespace*> Session::FindNamespace(uint32_t handle) const {
  auto it = namespaces_.find(handle);
  if (it == namespaces_.end()) return InvalidArgument("unknown namespace handle " + std::to_string(handle));
  return &it->second;
}

Session::Outcome Session::OpenNamespace(const SubmissionEntry& e) {
  if (namespaces_.size() >= kMaxNamespacesPerSession) {
    return {ResourceExhausted("a client may hold at most 1024 namespaces")};
  }
  if (e.data_bytes != sizeof(protocol::NamespaceRequest)) {
    return {InvalidArgument("namespace request must be " + std::to_string(sizeof(protocol::NamespaceRequest)) + " bytes")};
  }
  auto bytes = heap_->Bytes(e.data_offset, e.data_bytes, "namespace request");
  if (!bytes.ok()) return {bytes.status()};
  protocol::NamespaceRequest req;
  std::memcpy(&req, *bytes, sizeof req);  // one read: the client cannot change it under us
  auto model = protocol::ReadFixedString(req.model_id, sizeof req.model_id);
  if (!model.ok()) return {model.status().WithContext("model_id")};
  tiering::Layout layout;
  layout.model_id = *model;
  layout.num_layers = req.num_layers;
  layout.num_kv_heads = req.num_kv_heads;
  layout.head_dim = req.head_dim;
  layout.dtype = static_cast<tiering::Dtype>(req.dtype);
  layout.tokens_per_chunk = req.tokens_per_chunk;
  auto ns = tiering::MakeNamespace(std::move(layout), tenant_);
  if (!ns.ok()) return {ns.status()};
  if (services_.namespaces) services_.namespaces->Register(*ns);
  uint32_t handle = next_namespace_++;
  uint64_t chunk_bytes = ns->chunk_bytes;
  namespaces_.emplace(handle, std::move(*ns));
  return {Status::Ok(), handle, chunk_bytes};
}

Session::Outcome Session::Stats(const SubmissionEntry& e) {
  // A 1.0 client asks for the 1.0 part only: write what its buffer holds, say how much.
  if (e.data_bytes < protocol::kDaemonStatsV10Bytes) return {InvalidArgument("stats buffer too small")};
  const uint64_t n = std::min<uint64_t>(e.data_bytes, sizeof(protocol::DaemonStats));
  auto out = heap_->Bytes(e.data_offset, n, "stats buffer");
  if (!out.ok()) return {out.status()};
  protocol::DaemonStats stats = services_.stats();
  std::memcpy(*out, &stats, n);
  return {Status::Ok(), n};
}

Session::Outcome Session::GpuPoolInfo(const SubmissionEntry& e) {
  if (!services_.gpu_pool) {
    return {Unsupported("no GPU pool to map: the daemon runs without a GPU tier (--gpu-pool-bytes 0, no GPU, or "
                        "no CUDA) or with a simulated one")};
  }
  if (e.data_bytes != sizeof(protocol::GpuPoolInfo)) {
    services_.metrics->BadRequest("size");
    return {InvalidArgument("GPU pool info buffer must be " + std::to_string(sizeof(protocol::GpuPoolInfo)) + " bytes")};
  }
  auto out = heap_->Bytes(e.data_offset, e.data_bytes, "GPU pool info buffer");
  if (!out.ok()) {
    services_.metrics->BadRequest("range");
    return {out.status()};
  }
  std::memcpy(*out, &*services_.gpu_pool, sizeof(protocol::GpuPoolInfo));
  return {Status::Ok(), sizeof(protocol::GpuPoolInfo)};
}

Session::Outcome Session::GpuAcquire(const SubmissionEntry& e, const tiering::Namespace& ns,
                                     std::span<const uint32_t> tokens) {
  if (e.data_bytes % sizeof(uint64_t) != 0) {
    services_.metrics->BadRequest("size");
    return {InvalidArgument("GPU offsets buffer must hold whole uint64 entries")};
  }
  auto out = heap_->Bytes(e.data_offset, e.data_bytes, "GPU offsets buffer");
  if (!out.ok()) {
    services_.metrics->BadRequest("range");
    return {out.status()};
  }
  const uint64_t max_chunks = std::min<uint64_t>(e.data_bytes / sizeof(uint64_t), tokens.size());
  std::vector<uint64_t> offsets(max_chunks);
  tiering::PrefixResult r =
      services_.block_plane->GpuAcquire(ns, tokens, offsets.data(), max_chunks, &gpu_lease_);
  const uint64_t pinned = std::min<uint64_t>(r.value / ns.layout.tokens_per_chunk, max_chunks);
  if (pinned > 0) std::memcpy(*out, offsets.data(), pinned * sizeof(uint64_t));  // none: offsets.data() may be null
  return {r.status, r.value};
}

bool Session::Privileged() const { return peer_.uid == 0 || peer_.uid == services_.daemon_uid; }

Session::Outcome Session::ListNamespaces(const SubmissionEntry& e) {
  if (!Privileged()) return {PermissionDenied("listing namespaces requires the daemon's user or root")};
  std::vector<protocol::NamespaceListing> all = services_.namespaces->List(services_.block_store->index());
  uint64_t fit = std::min<uint64_t>(all.size(), e.data_bytes / sizeof(protocol::NamespaceListing));
  auto out = heap_->Bytes(e.data_offset, fit * sizeof(protocol::NamespaceListing), "listing buffer");
  if (!out.ok()) return {out.status()};
  std::memcpy(*out, all.data(), fit * sizeof(protocol::NamespaceListing));
  return {Status::Ok(), fit, all.size()};
}

Session::Outcome Session::Evict(const SubmissionEntry& e) {
  if (!Privileged()) {
    return {PermissionDenied("evict requires the daemon's user or root")};
  }
  return {Status::Ok(), services_.block_store->Evict(e.arg0, tiering::EvictionReason::kOperator)};
}

Session::Outcome Session::Persist(const SubmissionEntry& e) {
  if (!services_.persist) return {Unsupported("the daemon runs without an NVMe tier: nothing can be made durable")};
  // Blocks this client's ring (not other clients) until the write-back is durable.
  Deadline deadline = e.arg0 ? Deadline::FromTimeoutNs(static_cast<int64_t>(std::min<uint64_t>(e.arg0, INT64_MAX)))
                             : Deadline::After(std::chrono::seconds(60));
  return {services_.persist(deadline)};
}

Session::Outcome Session::RegisterSequenceStats(const SubmissionEntry& e) {
  if (!sequence_source_) return {Unsupported("this daemon does not collect sequence statistics")};
  if (e.data_bytes != sizeof(protocol::SequenceStatsBlock) && e.data_bytes != protocol::kSequenceStatsV1Bytes) {
    services_.metrics->BadRequest("size");
    return {InvalidArgument("sequence statistics block must be " + std::to_string(sizeof(protocol::SequenceStatsBlock)) +
                            " bytes (version " + std::to_string(protocol::kSequenceStatsVersion) + ") or " +
                            std::to_string(protocol::kSequenceStatsV1Bytes) + " (version 1), got " +
                            std::to_string(e.data_bytes))};
  }
  if (e.data_offset % alignof(protocol::SequenceStatsBlock) != 0) {
    services_.metrics->BadRequest("range");
    return {InvalidArgument("sequence statistics block offset is not 8-byte aligned")};
  }
  auto block = heap_->Bytes(e.data_offset, e.data_bytes, "sequence statistics block");
  if (!block.ok()) {
    services_.metrics->BadRequest("range");
    return {block.status()};
  }
  uint32_t head[2];  // magic and version
  std::memcpy(head, *block, sizeof head);
  if (head[0] != protocol::kSequenceStatsMagic) {
    services_.metrics->BadRequest("sequence_stats");
    return {InvalidArgument("sequence statistics block: bad magic")};
  }
  if (protocol::SequenceStatsBytes(head[1]) != e.data_bytes) {
    services_.metrics->BadRequest("sequence_stats");
    return {InvalidArgument("sequence statistics block: version " + std::to_string(head[1]) + " with " +
                            std::to_string(e.data_bytes) + " bytes (version " +
                            std::to_string(protocol::kSequenceStatsVersion) + " is " +
                            std::to_string(sizeof(protocol::SequenceStatsBlock)) + " bytes, version 1 is " +
                            std::to_string(protocol::kSequenceStatsV1Bytes) + ")")};
  }
  sequence_source_->SetBlock(*block, head[1]);
  return {Status::Ok()};
}

Session::Outcome Session::Dispatch(const SubmissionEntry& e) {
  if (e.opcode >= static_cast<uint16_t>(Opcode::kCount)) {
    services_.metrics->BadRequest("opcode");
    return {Unsupported("unknown opcode " + std::to_string(e.opcode))};
  }
  if (e.flags != 0 || e.arg1 != 0) {
    services_.metrics->BadRequest("reserved_field");
    return {InvalidArgument("reserved fields (flags, arg1) must be zero")};
  }
  auto op = static_cast<Opcode>(e.opcode);
  switch (op) {
    case Opcode::kNop: return {Status::Ok()};
    case Opcode::kOpenNamespace: return OpenNamespace(e);
    case Opcode::kCloseNamespace:
      return namespaces_.erase(e.ns) ? Outcome{Status::Ok()}
                                     : Outcome{InvalidArgument("unknown namespace handle " + std::to_string(e.ns))};
    case Opcode::kStats: return Stats(e);
    case Opcode::kEvict: return Evict(e);
    case Opcode::kListNamespaces: return ListNamespaces(e);
    case Opcode::kPersist: return Persist(e);
    case Opcode::kRegisterSequenceStats: return RegisterSequenceStats(e);
    case Opcode::kGpuPoolInfo: return GpuPoolInfo(e);
    default: break;
  }

  // Prefix operations: a namespace and a token array, all bounds-checked.
  auto ns = FindNamespace(e.ns);
  if (!ns.ok()) {
    services_.metrics->BadRequest("namespace");
    return {ns.status()};
  }
  auto tokens = heap_->Tokens(e.tokens_offset, e.num_tokens);
  if (!tokens.ok()) {
    services_.metrics->BadRequest("range");
    return {tokens.status()};
  }
  tiering::BlockPlane& plane = *services_.block_plane;
  tiering::PrefixResult r;
  switch (op) {
    case Opcode::kStore:
    case Opcode::kRetrieve: {
      auto data = heap_->Bytes(e.data_offset, e.data_bytes, "kv buffer");
      if (!data.ok()) {
        services_.metrics->BadRequest("range");
        return {data.status()};
      }
      r = op == Opcode::kStore ? plane.Store(**ns, *tokens, e.arg0, *data, e.data_bytes)
                               : plane.Retrieve(**ns, *tokens, e.arg0, *data, e.data_bytes);
      if (r.status.code() == StatusCode::kInvalidArgument) services_.metrics->BadRequest("size");
      break;
    }
    case Opcode::kLookup: r = plane.Lookup(**ns, *tokens); break;
    case Opcode::kRemove: r = plane.Remove(**ns, *tokens); break;
    case Opcode::kPin: r = plane.Pin(**ns, *tokens, &lease_); break;
    case Opcode::kUnpin: r = plane.Unpin(**ns, *tokens, &lease_); break;
    case Opcode::kGpuAcquire: return GpuAcquire(e, **ns, *tokens);
    case Opcode::kGpuRelease: r = plane.GpuRelease(**ns, *tokens, &gpu_lease_); break;
    default: return {Internal("unhandled opcode")};
  }
  return {r.status, r.value};
}

}  // namespace kvt::daemon
