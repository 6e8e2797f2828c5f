#include "daemon/remote_wiring.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdlib>

#ifdef KVT_HAVE_REMOTE
#include "host/remote/remote_tier.h"
#endif

namespace kvt::daemon {

StatusOr<std::unique_ptr<tiering::PrefixTier>> MakeRemoteTier(const RemoteConfig& c, prometheus::Registry& registry) {
  if (c.endpoints.empty()) return std::unique_ptr<tiering::PrefixTier>();
#ifdef KVT_HAVE_REMOTE
  remote::RemoteOptions o;
  o.endpoints = c.endpoints;
  o.user = c.user;
  o.password = c.password;
  if (o.password.empty() && !c.password_env.empty()) {
    if (const char* p = std::getenv(c.password_env.c_str())) o.password = p;
  }
  o.key_prefix = c.key_prefix;
  o.ttl_ms = c.ttl_ms;
  o.pool_size = c.pool_size;
  o.writer_threads = c.writer_threads;
  o.connect_timeout_ms = c.connect_timeout_ms;
  o.op_timeout_ms = c.timeout_ms;
  o.backoff_min_ms = c.backoff_min_ms;
  o.backoff_max_ms = c.backoff_max_ms;
  o.write_queue_bytes = c.write_queue_bytes;
  o.admission = c.admission == "leading" ? remote::Admission::kLeading
                : c.admission == "none"  ? remote::Admission::kNone
                                         : remote::Admission::kAll;
  o.admit_leading_chunks = c.admit_leading_chunks;
  KVT_ASSIGN_OR_RETURN(auto tier, remote::RemoteTier::Create(o, registry));
  // Refused credentials are a configuration error: stop here, with the reason, rather than
  // serve for ever without the remote tier. An unreachable Redis is not (the tier keeps trying).
  KVT_RETURN_IF_ERROR(tier->CheckCredentials(
      Deadline::After(std::chrono::milliseconds(uint64_t{c.connect_timeout_ms} + c.timeout_ms))));
  std::string seeds;
  for (const auto& e : c.endpoints) seeds += (seeds.empty() ? "" : ",") + e;
  // Never the password: only whether one is set.
  spdlog::info("remote tier: seeds {} | user {} | password {} | prefix '{}' | ttl {} ms | pool {} | timeout {} ms | "
               "admission {}",
               seeds, c.user.empty() ? "default" : c.user, o.password.empty() ? "none" : "set", c.key_prefix, c.ttl_ms,
               c.pool_size, c.timeout_ms, c.admission);
  return std::unique_ptr<tiering::PrefixTier>(std::move(tier));
#else
  (void)registry;
  return Unsupported("remote tier configured but this kv-tierd was built without hiredis (libhiredis-dev)");
#endif
}

}  // namespace kvt::daemon
