// The control socket's handshake (protocol/handshake.h) as any local process may speak it: the
// input's bytes are written on a fresh connection to an in-process kv-tierd, which is then
// half-closed and read to its end.
// Properties: a connection that sent a whole HelloRequest gets a whole HelloReply (OK with its
// three fds, or a refusal that says why), one that sent less gets nothing; and afterwards the
// bystander's pinned chunks read back bit for bit and no session is left behind
// (in_process_daemon.h).
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "protocol/fd_passing.h"
#include "protocol/handshake.h"
#include "protocol/version.h"
#include "tests/fuzz/fuzz_target.h"
#include "tests/fuzz/in_process_daemon.h"

namespace {

using kvt::protocol::HelloReply;
using kvt::protocol::HelloRequest;

std::vector<uint8_t> Hello(uint32_t version, uint32_t ring, uint64_t heap, const char* tenant) {
  HelloRequest h{};
  h.magic = kvt::protocol::kHelloMagic;
  h.protocol_version = version;
  h.ring_entries = ring;
  h.heap_bytes = heap;
  std::strncpy(h.tenant, tenant, sizeof h.tenant - 1);
  const auto* p = reinterpret_cast<const uint8_t*>(&h);
  return std::vector<uint8_t>(p, p + sizeof h);
}

}  // namespace

namespace kvt::fuzz {

std::vector<std::vector<uint8_t>> Seeds() {
  return {
      Hello(protocol::kProtocolVersion, 0, 0, "fuzz"),
      Hello(protocol::kProtocolVersion, 16, 2ull << 20, "tenant-a.b_c"),
      Hello(protocol::kProtocolVersion + 1, 8, 1ull << 20, "newer-minor"),
      Hello((protocol::kProtocolMajor + 1u) << 16, 0, 0, "newer-major"),
  };
}

}  // namespace kvt::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kvt::fuzz::InProcessDaemon& daemon = kvt::fuzz::InProcessDaemon::Get();
  kvt::UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  KVT_FUZZ_CHECK(fd.valid(), "socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, daemon.socket().c_str(), sizeof addr.sun_path - 1);
  KVT_FUZZ_CHECK(connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0, "connect to the daemon");
  for (size_t at = 0; at < size;) {
    const ssize_t n = send(fd.get(), data + at, size - at, MSG_NOSIGNAL);
    if (n <= 0) break;  // the daemon closed after a refusal
    at += static_cast<size_t>(n);
  }
  shutdown(fd.get(), SHUT_WR);

  HelloReply reply{};
  std::vector<kvt::UniqueFd> fds;
  const kvt::Status got = kvt::protocol::ReceiveWithFds(fd.get(), &reply, sizeof reply, &fds,
                                                        kvt::Deadline::After(std::chrono::seconds(10)));
  KVT_FUZZ_CHECK(got.code() != kvt::StatusCode::kTimeout, "the daemon answers or hangs up: " + got.ToString());
  if (size < sizeof(HelloRequest)) {
    KVT_FUZZ_CHECK(!got.ok(), "less than a hello gets no reply");
  } else {
    KVT_FUZZ_CHECK(got.ok(), "a whole hello gets a whole reply: " + got.ToString());
    KVT_FUZZ_CHECK(reply.magic == kvt::protocol::kReplyMagic, "the reply's magic");
    if (reply.status == 0) {
      KVT_FUZZ_CHECK(fds.size() == 3, "an accepted client gets its region and two eventfds");
      kvt::fuzz::CountAccepted();
    } else {
      KVT_FUZZ_CHECK(fds.empty(), "a refusal passes no fds");
      KVT_FUZZ_CHECK(reply.message[0] != '\0', "a refusal says why");
    }
  }
  fds.clear();
  fd.Reset();
  daemon.CheckBystander();
  return 0;
}
