// What a Redis node sends back, as the remote tier's own RESP reader takes it
// (RedisConnection::ReadSimple: the data path's reader, which puts a value of the expected size
// straight into the caller's buffer): a node that is dead, restarted mid-reply, not Redis at all,
// or hostile. A loopback listener serves the input's bytes and closes.
//
// Input: [sink byte s][reply stream]; s > 0 gives each read a sink of a 128-byte header and
// 16 * s payload bytes, s = 0 none. Properties: every read returns a reply or an error; after an
// error the connection is broken and refuses further reads at once; a reply placed in the sink had
// exactly the sink's length; one not placed holds its bytes, or the start of them when it is larger
// than a value can be (the rest is read and dropped, never allocated).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "host/remote/redis_connection.h"
#include "tests/fuzz/fuzz_target.h"

namespace {

using kvt::remote::Reply;

constexpr int kMaxReplies = 64;

// A loopback listener on an ephemeral port, for the process's life.
class Listener {
 public:
  static Listener& Get() {
    static Listener* listener = new Listener();
    return *listener;
  }
  int fd() const { return fd_; }
  int port() const { return port_; }

 private:
  Listener() {
    signal(SIGPIPE, SIG_IGN);
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    KVT_FUZZ_CHECK(fd_ >= 0, "socket");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    KVT_FUZZ_CHECK(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0, "bind 127.0.0.1");
    KVT_FUZZ_CHECK(listen(fd_, 4) == 0, "listen");
    socklen_t len = sizeof a;
    KVT_FUZZ_CHECK(getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0, "getsockname");
    port_ = ntohs(a.sin_port);
  }
  int fd_ = -1;
  int port_ = 0;
};

std::string Bulk(const std::string& value) { return "$" + std::to_string(value.size()) + "\r\n" + value + "\r\n"; }

}  // namespace

namespace kvt::fuzz {

std::vector<std::vector<uint8_t>> Seeds() {
  const std::string value(128 + 16 * 4, 'v');  // fits the sink of s = 4
  return {
      Bytes(std::string(1, '\4') + "+OK\r\n:1\r\n:0\r\n$-1\r\n" + Bulk(value) + "-MOVED 3999 127.0.0.1:7001\r\n" +
            Bulk("short") + ":42\r\n"),
      Bytes(std::string(1, '\0') + Bulk(value) + "+PONG\r\n-ERR unknown command\r\n$0\r\n\r\n"),
      Bytes(std::string(1, '\2') + "$" + std::to_string(128 + 32) + "\r\n" + std::string(100, 'x')),  // cut short
  };
}

}  // namespace kvt::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  Listener& listener = Listener::Get();
  const uint64_t payload_bytes = 16ull * data[0];
  std::thread server([&] {
    const int c = accept4(listener.fd(), nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) return;
    for (size_t at = 1; at < size;) {
      const ssize_t n = send(c, data + at, size - at, MSG_NOSIGNAL);
      if (n <= 0) break;  // the client hung up
      at += static_cast<size_t>(n);
    }
    close(c);
  });
  {
    kvt::remote::ConnectionOptions options;
    auto connection = kvt::remote::RedisConnection::Open({"127.0.0.1", listener.port()}, options,
                                                         kvt::Deadline::After(std::chrono::seconds(5)));
    KVT_FUZZ_CHECK(connection.ok(), "connecting to the loopback listener: " + connection.status().ToString());
    std::vector<char> header(128), payload(payload_bytes);
    const kvt::remote::BulkSink sink{header.data(), header.size(), payload.data(), payload.size()};
    for (int i = 0; i < kMaxReplies; ++i) {
      auto reply = (*connection)->ReadSimple(kvt::Deadline::After(std::chrono::seconds(5)),
                                             payload_bytes > 0 ? &sink : nullptr);
      if (!reply.ok()) {
        KVT_FUZZ_CHECK(reply.status().code() != kvt::StatusCode::kTimeout, "a closed peer is not a timeout");
        KVT_FUZZ_CHECK((*connection)->broken(), "an unreadable reply breaks the connection");
        KVT_FUZZ_CHECK(!(*connection)->ReadSimple(kvt::Deadline::After(std::chrono::seconds(5)), nullptr).ok(),
                       "a broken connection refuses reads");
        break;
      }
      if (reply->in_sink) {
        KVT_FUZZ_CHECK(payload_bytes > 0 && reply->bulk_bytes == header.size() + payload_bytes,
                       "only a reply of the sink's length goes to the sink");
      } else if (reply->kind == Reply::Kind::kBulk) {
        KVT_FUZZ_CHECK(reply->text.size() == std::min<uint64_t>(reply->bulk_bytes, kvt::remote::kMaxTextBulkBytes),
                       "a bulk reply outside the sink keeps its bytes, up to kMaxTextBulkBytes");
      }
      kvt::fuzz::CountAccepted();
    }
  }
  server.join();
  return 0;
}
