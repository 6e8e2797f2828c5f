#include "host/numa_placement.h"

#include <hwloc.h>

#include <cerrno>

#include <mutex>

namespace kvt::host {
namespace {

// One topology for the process, loaded on first use (loading walks sysfs: not free).
hwloc_topology_t Topology() {
  static hwloc_topology_t topology = [] {
    hwloc_topology_t t = nullptr;
    if (hwloc_topology_init(&t) != 0) return static_cast<hwloc_topology_t>(nullptr);
    if (hwloc_topology_load(t) != 0) {
      hwloc_topology_destroy(t);
      return static_cast<hwloc_topology_t>(nullptr);
    }
    return t;
  }();
  return topology;
}

}  // namespace

int NumaNodeCount() {
  hwloc_topology_t t = Topology();
  if (!t) return 1;
  int n = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_NUMANODE);
  return n > 0 ? n : 1;
}

StatusOr<int> BindToNumaNode(void* addr, size_t bytes, int node) {
  hwloc_topology_t t = Topology();
  if (!t) return Unsupported("hwloc topology unavailable");
  int nodes = NumaNodeCount();
  if (node >= nodes) {
    return InvalidArgument("numa_node " + std::to_string(node) + " but the machine has " +
                           std::to_string(nodes));
  }
  if (node < 0) node = 0;
  if (nodes == 1) return node;  // nothing to choose
  hwloc_obj_t obj = hwloc_get_obj_by_type(t, HWLOC_OBJ_NUMANODE, static_cast<unsigned>(node));
  if (!obj) return Internal("hwloc lost NUMA node " + std::to_string(node));
  if (hwloc_set_area_membind(t, addr, bytes, obj->nodeset, HWLOC_MEMBIND_BIND,
                             HWLOC_MEMBIND_BYNODESET) != 0) {
    return ErrnoStatus("hwloc_set_area_membind", errno);
  }
  return node;
}

Status BindThreadToNumaNode(int node) {
  hwloc_topology_t t = Topology();
  if (!t || node < 0 || NumaNodeCount() == 1) return Status::Ok();
  hwloc_obj_t obj = hwloc_get_obj_by_type(t, HWLOC_OBJ_NUMANODE, static_cast<unsigned>(node));
  if (!obj) return InvalidArgument("no NUMA node " + std::to_string(node));
  if (hwloc_set_cpubind(t, obj->cpuset, HWLOC_CPUBIND_THREAD) != 0) {
    return ErrnoStatus("hwloc_set_cpubind", errno);
  }
  return Status::Ok();
}

}  // namespace kvt::host
