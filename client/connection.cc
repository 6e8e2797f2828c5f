#include "client/connection.h"

#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "protocol/default_socket.h"
#include "protocol/fd_passing.h"
#include "protocol/region_layout.h"
#include "protocol/version.h"

namespace kvt::client {
namespace {

using protocol::CompletionEntry;
using protocol::RingResult;
using protocol::SubmissionEntry;

StatusOr<UniqueFd> ConnectUnix(const std::string& path, Deadline deadline) {
  if (path.size() >= sizeof(sockaddr_un::sun_path)) return InvalidArgument("socket path too long: " + path);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoStatus("socket", errno);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  for (;;) {
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return fd;
    if (errno == EINTR) continue;
    if ((errno == EAGAIN) && !deadline.expired()) {  // listen backlog full: retry briefly
      ::usleep(1000);
      continue;
    }
    if (errno == ENOENT || errno == ECONNREFUSED) {
      return Disconnected("no kv-tierd listening on '" + path + "' (is the daemon running? set KVT_SOCKET)");
    }
    return ErrnoStatus("connect(" + path + ")", errno);
  }
}

void Signal(int fd) {
  uint64_t one = 1;
  ssize_t n = ::write(fd, &one, sizeof one);
  (void)n;
}

}  // namespace

StatusOr<std::unique_ptr<Connection>> Connection::Open(const ConnectionOptions& options) {
  KVT_RETURN_IF_ERROR(protocol::ValidateTenantName(options.tenant));
  if (options.ring_entries != 0 && (options.ring_entries & (options.ring_entries - 1)) != 0) {
    return InvalidArgument("ring_entries must be a power of two");
  }
  std::unique_ptr<Connection> c(new Connection());
  c->options_ = options;
  if (c->options_.socket_path.empty()) c->options_.socket_path = protocol::ClientSocketPath();
  Deadline deadline = Deadline::After(options.timeout);
  KVT_ASSIGN_OR_RETURN(c->socket_, ConnectUnix(c->options_.socket_path, deadline));
  KVT_RETURN_IF_ERROR(c->Handshake(deadline));
  return c;
}

Status Connection::Handshake(Deadline deadline) {
  protocol::HelloRequest hello{};
  hello.magic = protocol::kHelloMagic;
  hello.protocol_version = protocol::kProtocolVersion;
  hello.ring_entries = options_.ring_entries;
  hello.heap_bytes = options_.heap_bytes;
  std::memcpy(hello.tenant, options_.tenant.data(), options_.tenant.size());
  KVT_RETURN_IF_ERROR(protocol::SendWithFds(socket_.get(), &hello, sizeof hello, {}, deadline).WithContext("handshake"));
  protocol::HelloReply reply{};
  std::vector<UniqueFd> fds;
  KVT_RETURN_IF_ERROR(
      protocol::ReceiveWithFds(socket_.get(), &reply, sizeof reply, &fds, deadline).WithContext("handshake"));
  if (reply.magic != protocol::kReplyMagic) return ProtocolMismatch("the peer is not kv-tierd (bad reply magic)");
  if ((reply.protocol_version >> 16) != protocol::kProtocolMajor) {
    return ProtocolMismatch("daemon speaks protocol " + std::to_string(reply.protocol_version >> 16) + "." +
                            std::to_string(reply.protocol_version & 0xffff) + ", this libkvtier speaks " +
                            std::to_string(protocol::kProtocolMajor) + "." + std::to_string(protocol::kProtocolMinor));
  }
  if (reply.status != 0) {
    reply.message[sizeof reply.message - 1] = '\0';
    return Status(static_cast<StatusCode>(reply.status), std::string("daemon refused the connection: ") + reply.message);
  }
  if (fds.size() != 3) return ProtocolMismatch("daemon passed " + std::to_string(fds.size()) + " fds, expected 3");
  uint32_t ring = reply.ring_entries;
  if (ring == 0 || (ring & (ring - 1)) != 0) return ProtocolMismatch("daemon granted an invalid ring size");
  auto layout = protocol::RegionLayout::For(ring, reply.heap_bytes);
  if (layout.total_bytes != reply.region_bytes || layout.sq_offset != reply.sq_offset ||
      layout.cq_offset != reply.cq_offset || layout.messages_offset != reply.messages_offset ||
      layout.heap_offset != reply.heap_offset) {
    return ProtocolMismatch("shared region layout differs from this library's");
  }
  KVT_ASSIGN_OR_RETURN(region_, SharedMemory::Map(std::move(fds[0]), reply.region_bytes));
  sq_event_ = std::move(fds[1]);
  cq_event_ = std::move(fds[2]);
  char* base = region_.data();
  sq_ = protocol::SpscRing<SubmissionEntry>(base + layout.sq_offset, ring);
  cq_ = protocol::SpscRing<CompletionEntry>(base + layout.cq_offset, ring);
  messages_ = base + layout.messages_offset;
  heap_ = base + layout.heap_offset;
  heap_bytes_ = layout.heap_bytes;
  ring_entries_ = ring;
  session_id_ = reply.session_id;
  daemon_protocol_version_ = reply.protocol_version;
  heap_allocator_ = std::make_unique<ExtentAllocator>(heap_bytes_, protocol::kPageBytes);
  slots_.resize(ring);
  free_slots_.reserve(ring);
  for (uint32_t i = ring; i-- > 0;) free_slots_.push_back(i);
  return Status::Ok();
}

Connection::~Connection() {
  // Closing the socket tells the daemon we are gone; it releases our pins and region. Ops still
  // in flight are abandoned (their callbacks would touch memory we are about to unmap).
  socket_.Reset();
}

void Connection::MarkDisconnectedLocked(const std::string& why) {
  if (disconnected_) return;
  disconnected_ = true;
  disconnect_reason_ = why;
  cv_.notify_all();
}

Connection::OpSlot* Connection::FindLocked(OpId op) {
  uint32_t slot = static_cast<uint32_t>(op & 0xffffffffu);
  uint32_t generation = static_cast<uint32_t>(op >> 32);
  if (slot >= slots_.size() || slots_[slot].generation != generation || slots_[slot].state == OpSlot::State::kFree) {
    return nullptr;
  }
  return &slots_[slot];
}

void Connection::FreeSlotLocked(uint32_t slot) {
  OpSlot& s = slots_[slot];
  s.state = OpSlot::State::kFree;
  s.deliver = nullptr;
  s.cleanup = nullptr;
  s.result = OpResult{};
  ++s.generation;
  free_slots_.push_back(slot);
  cv_.notify_all();
}

OpResult Connection::TakeResultLocked(uint32_t slot) {
  OpResult r = std::move(slots_[slot].result);
  FreeSlotLocked(slot);
  return r;
}

StatusOr<Connection::OpId> Connection::Submit(SubmissionEntry entry, Finalizer deliver, Finalizer cleanup,
                                              Deadline deadline) {
  std::unique_lock lock(mu_);
  auto fail = [&](Status s) -> Status {
    if (cleanup) {
      OpResult none{s};
      cleanup(none);
    }
    return s;
  };
  while (free_slots_.empty()) {
    if (disconnected_) return fail(Disconnected(disconnect_reason_));
    if (Status s = ProgressLocked(lock, deadline); !s.ok()) return fail(s);
  }
  if (disconnected_) return fail(Disconnected(disconnect_reason_));
  uint32_t slot = free_slots_.back();
  free_slots_.pop_back();
  OpSlot& s = slots_[slot];
  s.state = OpSlot::State::kPending;
  s.deliver = std::move(deliver);
  s.cleanup = std::move(cleanup);
  OpId id = (uint64_t{s.generation} << 32) | slot;
  entry.user_data = id;
  RingResult r = sq_.TryPush(entry);
  if (r != RingResult::kOk) {
    // Cannot be full (in-flight ops <= ring entries); corrupt means the region is unusable.
    OpSlot& failed = slots_[slot];
    if (failed.cleanup) failed.cleanup(failed.result);
    FreeSlotLocked(slot);
    MarkDisconnectedLocked("submission ring is corrupt");
    return Internal("submission ring refused an entry");
  }
  if (sq_.ConsumerNeedsWake()) Signal(sq_event_.get());
  return id;
}

bool Connection::ReapLocked() {
  bool any = false;
  CompletionEntry c;
  for (;;) {
    std::string message;
    RingResult r = cq_.TryPopWith(&c, [&](uint32_t slot) {
      // The message must be copied before the slot is handed back to the daemon.
      const char* m = messages_ + uint64_t{slot} * protocol::kMessageMax;
      message.assign(m, strnlen(m, protocol::kMessageMax));
    });
    if (r == RingResult::kEmpty) break;
    if (r == RingResult::kCorrupt) {
      MarkDisconnectedLocked("completion ring is corrupt");
      break;
    }
    any = true;
    uint32_t slot = static_cast<uint32_t>(c.user_data & 0xffffffffu);
    uint32_t generation = static_cast<uint32_t>(c.user_data >> 32);
    if (slot >= slots_.size() || slots_[slot].generation != generation) continue;  // not ours: ignore
    OpSlot& s = slots_[slot];
    if (s.state != OpSlot::State::kPending && s.state != OpSlot::State::kAbandoned) continue;
    s.result.status = c.status == 0 ? Status::Ok()
                                    : Status(static_cast<StatusCode>(c.status), c.has_message ? message : std::string());
    s.result.value = c.value;
    s.result.value2 = c.value2;
    if (s.deliver && s.state == OpSlot::State::kPending) s.deliver(s.result);
    if (s.cleanup) s.cleanup(s.result);
    s.deliver = nullptr;
    s.cleanup = nullptr;
    if (s.state == OpSlot::State::kAbandoned) {
      FreeSlotLocked(slot);
    } else {
      s.state = OpSlot::State::kDone;
    }
  }
  if (any) cv_.notify_all();
  return any;
}

void Connection::WaitForSignal(Deadline deadline, std::chrono::microseconds spin) {
  // Poll first (a lookup completes in microseconds), yielding after the first two so the daemon's
  // thread gets the CPU on an oversubscribed machine; then sleep on the eventfd.
  auto now = Clock::now();
  auto pause_until = now + std::chrono::microseconds(2);
  auto spin_until = now + std::max(spin, std::chrono::microseconds(options_.spin_us));
  while ((now = Clock::now()) < spin_until) {
    if (!cq_.Empty()) return;
    if (now < pause_until) {
#if defined(__x86_64__)
      __builtin_ia32_pause();
#endif
    } else {
      sched_yield();
    }
  }
  if (!cq_.PrepareToWait()) return;
  pollfd fds[2] = {{cq_event_.get(), POLLIN, 0}, {socket_.get(), POLLIN, 0}};
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline.remaining()).count();
  int rc = ::poll(fds, 2, static_cast<int>(std::min<int64_t>(std::max<int64_t>(ms, 1), 100)));
  cq_.FinishWait();
  if (rc > 0 && (fds[0].revents & POLLIN)) {
    uint64_t v;
    while (::read(cq_event_.get(), &v, sizeof v) > 0) {
    }
  }
  if (rc > 0 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
    char b;
    ssize_t n = ::recv(socket_.get(), &b, 1, MSG_DONTWAIT | MSG_PEEK);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      std::lock_guard lock(mu_);
      MarkDisconnectedLocked("kv-tierd closed the connection (daemon stopped or cut this client off)");
    }
  }
}

