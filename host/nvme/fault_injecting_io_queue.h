// FaultInjectingIoQueue — wraps an IoQueue and fails some of its requests on a schedule, for
// tests: ENOSPC or EIO instead of a write, EIO or a short read instead of a read, EIO from
// fdatasync. Requests chosen to fail never reach the wrapped queue (a short read does: it reads,
// then reports half of the bytes).
//
// Thread-safe; rules may be armed and disarmed while I/O runs.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <random>

#include "host/nvme/io_queue.h"

namespace kvt::nvme {

struct FaultRule {
  enum class Target { kRead, kWrite, kSync };
  enum class Kind { kEnospc, kEio, kShortRead };
  Target target = Target::kWrite;
  Kind kind = Kind::kEio;
  double probability = 1.0;          // of each matching request, after `skip`
  uint64_t skip = 0;                 // let this many matching requests through first
  uint64_t max_faults = UINT64_MAX;  // then stop injecting
  uint64_t seed = 1;
};

class FaultInjectingIoQueue final : public IoQueue {
 public:
  explicit FaultInjectingIoQueue(std::unique_ptr<IoQueue> inner);

  void Arm(const FaultRule& rule);
  void Disarm();
  uint64_t injected() const;

  void Run(std::span<IoRequest> requests) override;
  Status Sync(int fd) override;
  bool RegisterBuffers(std::span<const BufferRegion> regions) override { return inner_->RegisterBuffers(regions); }
  const IoQueueCapabilities& capabilities() const override { return inner_->capabilities(); }

 private:
  // Whether the next request of `target` fails (requires mu_).
  bool ShouldFailLocked(FaultRule::Target target);

  std::unique_ptr<IoQueue> inner_;
  mutable std::mutex mu_;
  bool armed_ = false;
  FaultRule rule_;
  uint64_t seen_ = 0;
  uint64_t rule_faults_ = 0;  // by the current rule
  uint64_t injected_ = 0;     // since construction
  std::mt19937_64 rng_;
};

}  // namespace kvt::nvme
