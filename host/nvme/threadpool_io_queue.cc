// The thread-pool IoQueue: pread/pwrite on a few threads, for kernels or sandboxes without
// io_uring. A batch of one runs inline on the caller's thread.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "host/nvme/io_queue.h"

namespace kvt::nvme {
namespace {

void Perform(IoRequest* r) {
  uint64_t done = 0;
  char* p = static_cast<char*>(r->buf);
  while (done < r->len) {
    ssize_t n = r->op == IoRequest::Op::kRead ? ::pread(r->fd, p + done, r->len - done, r->offset + done)
                                              : ::pwrite(r->fd, p + done, r->len - done, r->offset + done);
    if (n < 0) {
      if (errno == EINTR) continue;
      r->result = -errno;
      return;
    }
    if (n == 0) break;  // end of file: a short transfer
    done += static_cast<uint64_t>(n);
  }
  r->result = static_cast<int64_t>(done);
}

class ThreadPoolIoQueue final : public IoQueue {
 public:
  ThreadPoolIoQueue(uint32_t depth, bool direct, std::string note) {
    caps_.backend = "threadpool";
    caps_.direct = direct;
    caps_.depth = depth;
    caps_.note = std::move(note);
    uint32_t threads = std::clamp<uint32_t>(depth, 1, 8);
    for (uint32_t i = 0; i < threads; ++i) threads_.emplace_back([this] { Work(); });
  }
  ~ThreadPoolIoQueue() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }

  void Run(std::span<IoRequest> requests) override {
    if (requests.size() == 1) {
      Perform(&requests[0]);
      return;
    }
    Batch batch;
    batch.left = requests.size();
    {
      std::lock_guard lock(mu_);
      for (auto& r : requests) work_.push_back({&r, &batch});
    }
    cv_.notify_all();
    std::unique_lock lock(batch.mu);
    batch.cv.wait(lock, [&] { return batch.left == 0; });
  }

  Status Sync(int fd) override {
    if (::fdatasync(fd) != 0) return ErrnoStatus("fdatasync", errno);
    return Status::Ok();
  }
  bool RegisterBuffers(std::span<const BufferRegion>) override { return false; }
  const IoQueueCapabilities& capabilities() const override { return caps_; }

 private:
  struct Batch {
    std::mutex mu;
    std::condition_variable cv;
    size_t left = 0;
  };
  struct Item {
    IoRequest* request;
    Batch* batch;
  };

  void Work() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stop_ || !work_.empty(); });
      if (work_.empty()) return;
      Item item = work_.front();
      work_.pop_front();
      lock.unlock();
      Perform(item.request);
      {
        std::lock_guard b(item.batch->mu);
        if (--item.batch->left == 0) item.batch->cv.notify_all();
      }
      lock.lock();
    }
  }

  IoQueueCapabilities caps_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> work_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace

std::unique_ptr<IoQueue> MakeThreadPoolIoQueue(uint32_t depth, bool direct, std::string note) {
  return std::make_unique<ThreadPoolIoQueue>(depth, direct, std::move(note));
}

}  // namespace kvt::nvme
