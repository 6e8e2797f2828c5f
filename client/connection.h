// Connection — libkvtier's link to kv-tierd: the handshake, the mapped shared region, the rings,
// the op table and the shared-heap allocator. The C ABI (c_api.cc) is a thin layer over it.
//
// Threading: every method may be called from any thread. Submissions are serialized by one
// mutex (the submission ring has one producer); completions are reaped by whichever waiting
// thread gets there first, the others wait on a condition variable. A waiter first polls the
// completion ring for `spin_us` microseconds (longer when Wait is told the op takes a while), then
// sleeps on the completion eventfd and the control socket together, so a dead daemon is noticed
// at once (DISCONNECTED), never as a hang.
//
// Ops: at most ring_entries are in flight, so neither ring can overflow. Each op may carry two
// callbacks run when its completion is reaped, under the connection's lock: `deliver` (copying
// staged results into the caller's memory) runs only if the op was not released, `cleanup`
// (freeing staging) always runs exactly once — also for ops released after a timeout, so memory
// the daemon may still write is never reused early and memory the caller gave up is never touched.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/deadline.h"
#include "common/extent_allocator.h"
#include "common/shared_memory.h"
#include "common/status_or.h"
#include "common/unique_fd.h"
#include "protocol/handshake.h"
#include "protocol/ops.h"
#include "protocol/spsc_ring.h"

namespace kvt::client {

struct ConnectionOptions {
  std::string socket_path;   // empty: protocol::DefaultSocketPath()
  std::string tenant = "default";
  uint64_t heap_bytes = 0;   // 0: the daemon's default
  uint32_t ring_entries = 0; // 0: the daemon's default
  std::chrono::nanoseconds timeout = std::chrono::seconds(10);
  uint32_t spin_us = 50;
};

struct OpResult {
  Status status;
  uint64_t value = 0;
  uint64_t value2 = 0;
};

class Connection {
 public:
  using OpId = uint64_t;  // generation << 32 | slot
  using Finalizer = std::function<void(OpResult& result)>;

  static StatusOr<std::unique_ptr<Connection>> Open(const ConnectionOptions& options);
  ~Connection();

  // Pushes `entry` (user_data is assigned here). Waits, bounded by `deadline`, while all op
  // slots are busy. If submission fails, `cleanup` runs before returning.
  StatusOr<OpId> Submit(protocol::SubmissionEntry entry, Finalizer deliver, Finalizer cleanup, Deadline deadline);
  // Waits for the op; on anything but TIMEOUT the op is finished and its id is no longer valid.
  // The wait polls the completion ring for at least `spin` (and the connection's spin_us) before
  // sleeping: a caller that knows the op takes a while (a large copy) polls through it instead of
  // paying for a wake-up, which costs more than the poll on an idle virtual CPU.
  OpResult Wait(OpId op, Deadline deadline, std::chrono::microseconds spin = {});
  // BUSY while pending; otherwise like Wait.
  OpResult Poll(OpId op);
  // Forgets a pending op: its cleanup still runs when it completes; its deliver does not.
  void Release(OpId op);
  // Submit + Wait.
  OpResult Call(protocol::SubmissionEntry entry, Deadline deadline);

  // The shared heap: buffers the daemon reads and writes in place.
  StatusOr<uint64_t> AllocateHeap(uint64_t bytes);
  void FreeHeap(uint64_t offset, uint64_t bytes);
  // Staging space: like AllocateHeap, but waits (reaping completions) for in-flight ops to give
  // space back, up to the deadline.
  StatusOr<uint64_t> AllocateStaging(uint64_t bytes, Deadline deadline);
  // Buffers handed to the application (kvt_buffer_alloc): remembered so Free needs only the pointer.
  StatusOr<uint64_t> AllocateUserBuffer(uint64_t bytes);
  Status FreeUserBuffer(uint64_t offset);
  char* heap() const { return heap_; }
  uint64_t heap_bytes() const { return heap_bytes_; }
  uint64_t heap_used_bytes() const { return heap_allocator_->used_bytes(); }  // page-rounded extents
  // True (and the offset) when [p, p+bytes) lies inside the heap.
  bool InHeap(const void* p, uint64_t bytes, uint64_t* offset) const;
  uint64_t RoundToPage(uint64_t bytes) const { return heap_allocator_->RoundUp(bytes); }

  Deadline DefaultDeadline() const { return Deadline::After(options_.timeout); }
  std::chrono::nanoseconds timeout() const { return options_.timeout; }
  uint32_t ring_entries() const { return ring_entries_; }
  uint64_t session_id() const { return session_id_; }
  // The wire-protocol version the daemon answered the handshake with (major << 16 | minor).
  uint32_t daemon_protocol_version() const { return daemon_protocol_version_; }

 private:
  struct OpSlot {
    enum class State { kFree, kPending, kDone, kAbandoned } state = State::kFree;
    uint32_t generation = 0;
    OpResult result;
    Finalizer deliver;
    Finalizer cleanup;
  };

  Connection() = default;
  Status Handshake(Deadline deadline);
  // Makes progress while holding `lock`: reaps completions if no one else is, else waits for
  // the reaper. Returns DISCONNECTED or TIMEOUT when waiting is over.
  Status ProgressLocked(std::unique_lock<std::mutex>& lock, Deadline deadline, std::chrono::microseconds spin = {});
  bool ReapLocked();  // true if any completion was reaped
  void WaitForSignal(Deadline deadline, std::chrono::microseconds spin);  // without the lock
  void MarkDisconnectedLocked(const std::string& why);
  OpResult TakeResultLocked(uint32_t slot);
  void FreeSlotLocked(uint32_t slot);
  OpSlot* FindLocked(OpId op);

  ConnectionOptions options_;
  UniqueFd socket_;
  UniqueFd sq_event_;
  UniqueFd cq_event_;
  SharedMemory region_;
  protocol::SpscRing<protocol::SubmissionEntry> sq_;
  protocol::SpscRing<protocol::CompletionEntry> cq_;
  const char* messages_ = nullptr;
  char* heap_ = nullptr;
  uint64_t heap_bytes_ = 0;
  uint32_t ring_entries_ = 0;
  uint64_t session_id_ = 0;
  uint32_t daemon_protocol_version_ = 0;
  std::unique_ptr<ExtentAllocator> heap_allocator_;
  std::mutex buffers_mu_;
  std::unordered_map<uint64_t, uint64_t> user_buffers_;  // offset -> bytes

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<OpSlot> slots_;
  std::vector<uint32_t> free_slots_;
  bool reaping_ = false;
  bool disconnected_ = false;
  std::string disconnect_reason_;
};

}  // namespace kvt::client
