// The remote tier's own RESP reader (RedisConnection::ReadSimple) against a loopback peer that
// sends fixed bytes: values of the sink's length land in the sink, any other bulk keeps at most
// kMaxTextBulkBytes (a node answering with a huge value costs a bounded allocation) and the
// stream stays in step; a peer that closes mid-reply breaks the connection.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "host/remote/redis_connection.h"

namespace kvt::remote {
namespace {

// Accepts one connection on 127.0.0.1, sends `bytes`, closes.
class OneShotPeer {
 public:
  explicit OneShotPeer(std::string bytes) : bytes_(std::move(bytes)) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(listen(fd_, 1), 0);
    socklen_t len = sizeof a;
    EXPECT_EQ(getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len), 0);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      const int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      for (size_t at = 0; at < bytes_.size();) {
        const ssize_t n = send(c, bytes_.data() + at, bytes_.size() - at, MSG_NOSIGNAL);
        if (n <= 0) break;
        at += static_cast<size_t>(n);
      }
      close(c);
    });
  }
  ~OneShotPeer() {
    thread_.join();
    close(fd_);
  }
  Endpoint endpoint() const { return {"127.0.0.1", port_}; }

 private:
  std::string bytes_;
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

Deadline Soon() { return Deadline::After(std::chrono::seconds(10)); }

std::string Bulk(const std::string& v) { return "$" + std::to_string(v.size()) + "\r\n" + v + "\r\n"; }

TEST(RedisConnection, BulkOutsideTheSinkKeepsAtMostItsStartAndTheStreamStaysInStep) {
  const std::string fits(128 + 1000, 'a');
  const std::string huge(8 << 20, 'h');  // 8 MiB: a value of another layout, or a hostile node
  OneShotPeer peer(Bulk(fits) + Bulk(huge) + ":7\r\n" + Bulk("short"));
  auto c = RedisConnection::Open(peer.endpoint(), {}, Soon());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  std::string header(128, '\0'), payload(1000, '\0');
  const BulkSink sink{header.data(), header.size(), payload.data(), payload.size()};

  auto r = (*c)->ReadSimple(Soon(), &sink);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->in_sink);
  EXPECT_EQ(header + payload, fits);

  r = (*c)->ReadSimple(Soon(), &sink);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->in_sink);
  EXPECT_EQ(r->bulk_bytes, huge.size());
  EXPECT_EQ(r->text, huge.substr(0, kMaxTextBulkBytes));

  r = (*c)->ReadSimple(Soon(), &sink);  // the rest of the huge value was dropped, not left behind
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->kind, Reply::Kind::kInteger);
  EXPECT_EQ(r->integer, 7);

  r = (*c)->ReadSimple(Soon(), nullptr);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->text, "short");
}

TEST(RedisConnection, PeerClosingMidReplyBreaksTheConnection) {
  OneShotPeer peer("$1000\r\n" + std::string(10, 'x'));
  auto c = RedisConnection::Open(peer.endpoint(), {}, Soon());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto r = (*c)->ReadSimple(Soon(), nullptr);
  EXPECT_EQ(r.status().code(), StatusCode::kIoError) << r.status().ToString();
  EXPECT_TRUE((*c)->broken());
  EXPECT_FALSE((*c)->ReadSimple(Soon(), nullptr).ok());
}

}  // namespace
}  // namespace kvt::remote
