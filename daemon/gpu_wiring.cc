#include "daemon/gpu_wiring.h"

#include <spdlog/spdlog.h>

#include <cstring>

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

}  // namespace

GpuTierParts MakeGpuTier(const DaemonConfig& config, tiering::BlockStore* store, prometheus::Registry& registry) {
  GpuTierParts parts;
  if (config.gpu_pool_bytes == 0) {
    spdlog::info("gpu tier off (gpu_pool_bytes is 0)");
    return parts;
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
  parts.memory = std::make_unique<PoolMemory>(std::move(*pool));
  parts.tier = std::make_unique<tiering::GpuTier>(parts.memory.get(), store, registry);
  return parts;
}

}  // namespace kvt::daemon
