#include "daemon/gpu_wiring.h"

#include <spdlog/spdlog.h>

#include <cstring>
#include <vector>

#include "gpu/device_pool.h"

namespace kvt::daemon {
namespace {

class PoolMemory final : public tiering::DeviceMemory {
 public:
  explicit PoolMemory(std::unique_ptr<gpu::DevicePool> pool) : pool_(std::move(pool)) {}
  uint64_t capacity_bytes() const override { return pool_->bytes(); }
  Status CopyToDevice(uint64_t offset, const void* src, uint64_t bytes) override {
    return pool_->CopyToDevice(offset, src, bytes);
  }
  Status CopyToHost(void* dst, uint64_t offset, uint64_t bytes) override {
    return pool_->CopyToHost(dst, offset, bytes);
  }
  const gpu::PoolExport& exported() const { return pool_->exported(); }

 private:
  std::unique_ptr<gpu::DevicePool> pool_;
};

// Host memory in place of the device pool (DaemonConfig::gpu_pool_simulated).
class SimulatedMemory final : public tiering::DeviceMemory {
 public:
  explicit SimulatedMemory(uint64_t bytes) : bytes_(bytes) {}
  uint64_t capacity_bytes() const override { return bytes_.size(); }
  Status CopyToDevice(uint64_t offset, const void* src, uint64_t bytes) override {
    KVT_RETURN_IF_ERROR(Check(offset, bytes));
    std::memcpy(bytes_.data() + offset, src, bytes);
    return Status::Ok();
  }
  Status CopyToHost(void* dst, uint64_t offset, uint64_t bytes) override {
    KVT_RETURN_IF_ERROR(Check(offset, bytes));
    std::memcpy(dst, bytes_.data() + offset, bytes);
    return Status::Ok();
  }

 private:
  Status Check(uint64_t offset, uint64_t bytes) const {
    if (offset > bytes_.size() || bytes > bytes_.size() - offset) return InvalidArgument("outside the simulated pool");
    return Status::Ok();
  }
  std::vector<char> bytes_;
};

}  // namespace

GpuTierParts MakeGpuTier(const DaemonConfig& config, tiering::BlockStore* store, prometheus::Registry& registry) {
  GpuTierParts parts;
  if (config.gpu_pool_bytes == 0) {
    spdlog::info("gpu tier off (gpu_pool_bytes is 0)");
    return parts;
  }
  if (config.gpu_pool_simulated) {
    spdlog::warn("gpu tier: SIMULATED {} MiB pool in host memory (--gpu-pool-simulated, for tests); clients "
                 "cannot map it", config.gpu_pool_bytes >> 20);
    parts.memory = std::make_unique<SimulatedMemory>(config.gpu_pool_bytes);
    parts.tier = std::make_unique<tiering::GpuTier>(parts.memory.get(), store, registry);
    return parts;  // no export: kGpuPoolInfo answers UNSUPPORTED
  }
  auto pool = gpu::DevicePool::Create(config.gpu_pool_bytes, config.gpu_device);
  if (!pool.ok()) {
    spdlog::warn("gpu tier off: {} MiB pool on device {} not created: {}; serving on the host path",
                 config.gpu_pool_bytes >> 20, config.gpu_device, pool.status().ToString());
    return parts;
  }
  const gpu::PoolExport& e = (*pool)->exported();
  parts.info.capacity_bytes = e.bytes;
  parts.info.device = e.device;
  static_assert(sizeof parts.info.pci_bus_id == sizeof e.pci_bus_id);
  static_assert(sizeof parts.info.ipc_handle == sizeof e.ipc_handle);
  std::memcpy(parts.info.pci_bus_id, e.pci_bus_id, sizeof e.pci_bus_id);
  std::memcpy(parts.info.ipc_handle, e.ipc_handle, sizeof e.ipc_handle);
  spdlog::info("gpu tier: {} MiB pool on device {} ({})", e.bytes >> 20, e.device, e.pci_bus_id);
  parts.exported = true;
  parts.memory = std::make_unique<PoolMemory>(std::move(*pool));
  parts.tier = std::make_unique<tiering::GpuTier>(parts.memory.get(), store, registry);
  return parts;
}

}  // namespace kvt::daemon
