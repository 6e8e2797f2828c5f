// PoolMapping in a build without CUDA: there is no pool to map.
#include "gpu/pool_mapping.h"

namespace kvt::gpu {

StatusOr<std::unique_ptr<PoolMapping>> PoolMapping::Open(const PoolExport&, void*, uint64_t) {
  return Unsupported("libkvtier was built without CUDA (KVT_ENABLE_CUDA=OFF): the GPU pool cannot be mapped");
}

PoolMapping::~PoolMapping() = default;

}  // namespace kvt::gpu
