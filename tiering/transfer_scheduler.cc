#include "tiering/transfer_scheduler.h"

#include <algorithm>
#include <string>

namespace kvt::tiering {

TransferScheduler::TransferScheduler(uint32_t workers, prometheus::Registry* registry)
    : workers_(std::max<uint32_t>(workers, 2)) {
  if (registry != nullptr) {
    auto& depth = prometheus::BuildGauge()
                      .Name("kvt_scheduler_queue_depth")
                      .Help("Tier transfers queued, not yet started, by priority")
                      .Register(*registry);
    auto& wait = prometheus::BuildHistogram()
                     .Name("kvt_scheduler_wait_seconds")
                     .Help("Time a tier transfer waited in the queue before it started, by priority")
                     .Register(*registry);
    // 1 us .. ~4 s, quadrupling.
    prometheus::Histogram::BucketBoundaries buckets;
    for (double b = 1e-6; b < 5.0; b *= 4) buckets.push_back(b);
    for (int p = 0; p < kTransferPriorities; ++p) {
      const prometheus::Labels labels{
          {"priority", std::string(TransferPriorityName(static_cast<TransferPriority>(p)))}};
      metrics_[p].queue_depth = &depth.Add(labels);
      metrics_[p].wait_seconds = &wait.Add(labels, buckets);
    }
  }
  threads_.reserve(workers_);
  for (uint32_t i = 0; i < workers_; ++i) threads_.emplace_back([this] { Work(); });
}

TransferScheduler::~TransferScheduler() { Drain(); }

void TransferScheduler::Drain() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

void TransferScheduler::Submit(TransferPriority priority, std::function<void()> task) {
  {
    std::lock_guard lock(mu_);
    queues_[static_cast<size_t>(priority)].push_back(Task{std::move(task), std::chrono::steady_clock::now()});
    // Under the lock, so a worker's Decrement never comes first.
    if (auto* g = metrics_[static_cast<size_t>(priority)].queue_depth) g->Increment();
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
    Task task = std::move(queues_[p].front());
    queues_[p].pop_front();
    if (p != 0) ++running_non_demand_;
    lock.unlock();
    if (const PriorityMetrics& m = metrics_[p]; m.queue_depth != nullptr) {
      m.queue_depth->Decrement();
      m.wait_seconds->Observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - task.submitted).count());
    }
    task.fn();
    lock.lock();
    if (p != 0) {
      --running_non_demand_;
      cv_.notify_all();  // a worker may be waiting for the non-demand slot
    }
  }
}

}  // namespace kvt::tiering
