// Sending and receiving a fixed-size message with file descriptors (SCM_RIGHTS) over a Unix
// stream socket. Blocking with a deadline (poll), EINTR-safe, never leaks a received fd.
#pragma once

#include <cstddef>
#include <vector>

#include "common/deadline.h"
#include "common/status.h"
#include "common/unique_fd.h"

namespace kvt::protocol {

inline constexpr size_t kMaxPassedFds = 4;

// Sends exactly `bytes` bytes; the fds travel with the first byte.
Status SendWithFds(int socket_fd, const void* data, size_t bytes, const std::vector<int>& fds,
                   Deadline deadline);

// Receives exactly `bytes` bytes and up to kMaxPassedFds fds (appended to *fds).
// A peer that closes early yields DISCONNECTED; an expired deadline yields TIMEOUT.
Status ReceiveWithFds(int socket_fd, void* data, size_t bytes, std::vector<UniqueFd>* fds,
                      Deadline deadline);

}  // namespace kvt::protocol
