// The daemon's GPU tier: the device pool (gpu/device_pool.h) behind the tiering::DeviceMemory
// interface, and the tier over it. Built at start-up when configured; absent, with one log line
// saying why, when the pool size is 0 or CUDA, the driver or the device is missing.
#pragma once

#include <memory>
#include <optional>

#include <prometheus/registry.h>

#include "daemon/config.h"
#include "protocol/ops.h"
#include "tiering/block_store.h"
#include "tiering/device_memory.h"
#include "tiering/gpu_tier.h"

namespace kvt::daemon {

struct GpuTierParts {
  std::unique_ptr<tiering::DeviceMemory> memory;  // owns the device pool
  std::unique_ptr<tiering::GpuTier> tier;         // uses memory: destroy it first
  protocol::GpuPoolInfo info{};                   // what kGpuPoolInfo answers
  bool exported = false;                          // info is valid (not a simulated pool)
};

// Null parts (tier == nullptr) when there is to be no GPU tier; never an error: a daemon on a
// machine without a GPU serves on the host path.
GpuTierParts MakeGpuTier(const DaemonConfig& config, tiering::BlockStore* store, prometheus::Registry& registry);

}  // namespace kvt::daemon
