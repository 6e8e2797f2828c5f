// The io_uring IoQueue. A few rings, each used by one caller at a time (a caller takes the first
// free one), so concurrent callers do not serialize on one submission queue. Registered regions
// (RegisterBuffers) become the same fixed buffers on every ring, cut into pieces of at most 1 GiB
// (the kernel's limit per fixed buffer); a request inside one piece uses IORING_OP_READ_FIXED /
// WRITE_FIXED and skips the per-I/O page pinning, any other request a plain READ / WRITE.
#include <liburing.h>

#include <cerrno>
#include <cstring>
#include <atomic>
#include <algorithm>
#include <climits>
#include <mutex>
#include <sys/uio.h>
#include <vector>

#include <spdlog/spdlog.h>

#include "host/nvme/io_queue.h"

namespace kvt::nvme {
namespace {

constexpr int kRings = 4;
constexpr uint64_t kStale = ~uint64_t{0};           // user data of an entry nobody waits for
constexpr uint64_t kSync = kStale - 1;
constexpr int64_t kPending = INT64_MIN;
constexpr uint64_t kMaxFixedBuffer = 1ull << 30;

class UringIoQueue final : public IoQueue {
 public:
  ~UringIoQueue() override {
    for (auto& r : rings_) io_uring_queue_exit(&r->ring);
  }

  static StatusOr<std::unique_ptr<IoQueue>> Create(uint32_t depth, bool direct, std::string note) {
    std::unique_ptr<UringIoQueue> q(new UringIoQueue());
    q->caps_.backend = "io_uring";
    q->caps_.direct = direct;
    q->caps_.depth = depth;
    q->caps_.note = std::move(note);
    for (int i = 0; i < kRings; ++i) {
      auto r = std::make_unique<Ring>();
      int rc = io_uring_queue_init(depth, &r->ring, 0);
      if (rc < 0) return ErrnoStatus("io_uring_queue_init", -rc);
      q->rings_.push_back(std::move(r));
    }
    return std::unique_ptr<IoQueue>(std::move(q));
  }

  void Run(std::span<IoRequest> requests) override {
    Ring* ring = Acquire();
    std::unique_lock lock(ring->mu, std::adopt_lock);
    for (auto& r : requests) r.result = kPending;
    size_t next = 0;
    while (next < requests.size()) {
      size_t batch = std::min<size_t>(caps_.depth, requests.size() - next);
      size_t queued = 0;
      sqes_.clear();
      for (; queued < batch; ++queued) {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring->ring);
        if (!sqe) break;
        IoRequest& r = requests[next + queued];
        const int fixed = FixedIndex(r.buf, r.len);
        if (r.op == IoRequest::Op::kRead) {
          if (fixed >= 0) io_uring_prep_read_fixed(sqe, r.fd, r.buf, r.len, r.offset, fixed);
          else io_uring_prep_read(sqe, r.fd, r.buf, r.len, r.offset);
        } else {
          if (fixed >= 0) io_uring_prep_write_fixed(sqe, r.fd, r.buf, r.len, r.offset, fixed);
          else io_uring_prep_write(sqe, r.fd, r.buf, r.len, r.offset);
        }
        io_uring_sqe_set_data64(sqe, next + queued);
        sqes_.push_back(sqe);
      }
      int rc;
      do {
        rc = io_uring_submit(&ring->ring);
      } while (rc == -EINTR || rc == -EAGAIN || rc == -EBUSY);
      if (rc < 0) {
        // Nothing was taken: turn the entries into no-ops nobody waits for, fail the batch.
        for (io_uring_sqe* sqe : sqes_) {
          io_uring_prep_nop(sqe);
          io_uring_sqe_set_data64(sqe, kStale);
        }
        for (size_t i = 0; i < queued; ++i) requests[next + i].result = rc;
        next += queued;
        continue;
      }
      size_t done = 0;
      while (done < queued) {
        io_uring_cqe* cqe = nullptr;
        int w;
        do {
          w = io_uring_wait_cqe(&ring->ring, &cqe);
        } while (w == -EINTR);
        if (w < 0) {
          for (size_t i = 0; i < queued; ++i) {
            if (requests[next + i].result == kPending) requests[next + i].result = w;
          }
          break;
        }
        uint64_t index = io_uring_cqe_get_data64(cqe);
        if (index < requests.size()) {
          requests[index].result = cqe->res;
          ++done;
        }
        io_uring_cqe_seen(&ring->ring, cqe);
      }
      next += queued;
    }
  }

