#include "tiering/transfer_scheduler.h"

#include <algorithm>

namespace kvt::tiering {

TransferScheduler::TransferScheduler(uint32_t workers) : workers_(std::max<uint32_t>(workers, 2)) {
  threads_.reserve(workers_);
  for (uint32_t i = 0; i < workers_; ++i) threads_.emplace_back([this] { Work(); });
}

TransferScheduler::~TransferScheduler() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void TransferScheduler::Submit(TransferPriority priority, std::function<void()> task) {
  {
    std::lock_guard lock(mu_);
    queues_[static_cast<size_t>(priority)].push_back(std::move(task));
  }
  cv_.notify_one();
}

size_t TransferScheduler::pending(TransferPriority priority) const {
  std::lock_guard lock(mu_);
  return queues_[static_cast<size_t>(priority)].size();
}

int TransferScheduler::PickLocked() const {
  if (!queues_[0].empty()) return 0;
  if (running_non_demand_ + 1 >= workers_) return -1;  // keep one worker for demand reads
  for (int p = 1; p < kTransferPriorities; ++p) {
    if (!queues_[p].empty()) return p;
  }
  return -1;
}

void TransferScheduler::Work() {
  std::unique_lock lock(mu_);
  for (;;) {
    int p = -1;
    cv_.wait(lock, [&] {
      p = PickLocked();
      if (p >= 0) return true;
      // Stop only once everything queued has run.
      return stop_ && std::all_of(queues_.begin(), queues_.end(), [](const auto& q) { return q.empty(); });
    });
    if (p < 0) return;
    std::function<void()> task = std::move(queues_[p].front());
    queues_[p].pop_front();
    if (p != 0) ++running_non_demand_;
    lock.unlock();
    task();
    lock.lock();
    if (p != 0) {
      --running_non_demand_;
      cv_.notify_all();  // a worker may be waiting for the non-demand slot
    }
  }
}

}  // namespace kvt::tiering
