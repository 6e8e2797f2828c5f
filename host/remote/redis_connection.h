// RedisConnection — one blocking hiredis connection used for pipelines: Send writes a batch of
// commands in one writev stream, Read takes the replies in order. Every call is bounded by a
// Deadline (socket send/receive timeouts set from the time left); a timeout, a reset or a
// protocol error marks the connection broken, and a broken connection is never used again.
//
// Why blocking contexts rather than hiredis' async API: a pipeline of N commands costs one
// round trip either way, the deadline of a blocking socket bounds every call without an event
// loop, and each session thread drives its own batch on connections it borrowed from the
// per-node pool (host/remote/node_pool.h), so no loop thread sits between the engine's request
// and the socket. Large values go out with writev straight from the host slot (no copy into
// hiredis' output buffer).
//
// Not thread-safe: one thread at a time (the pool hands a connection to one borrower).
#pragma once

#include <hiredis/hiredis.h>

#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/deadline.h"
#include "common/status_or.h"
#include "host/remote/redis_command.h"

namespace kvt::remote {

struct Endpoint {
  std::string host;
  int port = 0;
  std::string ToString() const { return host + ":" + std::to_string(port); }
  friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

// "HOST:PORT" (HOST may be an IPv4 address or a name).
StatusOr<Endpoint> ParseEndpoint(std::string_view text);

struct ConnectionOptions {
  uint32_t connect_timeout_ms = 500;
  std::string user;      // "" for the default user
  std::string password;  // "" for no AUTH; never logged or put in a message
};

class RedisConnection {
 public:
  static StatusOr<std::unique_ptr<RedisConnection>> Open(const Endpoint& endpoint, const ConnectionOptions& options,
                                                         Deadline deadline);
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  Status Send(std::span<const RedisCommand* const> commands, Deadline deadline);
  // The next reply through hiredis' reader (any kind; handshakes and CLUSTER SLOTS).
  StatusOr<RedisReply> Read(Deadline deadline);
  // The next reply of a simple kind through this connection's own reader, which reads a bulk
  // reply that fits `sink` straight into it (the data path: no copy through hiredis' buffers);
  // of any other bulk it keeps at most kMaxTextBulkBytes (redis_command.h) and drops the rest.
  // Do not interleave with Read on the same replies.
  StatusOr<Reply> ReadSimple(Deadline deadline, const BulkSink* sink);
  // Send + Read of one command.
  StatusOr<RedisReply> Call(const RedisCommand& command, Deadline deadline);

  bool broken() const { return broken_; }
  // Batches completed on this connection (0: never used, so a failure is not a stale socket).
  uint64_t uses() const { return uses_; }
  void CountUse() { ++uses_; }
  const Endpoint& endpoint() const { return endpoint_; }

 private:
  RedisConnection(redisContext* ctx, Endpoint endpoint) : ctx_(ctx), endpoint_(std::move(endpoint)) {}
  Status SetDeadline(Deadline deadline);
  // Buffered input of ReadSimple.
  Status Fill(Deadline deadline);
  StatusOr<std::string> ReadLine(Deadline deadline);
  Status ReadExact(char* dst, uint64_t n, Deadline deadline);
  Status Discard(uint64_t n, Deadline deadline);  // reads n bytes and drops them
  Status ReadFailure(ssize_t n, int err);

  redisContext* ctx_;
  Endpoint endpoint_;
  bool broken_ = false;
  uint64_t uses_ = 0;
  Clock::time_point deadline_set_{};
  std::chrono::nanoseconds timeout_set_{0};  // SO_RCVTIMEO / SO_SNDTIMEO now on the socket
  std::vector<char> in_ = std::vector<char>(64 << 10);
  size_t in_pos_ = 0, in_len_ = 0;
};

}  // namespace kvt::remote