Status Connection::ProgressLocked(std::unique_lock<std::mutex>& lock, Deadline deadline,
                                  std::chrono::microseconds spin) {
  if (disconnected_) return Disconnected(disconnect_reason_);
  if (deadline.expired()) return Timeout("no completion from kv-tierd before the deadline");
  if (reaping_) {
    cv_.wait_until(lock, std::min(deadline.at(), Clock::now() + std::chrono::milliseconds(10)));
    return Status::Ok();
  }
  reaping_ = true;
  if (!ReapLocked()) {
    lock.unlock();
    WaitForSignal(deadline, spin);
    lock.lock();
    ReapLocked();
  }
  reaping_ = false;
  cv_.notify_all();
  return Status::Ok();
}

OpResult Connection::Wait(OpId op, Deadline deadline, std::chrono::microseconds spin) {
  std::unique_lock lock(mu_);
  for (;;) {
    OpSlot* s = FindLocked(op);
    if (!s) return {InvalidArgument("unknown or finished op")};
    if (s->state == OpSlot::State::kDone) return TakeResultLocked(static_cast<uint32_t>(op & 0xffffffffu));
    Status progress = ProgressLocked(lock, deadline, spin);
    if (!progress.ok()) {
      if (disconnected_) {
        // The daemon is gone: the op will never complete. Its buffers are ours again.
        uint32_t slot = static_cast<uint32_t>(op & 0xffffffffu);
        if (FindLocked(op) && slots_[slot].state == OpSlot::State::kPending) {
          if (slots_[slot].cleanup) slots_[slot].cleanup(slots_[slot].result);
          FreeSlotLocked(slot);
        }
      }
      return {progress};
    }
  }
}

