// The remote tier as the daemon builds it from its configuration: nullptr when no endpoint is
// configured, an error for an unusable configuration, and UNSUPPORTED when endpoints are set but
// this build has no hiredis.
#pragma once

#include <prometheus/registry.h>

#include <memory>

#include "common/status_or.h"
#include "daemon/config.h"
#include "tiering/prefix_tier.h"

namespace kvt::daemon {

StatusOr<std::unique_ptr<tiering::PrefixTier>> MakeRemoteTier(const RemoteConfig& config,
                                                              prometheus::Registry& registry);

}  // namespace kvt::daemon
