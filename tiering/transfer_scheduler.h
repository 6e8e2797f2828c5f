// TransferScheduler — a small priority queue of transfer tasks in front of an I/O queue.
//
// Tasks run on the scheduler's worker threads, most urgent priority first and FIFO within a
// priority. One worker is always kept for demand reads: at most `workers - 1` tasks of a lower
// priority run at once, so a demand read waits at most for the I/O already in flight on the
// device, never behind a backlog of write-backs.
//
// Metrics (when given a registry): kvt_scheduler_queue_depth{priority} (tasks queued, not yet
// started) and kvt_scheduler_wait_seconds{priority} (time from Submit to the start of the task).
// Several schedulers on one registry share the series (the gauge is incremented/decremented).
//
// Thread-safe. Submit never blocks. The destructor runs every task already submitted, then joins.
#pragma once

#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "tiering/transfer_priority.h"

namespace kvt::tiering {

class TransferScheduler {
 public:
  // workers >= 2 (one reserved for demand reads); fewer are raised to 2.
  explicit TransferScheduler(uint32_t workers, prometheus::Registry* registry = nullptr);
  ~TransferScheduler();

  // Runs everything queued (including tasks those tasks submit), then joins the workers. The
  // owner calls it while the scheduler is still reachable by running tasks; idempotent.
  void Drain();
  TransferScheduler(const TransferScheduler&) = delete;
  TransferScheduler& operator=(const TransferScheduler&) = delete;

  void Submit(TransferPriority priority, std::function<void()> task);
  // Tasks waiting (not yet running) at a priority.
  size_t pending(TransferPriority priority) const;

 private:
  void Work();
  // The queue to take from next, or -1 (requires mu_).
  int PickLocked() const;

  struct Task {
    std::function<void()> fn;
    std::chrono::steady_clock::time_point submitted;
  };
  struct PriorityMetrics {
    prometheus::Gauge* queue_depth = nullptr;
    prometheus::Histogram* wait_seconds = nullptr;
  };

  std::array<PriorityMetrics, kTransferPriorities> metrics_{};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::array<std::deque<Task>, kTransferPriorities> queues_;
  uint32_t workers_;
  uint32_t running_non_demand_ = 0;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace kvt::tiering
