// DevicePool in a build without CUDA: the GPU tier is absent.
#include "gpu/device_pool.h"

namespace kvt::gpu {

StatusOr<std::unique_ptr<DevicePool>> DevicePool::Create(uint64_t, int) {
  return Unsupported("kv-tierd was built without CUDA (KVT_ENABLE_CUDA=OFF)");
}

DevicePool::~DevicePool() = default;

Status DevicePool::CheckRange(uint64_t, uint64_t) const { return Unsupported("no GPU pool"); }
Status DevicePool::CopyToDevice(uint64_t, const void*, uint64_t) { return Unsupported("no GPU pool"); }
Status DevicePool::CopyToHost(void*, uint64_t, uint64_t) { return Unsupported("no GPU pool"); }

}  // namespace kvt::gpu
