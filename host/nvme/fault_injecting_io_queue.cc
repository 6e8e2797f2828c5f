#include "host/nvme/fault_injecting_io_queue.h"

#include <cerrno>
#include <vector>

namespace kvt::nvme {

FaultInjectingIoQueue::FaultInjectingIoQueue(std::unique_ptr<IoQueue> inner) : inner_(std::move(inner)) {}

void FaultInjectingIoQueue::Arm(const FaultRule& rule) {
  std::lock_guard lock(mu_);
  rule_ = rule;
  armed_ = true;
  seen_ = 0;
  rule_faults_ = 0;
  rng_.seed(rule.seed);
}

void FaultInjectingIoQueue::Disarm() {
  std::lock_guard lock(mu_);
  armed_ = false;
}

uint64_t FaultInjectingIoQueue::injected() const {
  std::lock_guard lock(mu_);
  return injected_;
}

bool FaultInjectingIoQueue::ShouldFailLocked(FaultRule::Target target) {
  if (!armed_ || rule_.target != target) return false;
  if (seen_++ < rule_.skip) return false;
  if (rule_faults_ >= rule_.max_faults) return false;
  if (rule_.probability < 1.0 && std::uniform_real_distribution<double>(0, 1)(rng_) >= rule_.probability) {
    return false;
  }
  ++rule_faults_;
  ++injected_;
  return true;
}

void FaultInjectingIoQueue::Run(std::span<IoRequest> requests) {
  std::vector<IoRequest> pass;
  std::vector<size_t> pass_index;
  std::vector<size_t> shorten;
  {
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < requests.size(); ++i) {
      auto target = requests[i].op == IoRequest::Op::kRead ? FaultRule::Target::kRead : FaultRule::Target::kWrite;
      if (ShouldFailLocked(target)) {
        switch (rule_.kind) {
          case FaultRule::Kind::kEnospc: requests[i].result = -ENOSPC; continue;
          case FaultRule::Kind::kEio: requests[i].result = -EIO; continue;
          case FaultRule::Kind::kShortRead: shorten.push_back(pass.size()); break;
        }
      }
      pass.push_back(requests[i]);
      pass_index.push_back(i);
    }
  }
  if (!pass.empty()) inner_->Run(pass);
  for (size_t j : shorten) {
    if (pass[j].result > 0) pass[j].result /= 2;
  }
  for (size_t j = 0; j < pass.size(); ++j) requests[pass_index[j]].result = pass[j].result;
}

Status FaultInjectingIoQueue::Sync(int fd) {
  {
    std::lock_guard lock(mu_);
    if (ShouldFailLocked(FaultRule::Target::kSync)) return ErrnoStatus("fdatasync (injected)", EIO);
  }
  return inner_->Sync(fd);
}

}  // namespace kvt::nvme
