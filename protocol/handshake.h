// The control-socket handshake: the only messages that travel over the Unix socket.
//
//   client -> daemon   HelloRequest (fixed size)
//   daemon -> client   HelloReply (fixed size) + SCM_RIGHTS [region memfd, sq eventfd, cq eventfd]
//                      (no fds when status != OK)
// After the handshake the socket carries nothing; its closing tells the daemon the client is gone.
// Every field is validated by the receiver; strings are NUL-padded fixed arrays.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "common/status_or.h"

namespace kvt::protocol {

inline constexpr uint32_t kHelloMagic = 0x4b565431;  // "KVT1"
inline constexpr uint32_t kReplyMagic = 0x4b565452;  // "KVTR"
inline constexpr size_t kTenantMax = 64;             // including the terminating NUL
inline constexpr size_t kMessageMax = 256;

struct HelloRequest {
  uint32_t magic;
  uint32_t protocol_version;     // kProtocolVersion of the client
  uint32_t ring_entries;         // requested SQ/CQ depth (power of two), 0: daemon default
  uint32_t reserved;
  uint64_t heap_bytes;           // requested shared heap, 0: daemon default
  char tenant[kTenantMax];
};
static_assert(sizeof(HelloRequest) == 88);

struct HelloReply {
  uint32_t magic;
  uint32_t protocol_version;     // the daemon's
  uint32_t status;               // kvt::StatusCode
  uint32_t ring_entries;         // granted
  uint64_t region_bytes;         // size of the shared region memfd
  uint64_t sq_offset;            // RingHeader + entries, in the region
  uint64_t cq_offset;
  uint64_t messages_offset;      // [ring_entries][kMessageMax] error messages, by CQ slot
  uint64_t heap_offset;
  uint64_t heap_bytes;
  uint64_t session_id;
  char message[kMessageMax];     // readable error when status != OK
};
static_assert(sizeof(HelloReply) == 328);

// Tenant names: 1-63 characters of [A-Za-z0-9._-].
Status ValidateTenantName(std::string_view tenant);

// Reads a NUL-padded fixed array, rejecting a missing terminator.
StatusOr<std::string> ReadFixedString(const char* data, size_t capacity);

}  // namespace kvt::protocol