OpResult Connection::Poll(OpId op) {
  std::unique_lock lock(mu_);
  if (!reaping_) ReapLocked();
  OpSlot* s = FindLocked(op);
  if (!s) return {InvalidArgument("unknown or finished op")};
  if (s->state == OpSlot::State::kDone) return TakeResultLocked(static_cast<uint32_t>(op & 0xffffffffu));
  if (disconnected_) return {Disconnected(disconnect_reason_)};
  return {Busy("op still pending")};
}

void Connection::Release(OpId op) {
  std::unique_lock lock(mu_);
  OpSlot* s = FindLocked(op);
  if (!s) return;
  uint32_t slot = static_cast<uint32_t>(op & 0xffffffffu);
  if (s->state == OpSlot::State::kDone) {
    FreeSlotLocked(slot);
  } else if (disconnected_) {
    if (s->cleanup) s->cleanup(s->result);  // the daemon is gone: nobody writes the staging any more
    FreeSlotLocked(slot);
  } else {
    s->state = OpSlot::State::kAbandoned;
  }
}

OpResult Connection::Call(SubmissionEntry entry, Deadline deadline) {
  auto op = Submit(entry, nullptr, nullptr, deadline);
  if (!op.ok()) return {op.status()};
  OpResult r = Wait(*op, deadline);
  if (r.status.code() == StatusCode::kTimeout) Release(*op);
  return r;
}

