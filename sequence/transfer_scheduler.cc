#include "sequence/transfer_scheduler.h"

#include <algorithm>

namespace kvt::sequence {

TransferScheduler::TransferScheduler() : epoch_(std::chrono::steady_clock::now()) {
  worker_ = std::thread([this] { Run(); });
}

TransferScheduler::~TransferScheduler() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  worker_.join();
}

double TransferScheduler::Now() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_).count();
}

TransferScheduler::Ticket TransferScheduler::Submit(TransferPriority priority, uint64_t bytes,
                                                    std::function<void()> job, LayerKind owner) {
  std::lock_guard<std::mutex> l(mu_);
  const Ticket t = next_++;
  const int p = static_cast<int>(priority);
  queues_[p].push_back(Job{t, priority, bytes, std::move(job)});
  tickets_[t] = Done{priority, owner, 0.0, 0.0, false};
  stats_.count[p] += 1;
  stats_.bytes[p] += bytes;
  work_cv_.notify_one();
  return t;
}

void TransferScheduler::Run() {
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    work_cv_.wait(l, [&] {
      return stop_ || !queues_[0].empty() || !queues_[1].empty() || !queues_[2].empty();
    });
    int p = 0;
    while (p < kTransferPriorities && queues_[p].empty()) ++p;
    if (p == kTransferPriorities) {
      if (stop_) return;
      continue;
    }
    Job job = std::move(queues_[p].front());
    queues_[p].pop_front();
    running_job_ = true;
    const double start = Now();
    start_order_.push_back(job.ticket);
    if (start_order_.size() > 4096) start_order_.erase(start_order_.begin());
    l.unlock();
    job.fn();
    const double end = Now();
    l.lock();
    running_job_ = false;
    auto it = tickets_.find(job.ticket);
    if (it != tickets_.end()) {
      it->second.start = start;
      it->second.end = end;
      it->second.finished = true;
    }
    stats_.busy_s[static_cast<int>(job.priority)] += end - start;
    done_cv_.notify_all();
  }
}

Status TransferScheduler::Wait(Ticket ticket) {
  const double wait_begin = Now();
  std::unique_lock<std::mutex> l(mu_);
  auto it = tickets_.find(ticket);
  if (it == tickets_.end()) return InvalidArgument("transfer ticket " + std::to_string(ticket) + " unknown or already waited");
  done_cv_.wait(l, [&] { return it->second.finished; });
  const Done d = it->second;
  tickets_.erase(it);
  const double wait_end = Now();
  const int p = static_cast<int>(d.priority);
  const double duration = d.end - d.start;
  const double exposed = std::clamp(d.end - std::max(d.start, wait_begin), 0.0, duration);
  stats_.hidden_s[p] += duration - exposed;
  const int k = static_cast<int>(d.owner);
  if (k >= 0 && k < kLayerKinds) {
    stats_.waited_by_kind_s[k] += duration;
    stats_.hidden_by_kind_s[k] += duration - exposed;
  }
  stats_.wait_s += wait_end - wait_begin;
  return Status::Ok();
}

Status TransferScheduler::Raise(Ticket ticket, TransferPriority priority) {
  std::lock_guard<std::mutex> l(mu_);
  if (tickets_.find(ticket) == tickets_.end()) {
    return InvalidArgument("transfer ticket " + std::to_string(ticket) + " unknown or already waited");
  }
  const int to = static_cast<int>(priority);
  for (int p = to + 1; p < kTransferPriorities; ++p) {
    auto& q = queues_[p];
    auto it = std::find_if(q.begin(), q.end(), [&](const Job& j) { return j.ticket == ticket; });
    if (it == q.end()) continue;
    stats_.raised[static_cast<int>(it->priority)] += 1;
    queues_[to].push_back(std::move(*it));
    q.erase(it);
    work_cv_.notify_one();
    return Status::Ok();
  }
  return Status::Ok();  // running, finished, or already at `priority` or above
}

void TransferScheduler::Drain() {
  std::unique_lock<std::mutex> l(mu_);
  done_cv_.wait(l, [&] {
    return !running_job_ && queues_[0].empty() && queues_[1].empty() && queues_[2].empty();
  });
}

TransferStats TransferScheduler::stats() const {
  std::lock_guard<std::mutex> l(mu_);
  return stats_;
}

void TransferScheduler::ResetStats() {
  std::lock_guard<std::mutex> l(mu_);
  stats_ = TransferStats{};
}

std::vector<TransferScheduler::Ticket> TransferScheduler::start_order() const {
  std::lock_guard<std::mutex> l(mu_);
  return start_order_;
}

}  // namespace kvt::sequence