  Status Sync(int fd) override {
    Ring* ring = Acquire();
    std::unique_lock lock(ring->mu, std::adopt_lock);
    io_uring_sqe* sqe = io_uring_get_sqe(&ring->ring);
    if (!sqe) return Internal("io_uring: no submission entry for fsync");
    io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
    io_uring_sqe_set_data64(sqe, kSync);
    int rc;
    do {
      rc = io_uring_submit(&ring->ring);
    } while (rc == -EINTR || rc == -EAGAIN || rc == -EBUSY);
    if (rc < 0) {
      io_uring_prep_nop(sqe);
      io_uring_sqe_set_data64(sqe, kStale);
      return ErrnoStatus("io_uring_submit(fsync)", -rc);
    }
    int res = 0;
    for (;;) {
      io_uring_cqe* cqe = nullptr;
      do {
        rc = io_uring_wait_cqe(&ring->ring, &cqe);
      } while (rc == -EINTR);
      if (rc < 0) return ErrnoStatus("io_uring_wait_cqe(fsync)", -rc);
      bool mine = io_uring_cqe_get_data64(cqe) == kSync;
      res = cqe->res;
      io_uring_cqe_seen(&ring->ring, cqe);
      if (mine) break;
    }
    if (res < 0) return ErrnoStatus("fdatasync", -res);
    return Status::Ok();
  }

  bool RegisterBuffers(std::span<const BufferRegion> regions) override {
    std::vector<iovec> pieces;
    for (const BufferRegion& region : regions) {
      for (uint64_t off = 0; off < region.bytes; off += kMaxFixedBuffer) {
        pieces.push_back({region.base + off, std::min(kMaxFixedBuffer, region.bytes - off)});
      }
    }
    if (pieces.empty()) return false;
    for (auto& r : rings_) {
      std::lock_guard lock(r->mu);
      if (!fixed_.empty()) io_uring_unregister_buffers(&r->ring);
      int rc = io_uring_register_buffers(&r->ring, pieces.data(), static_cast<unsigned>(pieces.size()));
      if (rc < 0) {
        spdlog::warn("nvme: io_uring_register_buffers of {} regions refused ({}); using unregistered buffers",
                     regions.size(), std::strerror(-rc));
        for (auto& u : rings_) {
          if (u.get() != r.get()) {
            std::lock_guard l2(u->mu);
            io_uring_unregister_buffers(&u->ring);
          }
        }
        fixed_.clear();
        caps_.registered_buffers = false;
        return false;
      }
    }
    fixed_ = std::move(pieces);
    caps_.registered_buffers = true;
    return true;
  }

  const IoQueueCapabilities& capabilities() const override { return caps_; }

 private:
  struct Ring {
    std::mutex mu;
    io_uring ring{};
  };
  UringIoQueue() = default;

  // A ring locked for the caller: the first free one, else wait on one chosen round robin.
  Ring* Acquire() {
    for (auto& r : rings_) {
      if (r->mu.try_lock()) return r.get();
    }
    Ring* r = rings_[next_.fetch_add(1, std::memory_order_relaxed) % rings_.size()].get();
    r->mu.lock();
    return r;
  }

  // The fixed buffer holding [p, p + len) whole, or -1.
  int FixedIndex(const void* p, uint64_t len) const {
    auto a = reinterpret_cast<uintptr_t>(p);
    for (size_t i = 0; i < fixed_.size(); ++i) {
      auto b = reinterpret_cast<uintptr_t>(fixed_[i].iov_base);
      if (a >= b && len <= fixed_[i].iov_len && a - b <= fixed_[i].iov_len - len) return static_cast<int>(i);
    }
    return -1;
  }

  IoQueueCapabilities caps_;
  std::vector<std::unique_ptr<Ring>> rings_;
  std::atomic<uint32_t> next_{0};
  static thread_local std::vector<io_uring_sqe*> sqes_;
  std::vector<iovec> fixed_;  // the registered pieces, in fixed-buffer index order
};

thread_local std::vector<io_uring_sqe*> UringIoQueue::sqes_;

}  // namespace

StatusOr<std::unique_ptr<IoQueue>> MakeUringIoQueue(uint32_t depth, bool direct, std::string note) {
  return UringIoQueue::Create(depth, direct, std::move(note));
}

}  // namespace kvt::nvme
