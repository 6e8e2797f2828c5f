// TransferScheduler — one copy engine's queue: transfers run on a worker thread in priority order
// (demand before prefetch before write-back, FIFO within a priority), and each transfer records
// how much of its time was hidden behind the caller's compute.
//
// On the CPU path a "transfer" is a memcpy from the host tier into working memory (the PCIe
// stand-in); on the GPU path the same queue would feed a copy stream. A transfer's time is hidden
// when it ran before anybody waited for it: exposed = the part of [start, end] after the Wait
// began (plus the whole queueing delay seen by the waiter), hidden = duration - exposed.
//
// A job queued at a lower priority that a later transfer depends on (a write-back of rows a demand
// fetch reads) is moved ahead with Raise: it then runs before anything submitted to the raised
// class afterwards, and its bytes and time stay accounted to its own class. Jobs run one at a time
// on the single worker, so a job sees the effects of every job that ran before it.
//
// Threading: Submit and Wait may be called from any thread; the job runs on the worker thread and
// must not call back into the scheduler. Wait blocks until the ticket's job finished. The
// destructor drains the queue. Tickets are consumed by Wait (waiting twice is INVALID_ARGUMENT).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "common/status.h"
#include "sequence/sequence_plan.h"

namespace kvt::sequence {

enum class TransferPriority : int { kDemand = 0, kPrefetch = 1, kWriteBack = 2 };
inline constexpr int kTransferPriorities = 3;

struct TransferStats {
  uint64_t count[kTransferPriorities] = {};
  uint64_t bytes[kTransferPriorities] = {};
  double busy_s[kTransferPriorities] = {};    // time the worker spent running jobs
  double hidden_s[kTransferPriorities] = {};  // of busy_s, the part nobody waited for
  double wait_s = 0.0;                        // time callers spent blocked in Wait
  uint64_t raised[kTransferPriorities] = {};  // jobs of this class moved ahead by Raise
  // By the kind of layer that submitted the transfer, accounted when the transfer is waited for
  // (so hidden and exposed = waited - hidden only ever grow): duration of waited transfers, and
  // the part of it nobody waited for.
  double waited_by_kind_s[kLayerKinds] = {};
  double hidden_by_kind_s[kLayerKinds] = {};
  double total_busy() const { return busy_s[0] + busy_s[1] + busy_s[2]; }
  double total_hidden() const { return hidden_s[0] + hidden_s[1] + hidden_s[2]; }
};

class TransferScheduler {
 public:
  using Ticket = uint64_t;
  TransferScheduler();
  ~TransferScheduler();
  TransferScheduler(const TransferScheduler&) = delete;
  TransferScheduler& operator=(const TransferScheduler&) = delete;

  // Queues `job`, which moves `bytes` for a layer of kind `owner` (for the statistics). Never
  // blocks on the worker.
  Ticket Submit(TransferPriority priority, uint64_t bytes, std::function<void()> job,
                LayerKind owner = LayerKind::kFull);
  // Blocks until the job finished, then accounts hidden vs exposed time.
  Status Wait(Ticket ticket);
  // If `ticket`'s job is still queued in a class below `priority`, moves it to the back of
  // `priority`'s queue, so it runs before every job submitted to that class after this call. A job
  // already running, finished or queued at `priority` or above is left alone. Never blocks on the
  // worker. INVALID_ARGUMENT for an unknown (or already waited) ticket.
  Status Raise(Ticket ticket, TransferPriority priority);
  // Blocks until the queue is empty and the worker idle (tickets stay waitable).
  void Drain();

  TransferStats stats() const;
  void ResetStats();
  // Order in which jobs started, by ticket (tests); the last 4096.
  std::vector<Ticket> start_order() const;

 private:
  struct Job {
    Ticket ticket;
    TransferPriority priority;
    uint64_t bytes;
    std::function<void()> fn;
  };
  struct Done {
    TransferPriority priority;
    LayerKind owner;
    double start, end;  // seconds since construction
    bool finished = false;
  };
  double Now() const;
  void Run();

  mutable std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  std::deque<Job> queues_[kTransferPriorities];
  std::map<Ticket, Done> tickets_;
  std::vector<Ticket> start_order_;
  TransferStats stats_;
  Ticket next_ = 1;
  bool running_job_ = false;
  bool stop_ = false;
  std::chrono::steady_clock::time_point epoch_;
  std::thread worker_;
};

}  // namespace kvt::sequence