StatusOr<uint64_t> Connection::AllocateHeap(uint64_t bytes) {
  if (bytes == 0) return InvalidArgument("buffer size must be positive");
  auto off = heap_allocator_->Allocate(bytes);
  if (!off) {
    return ResourceExhausted("shared heap full: " + std::to_string(bytes) + " bytes requested, " +
                             std::to_string(heap_bytes_ - heap_allocator_->used_bytes()) +
                             " free of " + std::to_string(heap_bytes_) + " (raise heap_bytes)");
  }
  return *off;
}

void Connection::FreeHeap(uint64_t offset, uint64_t bytes) { heap_allocator_->Free(offset, bytes); }

StatusOr<uint64_t> Connection::AllocateStaging(uint64_t bytes, Deadline deadline) {
  if (RoundToPage(bytes) > heap_bytes_) {
    return ResourceExhausted("request needs " + std::to_string(bytes) + " bytes of staging but the shared heap is " +
                             std::to_string(heap_bytes_) + " bytes (raise heap_bytes or use kvt_buffer_alloc)");
  }
  for (;;) {
    if (auto off = heap_allocator_->Allocate(bytes)) return *off;
    std::unique_lock lock(mu_);
    bool pending = free_slots_.size() < slots_.size();
    if (!pending) {
      return ResourceExhausted("shared heap has no " + std::to_string(bytes) +
                               "-byte free extent (buffers from kvt_buffer_alloc hold it)");
    }
    KVT_RETURN_IF_ERROR(ProgressLocked(lock, deadline));
  }
}

StatusOr<uint64_t> Connection::AllocateUserBuffer(uint64_t bytes) {
  KVT_ASSIGN_OR_RETURN(uint64_t off, AllocateHeap(bytes));
  std::lock_guard lock(buffers_mu_);
  user_buffers_[off] = bytes;
  return off;
}

Status Connection::FreeUserBuffer(uint64_t offset) {
  uint64_t bytes;
  {
    std::lock_guard lock(buffers_mu_);
    auto it = user_buffers_.find(offset);
    if (it == user_buffers_.end()) return InvalidArgument("not a buffer from kvt_buffer_alloc");
    bytes = it->second;
    user_buffers_.erase(it);
  }
  FreeHeap(offset, bytes);
  return Status::Ok();
}

bool Connection::InHeap(const void* p, uint64_t bytes, uint64_t* offset) const {
  auto a = reinterpret_cast<uintptr_t>(p), b = reinterpret_cast<uintptr_t>(heap_);
  if (a < b || bytes > heap_bytes_ || a - b > heap_bytes_ - bytes) return false;
  *offset = a - b;
  return true;
}

}  // namespace kvt::client
