#include "daemon/namespace_registry.h"

#include <cstring>

namespace kvt::daemon {

void NamespaceRegistry::Register(const tiering::Namespace& ns) {
  std::lock_guard lock(mu_);
  if (entries_.count(ns.fingerprint) || entries_.size() >= kMaxEntries) return;
  protocol::NamespaceListing l{};
  std::strncpy(l.tenant, ns.tenant.c_str(), sizeof l.tenant - 1);
  std::strncpy(l.model_id, ns.layout.model_id.c_str(), sizeof l.model_id - 1);
  l.num_layers = ns.layout.num_layers;
  l.num_kv_heads = ns.layout.num_kv_heads;
  l.head_dim = ns.layout.head_dim;
  l.dtype = static_cast<uint32_t>(ns.layout.dtype);
  l.tokens_per_chunk = ns.layout.tokens_per_chunk;
  entries_.emplace(ns.fingerprint, l);
}

std::vector<protocol::NamespaceListing> NamespaceRegistry::List(const tiering::ChunkIndex& index) const {
  std::unordered_map<tiering::Fingerprint, protocol::NamespaceListing, tiering::ChunkKeyHash> copy;
  {
    std::lock_guard lock(mu_);
    copy = entries_;
  }
  index.ForEach([&](const tiering::ChunkEntry& e) {
    auto it = copy.find(e.fingerprint);
    if (it == copy.end()) return;
    it->second.chunks += 1;
    it->second.bytes += e.bytes;
  });
  std::vector<protocol::NamespaceListing> out;
  out.reserve(copy.size());
  for (auto& [fp, l] : copy) out.push_back(l);
  return out;
}

}  // namespace kvt::daemon
