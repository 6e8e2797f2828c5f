#include "host/remote/node_pool.h"

#include <algorithm>
#include <random>

namespace kvt::remote {

NodePool::NodePool(Endpoint endpoint, NodePoolOptions options, NodePoolEvents events)
    : endpoint_(std::move(endpoint)), options_(std::move(options)), events_(std::move(events)) {}

NodePool::~NodePool() = default;

bool NodePool::backing_off() const {
  std::lock_guard lock(mu_);
  return Clock::now() < retry_at_;
}

void NodePool::StartBackoffLocked() {
  auto lo = std::chrono::milliseconds(options_.backoff_min_ms);
  auto hi = std::chrono::milliseconds(options_.backoff_max_ms);
  backoff_ = backoff_.count() == 0 ? lo : std::min(hi, backoff_ * 2);
  // Up to a quarter of jitter so that many daemons do not reconnect in lockstep.
  thread_local std::minstd_rand rng(std::random_device{}());
  auto jitter = std::chrono::milliseconds(rng() % (backoff_.count() / 4 + 1));
  retry_at_ = Clock::now() + backoff_ + jitter;
  lost_ = true;
}

StatusOr<std::unique_ptr<RedisConnection>> NodePool::Acquire(Deadline deadline, bool fresh, bool wait) {
  std::unique_lock lock(mu_);
  for (;;) {
    if (Clock::now() < retry_at_) {
      return Disconnected("redis node " + endpoint_.ToString() + " is down (backing off after a failure)");
    }
    if (!fresh && !idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
    if (fresh && !idle_.empty() && open_ >= options_.pool_size) {
      idle_.pop_back();  // make room for the fresh one
      --open_;
    }
    if (open_ < options_.pool_size) break;
    if (!wait) return Busy("every connection to " + endpoint_.ToString() + " is in use");
    if (cv_.wait_until(lock, deadline.at()) == std::cv_status::timeout) {
      return Timeout("no free connection to " + endpoint_.ToString() + " before the deadline");
    }
  }
  ++open_;
  lock.unlock();
  auto opened = RedisConnection::Open(endpoint_, options_.connection, deadline);
  lock.lock();
  if (!opened.ok()) {
    --open_;
    // An AUTH refusal is no reason to hammer the node either.
    StartBackoffLocked();
    open_ -= static_cast<uint32_t>(idle_.size());
    idle_.clear();
    cv_.notify_all();
    lock.unlock();
    if (events_.connect_failed) events_.connect_failed();
    return opened.status();
  }
  bool was_lost = lost_;
  lost_ = false;
  backoff_ = std::chrono::milliseconds(0);
  lock.unlock();
  if (was_lost && events_.reconnected) events_.reconnected();
  return std::move(*opened);
}

void NodePool::Release(std::unique_ptr<RedisConnection> c) {
  std::lock_guard lock(mu_);
  if (c->broken()) {
    lost_ = true;
    --open_;
  } else {
    idle_.push_back(std::move(c));
  }
  cv_.notify_one();
}

void NodePool::MarkDown() {
  std::lock_guard lock(mu_);
  open_ -= static_cast<uint32_t>(idle_.size());
  idle_.clear();
  StartBackoffLocked();
  cv_.notify_all();
}

}  // namespace kvt::remote
