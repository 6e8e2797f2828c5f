#include "host/remote/redis_connection.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <deque>
#include <vector>

namespace kvt::remote {
namespace {

timeval ToTimeval(std::chrono::nanoseconds d) {
  auto us = std::max<int64_t>(1000, std::chrono::duration_cast<std::chrono::microseconds>(d).count());
  timeval tv;
  tv.tv_sec = static_cast<time_t>(us / 1000000);
  tv.tv_usec = static_cast<suseconds_t>(us % 1000000);
  return tv;
}

}  // namespace

StatusOr<Endpoint> ParseEndpoint(std::string_view text) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) {
    return InvalidArgument("endpoint '" + std::string(text) + "' is not HOST:PORT");
  }
  Endpoint e;
  e.host = std::string(text.substr(0, colon));
  int port = 0;
  for (char c : text.substr(colon + 1)) {
    if (c < '0' || c > '9' || port > 65535) return InvalidArgument("endpoint '" + std::string(text) + "': bad port");
    port = port * 10 + (c - '0');
  }
  if (port <= 0 || port > 65535) return InvalidArgument("endpoint '" + std::string(text) + "': bad port");
  e.port = port;
  return e;
}

StatusOr<std::unique_ptr<RedisConnection>> RedisConnection::Open(const Endpoint& endpoint,
                                                                 const ConnectionOptions& options, Deadline deadline) {
  auto budget = std::min<std::chrono::nanoseconds>(deadline.remaining(),
                                                   std::chrono::milliseconds(options.connect_timeout_ms));
  if (budget.count() <= 0) return Timeout("connect " + endpoint.ToString() + ": no time left");
  timeval tv = ToTimeval(budget);
  redisContext* ctx = redisConnectWithTimeout(endpoint.host.c_str(), endpoint.port, tv);
  if (ctx == nullptr) return IoError("connect " + endpoint.ToString() + ": out of memory");
  if (ctx->err != 0) {
    std::string why = ctx->errstr;
    redisFree(ctx);
    return IoError("connect " + endpoint.ToString() + ": " + why);
  }
  std::unique_ptr<RedisConnection> c(new RedisConnection(ctx, endpoint));
  if (!options.password.empty()) {
    RedisCommand auth;
    auth.Add("AUTH");
    if (!options.user.empty()) auth.Add(options.user);
    auth.Add(options.password);
    KVT_ASSIGN_OR_RETURN(RedisReply reply, c->Call(auth, deadline));
    if (reply->type == REDIS_REPLY_ERROR) {
      // The server's message names no secret ("WRONGPASS invalid username-password pair").
      return PermissionDenied("AUTH" + (options.user.empty() ? std::string() : " as '" + options.user + "'") +
                              " refused by " + endpoint.ToString() + ": " + std::string(reply->str, reply->len));
    }
  }
  return c;
}

RedisConnection::~RedisConnection() { redisFree(ctx_); }

