#include "protocol/fd_passing.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace kvt::protocol {
namespace {

Status WaitFor(int fd, short events, Deadline deadline) {
  for (;;) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline.remaining()).count();
    pollfd p{fd, events, 0};
    int rc = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(ms, 1 << 30)));
    if (rc > 0) return Status::Ok();
    if (rc == 0) return Timeout("socket not ready before the deadline");
    if (errno != EINTR) return ErrnoStatus("poll", errno);
  }
}

}  // namespace

Status SendWithFds(int socket_fd, const void* data, size_t bytes, const std::vector<int>& fds,
                   Deadline deadline) {
  if (fds.size() > kMaxPassedFds) return InvalidArgument("too many fds to pass");
  const char* p = static_cast<const char*>(data);
  size_t sent = 0;
  bool fds_sent = fds.empty();
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxPassedFds)];
  while (sent < bytes) {
    KVT_RETURN_IF_ERROR(WaitFor(socket_fd, POLLOUT, deadline));
    iovec iov{const_cast<char*>(p + sent), bytes - sent};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (!fds_sent) {
      std::memset(control, 0, sizeof control);
      msg.msg_control = control;
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    ssize_t n = ::sendmsg(socket_fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return ErrnoStatus("sendmsg", errno);
    }
    fds_sent = true;
    sent += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status ReceiveWithFds(int socket_fd, void* data, size_t bytes, std::vector<UniqueFd>* fds,
                      Deadline deadline) {
  char* p = static_cast<char*>(data);
  size_t got = 0;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxPassedFds)];
  while (got < bytes) {
    KVT_RETURN_IF_ERROR(WaitFor(socket_fd, POLLIN, deadline));
    iovec iov{p + got, bytes - got};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(socket_fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return ErrnoStatus("recvmsg", errno);
    }
    // Take ownership of every passed fd first, so none leaks whatever happens next.
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        fds->emplace_back(fd);
      }
    }
    if (msg.msg_flags & MSG_CTRUNC) return InvalidArgument("peer passed too many file descriptors");
    if (n == 0) return Disconnected("peer closed the connection");
    got += static_cast<size_t>(n);
  }
  return Status::Ok();
}

}  // namespace kvt::protocol
