// WriteBacks — one layer's outstanding write-back transfers: the K/V rows (and, for sparse layers,
// the transposed key copy) that an Append queued into the host tier instead of writing them on the
// decode path. Private to sequence/; used by the layer's (the sequence's) thread only.
//
// The host-tier buffers a write-back job mutates are read by two kinds of code, and each orders
// itself after the write-backs it needs:
//  - transfers (prefetch, demand) read them on the scheduler's worker: Raise(priority) before
//    submitting moves the pending write-backs into that class ahead of the new job, so the single
//    worker runs them first;
//  - the layer's own thread (Select's segments over the host tier, Save) waits with Settle.
// SettleBefore(token) waits only for the write-backs holding tokens below `token`, so a gather of
// older tokens does not wait for the row the step just appended (attention reads that row from
// the resident recent window).
#pragma once

#include <cstdint>
#include <deque>

#include "common/status.h"
#include "sequence/transfer_scheduler.h"

namespace kvt::sequence::internal {

class WriteBacks {
 public:
  explicit WriteBacks(TransferScheduler* scheduler) : scheduler_(scheduler) {}

  // Records a submitted write-back of tokens [first, first + tokens).
  void Add(TransferScheduler::Ticket ticket, int64_t first) { pending_.push_back({ticket, first}); }

  // Moves every pending write-back ahead of the next job of class `priority`.
  Status Raise(TransferPriority priority) {
    for (const auto& p : pending_) KVT_RETURN_IF_ERROR(scheduler_->Raise(p.ticket, priority));
    return Status::Ok();
  }

  // Moves the pending write-backs holding any token below `token` ahead of the next job of class
  // `priority`.
  Status RaiseBefore(int64_t token, TransferPriority priority) {
    for (const auto& p : pending_) {
      if (p.first >= token) break;
      KVT_RETURN_IF_ERROR(scheduler_->Raise(p.ticket, priority));
    }
    return Status::Ok();
  }

  // Waits for the write-backs holding any token below `token` (in submission order, raised to
  // demand first so the wait does not sit behind prefetches). INT64_MAX: all of them.
  Status SettleBefore(int64_t token) {
    while (!pending_.empty() && pending_.front().first < token) {
      const auto ticket = pending_.front().ticket;
      pending_.pop_front();
      KVT_RETURN_IF_ERROR(scheduler_->Raise(ticket, TransferPriority::kDemand));
      KVT_RETURN_IF_ERROR(scheduler_->Wait(ticket));
    }
    return Status::Ok();
  }
  Status Settle() { return SettleBefore(INT64_MAX); }
  bool empty() const { return pending_.empty(); }

 private:
  struct Pending {
    TransferScheduler::Ticket ticket;
    int64_t first;
  };
  TransferScheduler* scheduler_;
  std::deque<Pending> pending_;
};

}  // namespace kvt::sequence::internal