Status RedisConnection::SetDeadline(Deadline deadline) {
  auto left = deadline.remaining();
  if (left.count() <= 0) {
    broken_ = true;
    return Timeout(endpoint_.ToString() + ": deadline passed");
  }
  if (deadline.at() == deadline_set_) return Status::Ok();  // this batch's timeouts are set
  deadline_set_ = deadline.at();
  // The socket timeouts bound each blocking call, so a timeout no longer than the time left keeps
  // every call inside the deadline. Batches come with deadlines of the same length, so the value
  // set for the last one usually still fits: keeping it saves two system calls per batch (costly
  // on a VM). It is set a sixteenth short so that the next batch's deadline still finds it fitting.
  if (timeout_set_ <= left && timeout_set_ >= left - left / 8) return Status::Ok();
  timeout_set_ = left - left / 16;
  timeval tv = ToTimeval(timeout_set_);
  if (::setsockopt(ctx_->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
      ::setsockopt(ctx_->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) {
    broken_ = true;
    return ErrnoStatus("setsockopt(SO_RCVTIMEO) " + endpoint_.ToString(), errno);
  }
  return Status::Ok();
}

Status RedisConnection::Send(std::span<const RedisCommand* const> commands, Deadline deadline) {
  if (broken_) return IoError(endpoint_.ToString() + ": connection broken");
  KVT_RETURN_IF_ERROR(SetDeadline(deadline));
  std::vector<iovec> iov;
  std::deque<std::string> arena;
  for (const RedisCommand* c : commands) c->Encode(&iov, &arena);
  size_t first = 0;
  while (first < iov.size()) {
    int count = static_cast<int>(std::min<size_t>(iov.size() - first, IOV_MAX));
    ssize_t n = ::writev(ctx_->fd, iov.data() + first, count);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      broken_ = true;
      if (err == EAGAIN || err == EWOULDBLOCK) return Timeout("write to " + endpoint_.ToString() + " timed out");
      return ErrnoStatus("write to " + endpoint_.ToString(), err);
    }
    size_t left = static_cast<size_t>(n);
    while (first < iov.size() && left >= iov[first].iov_len) left -= iov[first++].iov_len;
    if (left > 0) {
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
    if (first < iov.size() && deadline.expired()) {
      broken_ = true;
      return Timeout("write to " + endpoint_.ToString() + " timed out");
    }
  }
  return Status::Ok();
}

StatusOr<RedisReply> RedisConnection::Read(Deadline deadline) {
  if (broken_) return IoError(endpoint_.ToString() + ": connection broken");
  void* raw = nullptr;
  // A reply already parsed from an earlier read needs no socket.
  if (redisReaderGetReply(ctx_->reader, &raw) == REDIS_OK && raw != nullptr) return RedisReply(static_cast<redisReply*>(raw));
  KVT_RETURN_IF_ERROR(SetDeadline(deadline));
  errno = 0;
  if (redisGetReply(ctx_, &raw) != REDIS_OK || raw == nullptr) {
    int err = errno;
    broken_ = true;
    std::string why = ctx_->errstr[0] ? ctx_->errstr : "no reply";
    if (err == EAGAIN || err == EWOULDBLOCK) return Timeout("read from " + endpoint_.ToString() + " timed out");
    return IoError("read from " + endpoint_.ToString() + ": " + why);
  }
  return RedisReply(static_cast<redisReply*>(raw));
}

Status RedisConnection::ReadFailure(ssize_t n, int err) {
  broken_ = true;
  if (n == 0) return IoError("read from " + endpoint_.ToString() + ": connection closed");
  if (err == EAGAIN || err == EWOULDBLOCK) return Timeout("read from " + endpoint_.ToString() + " timed out");
  return ErrnoStatus("read from " + endpoint_.ToString(), err);
}

Status RedisConnection::Fill(Deadline deadline) {
  if (in_pos_ > 0) {
    std::memmove(in_.data(), in_.data() + in_pos_, in_len_ - in_pos_);
    in_len_ -= in_pos_;
    in_pos_ = 0;
  }
  if (in_len_ == in_.size()) in_.resize(in_.size() * 2);  // a very long line
  KVT_RETURN_IF_ERROR(SetDeadline(deadline));
  for (;;) {
    ssize_t n = ::read(ctx_->fd, in_.data() + in_len_, in_.size() - in_len_);
    if (n > 0) {
      in_len_ += static_cast<size_t>(n);
      return Status::Ok();
    }
    if (n < 0 && errno == EINTR) continue;
    return ReadFailure(n, errno);
  }
}

StatusOr<std::string> RedisConnection::ReadLine(Deadline deadline) {
  for (;;) {
    const char* begin = in_.data() + in_pos_;
    const char* end = in_.data() + in_len_;
    for (const char* p = begin; p + 1 < end; ++p) {
      if (p[0] == '\r' && p[1] == '\n') {
        std::string line(begin, p);
        in_pos_ += line.size() + 2;
        return line;
      }
    }
    if (in_len_ - in_pos_ > (1u << 20)) {
      broken_ = true;
      return IoError("read from " + endpoint_.ToString() + ": reply line too long");
    }
    KVT_RETURN_IF_ERROR(Fill(deadline));
  }
}

Status RedisConnection::ReadExact(char* dst, uint64_t n, Deadline deadline) {
  uint64_t have = std::min<uint64_t>(n, in_len_ - in_pos_);
  std::memcpy(dst, in_.data() + in_pos_, have);
  in_pos_ += have;
  dst += have;
  n -= have;
  if (n == 0) return Status::Ok();
  KVT_RETURN_IF_ERROR(SetDeadline(deadline));
  while (n >= in_.size() / 2) {  // large remainders go straight to the destination
    // MSG_WAITALL: one system call for the whole remainder (the kernel copies each segment as it
    // arrives) rather than one per segment; SO_RCVTIMEO still ends it at the deadline.
    ssize_t r = ::recv(ctx_->fd, dst, n, MSG_WAITALL);
    if (r > 0) {
      dst += r;
      n -= static_cast<uint64_t>(r);
      if (n > 0 && deadline.expired()) {  // a trickle must not stretch the batch past its deadline
        broken_ = true;
        return Timeout("read from " + endpoint_.ToString() + " timed out");
      }
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    return ReadFailure(r, errno);
  }
  while (n > 0) {
    if (in_pos_ == in_len_) KVT_RETURN_IF_ERROR(Fill(deadline));
    uint64_t take = std::min<uint64_t>(n, in_len_ - in_pos_);
    std::memcpy(dst, in_.data() + in_pos_, take);
    in_pos_ += take;
    dst += take;
    n -= take;
  }
  return Status::Ok();
}

Status RedisConnection::Discard(uint64_t n, Deadline deadline) {
  if (n == 0) return Status::Ok();
  std::vector<char> scratch(std::min<uint64_t>(n, 1 << 20));
  while (n > 0) {
    const uint64_t take = std::min<uint64_t>(n, scratch.size());
    KVT_RETURN_IF_ERROR(ReadExact(scratch.data(), take, deadline));
    n -= take;
  }
  return Status::Ok();
}

StatusOr<Reply> RedisConnection::ReadSimple(Deadline deadline, const BulkSink* sink) {
  if (broken_) return IoError(endpoint_.ToString() + ": connection broken");
  KVT_ASSIGN_OR_RETURN(std::string line, ReadLine(deadline));
  Reply r;
  if (line.empty()) {
    broken_ = true;
    return IoError("read from " + endpoint_.ToString() + ": empty reply line");
  }
  std::string_view rest(line.data() + 1, line.size() - 1);
  auto number = [&](int64_t* out) {
    errno = 0;
    char* end = nullptr;
    std::string tmp(rest);
    long long v = std::strtoll(tmp.c_str(), &end, 10);
    if (errno != 0 || end == tmp.c_str() || *end != '\0') return false;
    *out = v;
    return true;
  };
  switch (line[0]) {
    case '+': r.kind = Reply::Kind::kStatus; r.text = std::string(rest); return r;
    case '-': r.kind = Reply::Kind::kError; r.text = std::string(rest); return r;
    case ':':
      r.kind = Reply::Kind::kInteger;
      if (!number(&r.integer)) break;
      return r;
    case '$': {
      int64_t len = 0;
      if (!number(&len) || len < -1 || len > (int64_t{1} << 32)) break;
      if (len == -1) {
        r.kind = Reply::Kind::kNil;
        return r;
      }
      r.kind = Reply::Kind::kBulk;
      r.bulk_bytes = static_cast<uint64_t>(len);
      if (sink && r.bulk_bytes == sink->header_bytes + sink->payload_bytes) {
        KVT_RETURN_IF_ERROR(ReadExact(sink->header, sink->header_bytes, deadline));
        KVT_RETURN_IF_ERROR(ReadExact(sink->payload, sink->payload_bytes, deadline));
        r.in_sink = true;
      } else {
        r.text.resize(std::min(r.bulk_bytes, kMaxTextBulkBytes));
        KVT_RETURN_IF_ERROR(ReadExact(r.text.data(), r.text.size(), deadline));
        KVT_RETURN_IF_ERROR(Discard(r.bulk_bytes - r.text.size(), deadline));
      }
      char crlf[2];
      KVT_RETURN_IF_ERROR(ReadExact(crlf, 2, deadline));
      if (crlf[0] != '\r' || crlf[1] != '\n') break;
      return r;
    }
    default: break;
  }
  broken_ = true;
  return IoError("read from " + endpoint_.ToString() + ": unexpected reply '" + line.substr(0, 32) + "'");
}

StatusOr<RedisReply> RedisConnection::Call(const RedisCommand& command, Deadline deadline) {
  const RedisCommand* one[] = {&command};
  KVT_RETURN_IF_ERROR(Send(one, deadline));
  return Read(deadline);
}

}  // namespace kvt::remote
