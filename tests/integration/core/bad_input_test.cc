// Every kind of bad input, one test each: the sender gets a status code and a readable message,
// and the daemon keeps serving everyone else. Talks the wire protocol by hand (no libkvtier) so
// it can send what libkvtier never would.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>

#include "common/shared_memory.h"
#include "protocol/fd_passing.h"
#include "protocol/region_layout.h"
#include "protocol/sequence_stats.h"
#include "protocol/version.h"
#include "tests/integration/core/client_fixture.h"

namespace kvt::testing {
namespace {

using protocol::CompletionEntry;
using protocol::Opcode;
using protocol::SubmissionEntry;

int RawConnect(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  return fd;
}

protocol::HelloRequest GoodHello(const char* tenant = "raw") {
  protocol::HelloRequest h{};
  h.magic = protocol::kHelloMagic;
  h.protocol_version = protocol::kProtocolVersion;
  std::strcpy(h.tenant, tenant);
  return h;
}

// A hand-driven client session.
struct RawSession {
  UniqueFd socket;
  protocol::HelloReply reply{};
  SharedMemory region;
  protocol::SpscRing<SubmissionEntry> sq;
  protocol::SpscRing<CompletionEntry> cq;
  UniqueFd sq_event, cq_event;

  char* heap() { return region.data() + reply.heap_offset; }

  Status Open(const std::string& path, const protocol::HelloRequest& hello) {
    socket = UniqueFd(RawConnect(path));
    Deadline d = Deadline::After(std::chrono::seconds(5));
    KVT_RETURN_IF_ERROR(protocol::SendWithFds(socket.get(), &hello, sizeof hello, {}, d));
    std::vector<UniqueFd> fds;
    KVT_RETURN_IF_ERROR(protocol::ReceiveWithFds(socket.get(), &reply, sizeof reply, &fds, d));
    if (reply.status != 0) return Status(static_cast<StatusCode>(reply.status), reply.message);
    auto m = SharedMemory::Map(std::move(fds[0]), reply.region_bytes);
    if (!m.ok()) return m.status();
    region = std::move(*m);
    sq_event = std::move(fds[1]);
    cq_event = std::move(fds[2]);
    sq = protocol::SpscRing<SubmissionEntry>(region.data() + reply.sq_offset, reply.ring_entries);
    cq = protocol::SpscRing<CompletionEntry>(region.data() + reply.cq_offset, reply.ring_entries);
    return Status::Ok();
  }

  // Submits and waits (polling) for the completion; returns status and message.
  std::pair<CompletionEntry, std::string> Call(SubmissionEntry e) {
    EXPECT_EQ(sq.TryPush(e), protocol::RingResult::kOk);
    uint64_t one = 1;
    EXPECT_EQ(::write(sq_event.get(), &one, sizeof one), 8);
    CompletionEntry c{};
    std::string message;
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < until) {
      auto r = cq.TryPopWith(&c, [&](uint32_t slot) {
        message = region.data() + reply.messages_offset + uint64_t{slot} * protocol::kMessageMax;
      });
      if (r == protocol::RingResult::kOk) return {c, message};
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    ADD_FAILURE() << "no completion";
    return {c, message};
  }

  uint32_t OpenNamespace() {
    protocol::NamespaceRequest req{};
    std::strcpy(req.model_id, "raw-model");
    req.num_layers = 2;
    req.num_kv_heads = 2;
    req.head_dim = 16;
    req.dtype = 1;
    req.tokens_per_chunk = 16;
    std::memcpy(heap(), &req, sizeof req);
    SubmissionEntry e{};
    e.opcode = static_cast<uint16_t>(Opcode::kOpenNamespace);
    e.data_offset = 0;
    e.data_bytes = sizeof req;
    auto [c, m] = Call(e);
    EXPECT_EQ(c.status, 0u) << m;
    return static_cast<uint32_t>(c.value);
  }
};

class BadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    daemon_ = std::make_unique<DaemonProcess>();
    ASSERT_TRUE(daemon_->Start()) << daemon_->Log();
    ASSERT_TRUE(Connect(daemon_->socket_path(), &bystander_));
    ASSERT_TRUE(bystander_.OpenNamespace(SmallLayout(), &bystander_ns_));
    tokens_ = Tokens(77, 2 * bystander_ns_.tokens_per_chunk());
    kv_ = Kv(77, 2 * bystander_ns_.chunk_bytes());
    ASSERT_TRUE(bystander_ns_.Store(tokens_.data(), tokens_.size(), kv_.data(), kv_.size()));
  }
  // After each bad input: the daemon is alive and a well-behaved client still gets its data.
  void TearDown() override {
    EXPECT_TRUE(daemon_->Alive()) << daemon_->Log();
    std::vector<char> out(kv_.size());
    uint64_t got = 0;
    EXPECT_TRUE(bystander_ns_.Retrieve(tokens_.data(), tokens_.size(), out.data(), out.size(), &got));
    EXPECT_EQ(got, tokens_.size());
    EXPECT_EQ(out, kv_);
    kvt::Client fresh;
    EXPECT_TRUE(Connect(daemon_->socket_path(), &fresh)) << "the daemon must still accept clients";
  }

  protocol::HelloReply HelloExpectingRefusal(const protocol::HelloRequest& h) {
    RawSession s;
    Status st = s.Open(daemon_->socket_path(), h);
    EXPECT_FALSE(st.ok());
    return s.reply;
  }

  std::unique_ptr<DaemonProcess> daemon_;
  kvt::Client bystander_;
  kvt::Namespace bystander_ns_;
  std::vector<uint32_t> tokens_;
  std::vector<char> kv_;
};

TEST_F(BadInputTest, HandshakeWithBadMagic) {
  auto h = GoodHello();
  h.magic = 0xdeadbeef;
  auto r = HelloExpectingRefusal(h);
  EXPECT_EQ(r.status, static_cast<uint32_t>(StatusCode::kProtocolMismatch));
  EXPECT_NE(std::string(r.message).find("magic"), std::string::npos);
}

TEST_F(BadInputTest, HandshakeWithIncompatibleProtocolVersion) {
  auto h = GoodHello();
  h.protocol_version = (uint32_t{protocol::kProtocolMajor + 1} << 16);
  auto r = HelloExpectingRefusal(h);
  EXPECT_EQ(r.status, static_cast<uint32_t>(StatusCode::kProtocolMismatch));
  EXPECT_NE(std::string(r.message).find("protocol"), std::string::npos) << r.message;
}

TEST_F(BadInputTest, HandshakeWithBadTenantName) {
  auto h = GoodHello();
  std::strcpy(h.tenant, "no spaces/allowed");
  EXPECT_EQ(HelloExpectingRefusal(h).status, static_cast<uint32_t>(StatusCode::kInvalidArgument));
  std::memset(h.tenant, 'x', sizeof h.tenant);  // no NUL terminator at all
  EXPECT_EQ(HelloExpectingRefusal(h).status, static_cast<uint32_t>(StatusCode::kInvalidArgument));
}

TEST_F(BadInputTest, HandshakeWithAbsurdSizes) {
  auto h = GoodHello();
  h.ring_entries = 1000;  // not a power of two
  EXPECT_EQ(HelloExpectingRefusal(h).status, static_cast<uint32_t>(StatusCode::kInvalidArgument));
  h = GoodHello();
  h.heap_bytes = uint64_t{1} << 60;
  EXPECT_EQ(HelloExpectingRefusal(h).status, static_cast<uint32_t>(StatusCode::kInvalidArgument));
}

TEST_F(BadInputTest, TruncatedHelloAndSilentClient) {
  int fd = RawConnect(daemon_->socket_path());
  char half[10] = {1, 2, 3};
  EXPECT_EQ(::write(fd, half, sizeof half), 10);
  ::close(fd);  // hangs up mid-hello
  int silent = RawConnect(daemon_->socket_path());  // says nothing; the daemon must not block on it
  kvt::Client c;
  EXPECT_TRUE(Connect(daemon_->socket_path(), &c));
  ::close(silent);
}

TEST_F(BadInputTest, RandomBytesOnTheSocket) {
  int fd = RawConnect(daemon_->socket_path());
  std::vector<char> junk(4096);
  for (size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<char>(i * 131 + 7);
  ssize_t n = ::write(fd, junk.data(), junk.size());
  EXPECT_GT(n, 0);
  protocol::HelloReply r{};
  ssize_t got = ::recv(fd, &r, sizeof r, MSG_WAITALL);
  EXPECT_EQ(got, static_cast<ssize_t>(sizeof r));
  EXPECT_EQ(r.status, static_cast<uint32_t>(StatusCode::kProtocolMismatch));
  ::close(fd);
}

TEST_F(BadInputTest, BytesOnTheSocketAfterTheHandshakeEndTheSession) {
  RawSession s;
  ASSERT_TRUE(s.Open(daemon_->socket_path(), GoodHello()).ok());
  EXPECT_EQ(::write(s.socket.get(), "junk", 4), 4);
  char b;
  ssize_t n = ::recv(s.socket.get(), &b, 1, 0);
  // Closed: EOF, or a reset because the daemon left our other bytes unread.
  EXPECT_TRUE(n == 0 || (n < 0 && errno == ECONNRESET)) << "the daemon closes a session that talks out of turn";
}

class RingInputTest : public BadInputTest {
 protected:
  void SetUp() override {
    BadInputTest::SetUp();
    ASSERT_TRUE(raw_.Open(daemon_->socket_path(), GoodHello()).ok());
    ns_ = raw_.OpenNamespace();
  }
  SubmissionEntry Lookup() {
    SubmissionEntry e{};
    e.opcode = static_cast<uint16_t>(Opcode::kLookup);
    e.ns = ns_;
    e.tokens_offset = 4096;
    e.num_tokens = 32;
    return e;
  }
  void ExpectRefused(SubmissionEntry e, StatusCode code, const char* words) {
    auto [c, m] = raw_.Call(e);
    EXPECT_EQ(c.status, static_cast<uint32_t>(code)) << m;
    EXPECT_EQ(c.has_message, 1u);
    EXPECT_NE(m.find(words), std::string::npos) << m;
    auto [ok, m2] = raw_.Call(Lookup());  // the same client still works afterwards
    EXPECT_EQ(ok.status, 0u) << m2;
  }
  RawSession raw_;
  uint32_t ns_ = 0;
};

TEST_F(RingInputTest, UnknownOpcode) {
  SubmissionEntry e = Lookup();
  e.opcode = 999;
  ExpectRefused(e, StatusCode::kUnsupported, "opcode");
}

TEST_F(RingInputTest, ReservedFieldsSet) {
  SubmissionEntry e = Lookup();
  e.flags = 1;
  ExpectRefused(e, StatusCode::kInvalidArgument, "reserved");
}

TEST_F(RingInputTest, UnknownNamespaceHandle) {
  SubmissionEntry e = Lookup();
  e.ns = 12345;
  ExpectRefused(e, StatusCode::kInvalidArgument, "namespace");
}

TEST_F(RingInputTest, TokensOutsideTheHeap) {
  SubmissionEntry e = Lookup();
  e.tokens_offset = raw_.reply.heap_bytes - 8;
  ExpectRefused(e, StatusCode::kInvalidArgument, "outside the shared heap");
  e.tokens_offset = ~uint64_t{0} - 3;  // offset + length overflows
  ExpectRefused(e, StatusCode::kInvalidArgument, "outside");
  e = Lookup();
  e.num_tokens = uint64_t{1} << 62;
  ExpectRefused(e, StatusCode::kInvalidArgument, "exceeds");
}

TEST_F(RingInputTest, UnalignedTokens) {
  SubmissionEntry e = Lookup();
  e.tokens_offset = 4097;
  ExpectRefused(e, StatusCode::kInvalidArgument, "aligned");
}

TEST_F(RingInputTest, DataOutsideTheHeap) {
  SubmissionEntry e = Lookup();
  e.opcode = static_cast<uint16_t>(Opcode::kRetrieve);
  e.data_offset = raw_.reply.heap_bytes;
  e.data_bytes = 4096;
  ExpectRefused(e, StatusCode::kInvalidArgument, "outside the shared heap");
}

TEST_F(RingInputTest, WrongKvSize) {
  SubmissionEntry e = Lookup();
  e.opcode = static_cast<uint16_t>(Opcode::kStore);
  e.data_offset = 8192;
  e.data_bytes = 12345;
  ExpectRefused(e, StatusCode::kInvalidArgument, "whole chunks");
}

// The GPU-tier requests (protocol 1.2) check their buffers before anything else, and a daemon
// without a GPU tier (this one) says so.
TEST_F(RingInputTest, GpuRequests) {
  SubmissionEntry e = Lookup();
  e.opcode = static_cast<uint16_t>(Opcode::kGpuAcquire);
  e.data_offset = raw_.reply.heap_bytes;
  e.data_bytes = 16;
  ExpectRefused(e, StatusCode::kInvalidArgument, "outside the shared heap");
  e.data_offset = 8192;
  e.data_bytes = 12;
  ExpectRefused(e, StatusCode::kInvalidArgument, "whole uint64");
  e.data_bytes = 16;
  ExpectRefused(e, StatusCode::kUnsupported, "GPU tier");
  e.opcode = static_cast<uint16_t>(Opcode::kGpuRelease);
  ExpectRefused(e, StatusCode::kUnsupported, "GPU tier");
  SubmissionEntry info{};
  info.opcode = static_cast<uint16_t>(Opcode::kGpuPoolInfo);
  info.data_offset = 8192;
  info.data_bytes = sizeof(protocol::GpuPoolInfo);
  ExpectRefused(info, StatusCode::kUnsupported, "GPU tier");
}

TEST_F(RingInputTest, FirstChunkPastTheEnd) {
  SubmissionEntry e = Lookup();
  e.opcode = static_cast<uint16_t>(Opcode::kStore);
  e.arg0 = 1000;
  ExpectRefused(e, StatusCode::kInvalidArgument, "past");
}

TEST_F(RingInputTest, MalformedNamespaceRequests) {
  protocol::NamespaceRequest req{};
  std::memset(req.model_id, 'm', sizeof req.model_id);  // unterminated
  req.num_layers = 1;
  req.num_kv_heads = 1;
  req.head_dim = 1;
  req.dtype = 1;
  req.tokens_per_chunk = 1;
  std::memcpy(raw_.heap(), &req, sizeof req);
  SubmissionEntry e{};
  e.opcode = static_cast<uint16_t>(Opcode::kOpenNamespace);
  e.data_bytes = sizeof req;
  ExpectRefused(e, StatusCode::kInvalidArgument, "NUL");
  std::strcpy(req.model_id, "m");
  req.dtype = 77;
  std::memcpy(raw_.heap(), &req, sizeof req);
  ExpectRefused(e, StatusCode::kInvalidArgument, "dtype");
  e.data_bytes = 3;
  ExpectRefused(e, StatusCode::kInvalidArgument, "bytes");
}

TEST_F(RingInputTest, EvictWithoutPrivilegeIsStillServedForTheDaemonsOwnUser) {
  // The test runs as the daemon's user, so evict is allowed; it must not crash with odd sizes.
  SubmissionEntry e{};
  e.opcode = static_cast<uint16_t>(Opcode::kEvict);
  e.arg0 = ~uint64_t{0};
  auto [c, m] = raw_.Call(e);
  EXPECT_EQ(c.status, 0u) << m;
  // The bystander's chunks are gone (evicted), so store them back for TearDown's check.
  ASSERT_TRUE(bystander_ns_.Store(tokens_.data(), tokens_.size(), kv_.data(), kv_.size()));
}

// The sequence statistics block (protocol 1.1): wrong size, alignment, range or header are
// refused; a registered block full of garbage is the client's own problem (the daemon clamps it
// when scraped, see tests/unit/monitoring/sequence_metrics_test.cc) and the session keeps working.
TEST_F(RingInputTest, BadSequenceStatsBlocks) {
  SubmissionEntry e{};
  e.opcode = static_cast<uint16_t>(Opcode::kRegisterSequenceStats);
  e.data_offset = 8192;
  e.data_bytes = sizeof(protocol::SequenceStatsBlock) - 16;  // neither version's size
  ExpectRefused(e, StatusCode::kInvalidArgument, "must be");
  e.data_bytes = sizeof(protocol::SequenceStatsBlock) + 8;
  ExpectRefused(e, StatusCode::kInvalidArgument, "must be");
  e.data_bytes = sizeof(protocol::SequenceStatsBlock);
  e.data_offset = 8196;
  ExpectRefused(e, StatusCode::kInvalidArgument, "aligned");
  e.data_offset = raw_.reply.heap_bytes - 64;
  ExpectRefused(e, StatusCode::kInvalidArgument, "outside the shared heap");
  e.data_offset = ~uint64_t{0} - 7;
  ExpectRefused(e, StatusCode::kInvalidArgument, "outside");
  e.data_offset = 8192;
  std::memset(raw_.heap() + 8192, 0, sizeof(protocol::SequenceStatsBlock));
  ExpectRefused(e, StatusCode::kInvalidArgument, "magic");

  auto* block = reinterpret_cast<protocol::SequenceStatsBlock*>(raw_.heap() + 8192);
  block->magic = protocol::kSequenceStatsMagic;
  // The size must be the version's: 848 bytes for version 1, 856 for version 2.
  block->version = protocol::kSequenceStatsVersion1;
  ExpectRefused(e, StatusCode::kInvalidArgument, "version");
  block->version = protocol::kSequenceStatsVersion;
  e.data_bytes = protocol::kSequenceStatsV1Bytes;
  ExpectRefused(e, StatusCode::kInvalidArgument, "version");
  block->version = 3;
  e.data_bytes = sizeof(protocol::SequenceStatsBlock);
  ExpectRefused(e, StatusCode::kInvalidArgument, "version");
  block->version = protocol::kSequenceStatsVersion1;  // an older libkvtier's block is taken
  e.data_bytes = protocol::kSequenceStatsV1Bytes;
  auto [c1, m1] = raw_.Call(e);
  EXPECT_EQ(c1.status, 0u) << m1;
  block->version = protocol::kSequenceStatsVersion;
  e.data_bytes = sizeof(protocol::SequenceStatsBlock);
  auto [c, m] = raw_.Call(e);
  EXPECT_EQ(c.status, 0u) << m;
  std::memset(raw_.heap() + 8192 + 8, 0xff, sizeof(protocol::SequenceStatsBlock) - 8);  // garbage figures
  SubmissionEntry stats{};
  stats.opcode = static_cast<uint16_t>(Opcode::kStats);
  stats.data_offset = 65536;
  stats.data_bytes = sizeof(protocol::DaemonStats);
  auto [sc, sm] = raw_.Call(stats);
  ASSERT_EQ(sc.status, 0u) << sm;
  EXPECT_EQ(sc.value, sizeof(protocol::DaemonStats));
  protocol::DaemonStats ds;
  std::memcpy(&ds, raw_.heap() + 65536, sizeof ds);
  EXPECT_EQ(ds.sequences, 0u) << "negative gauges read as 0";
  EXPECT_LE(ds.fetch_bytes, 4 * (uint64_t{1} << 53)) << "counters are clamped";
  // A 1.0 client's smaller stats buffer gets the 1.0 part.
  stats.data_bytes = protocol::kDaemonStatsV10Bytes;
  auto [oc, om] = raw_.Call(stats);
  EXPECT_EQ(oc.status, 0u) << om;
  EXPECT_EQ(oc.value, protocol::kDaemonStatsV10Bytes);
  stats.data_bytes = protocol::kDaemonStatsV10Bytes - 8;
  ExpectRefused(stats, StatusCode::kInvalidArgument, "too small");
}

// A client cut for a corrupt ring gets its pins released like a client that disconnects.
TEST_F(RingInputTest, ACutClientsPinsComeBack) {
  // Two chunks of the raw namespace (2 layers, K|V, 16 tokens, 2 heads, head_dim 16, f16: 4 KiB).
  auto* tokens = reinterpret_cast<int32_t*>(raw_.heap() + 4096);
  for (int i = 0; i < 32; ++i) tokens[i] = 1000 + i;
  std::memset(raw_.heap() + 8192, 0x5a, 8192);
  SubmissionEntry store = Lookup();
  store.opcode = static_cast<uint16_t>(Opcode::kStore);
  store.data_offset = 8192;
  store.data_bytes = 8192;
  auto [sc, sm] = raw_.Call(store);
  ASSERT_EQ(sc.status, 0u) << sm;
  SubmissionEntry pin = Lookup();
  pin.opcode = static_cast<uint16_t>(Opcode::kPin);
  auto [pc, pm] = raw_.Call(pin);
  ASSERT_EQ(pc.status, 0u) << pm;
  ASSERT_EQ(pc.value, 32u);
  kvt_daemon_stats_t s;
  ASSERT_TRUE(bystander_.Stats(&s));
  ASSERT_EQ(s.pinned_chunks, 2u);

  auto* header = reinterpret_cast<protocol::RingHeader*>(raw_.region.data() + raw_.reply.sq_offset);
  header->tail.value.store(header->head.value.load() + 100000);
  uint64_t one = 1;
  EXPECT_EQ(::write(raw_.sq_event.get(), &one, sizeof one), 8);
  char b;
  ASSERT_EQ(::recv(raw_.socket.get(), &b, 1, 0), 0) << "the corrupt client is disconnected";
  // The session is torn down asynchronously after the cut: wait for it, bounded.
  for (int i = 0; i < 500; ++i) {
    ASSERT_TRUE(bystander_.Stats(&s));
    if (s.pinned_chunks == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(s.pinned_chunks, 0u) << "a cut client's pins must be released";
}

TEST_F(RingInputTest, CorruptRingCountersCutOnlyThatClient) {
  auto* header = reinterpret_cast<protocol::RingHeader*>(raw_.region.data() + raw_.reply.sq_offset);
  header->tail.value.store(header->head.value.load() + 100000);
  uint64_t one = 1;
  EXPECT_EQ(::write(raw_.sq_event.get(), &one, sizeof one), 8);
  char b;
  EXPECT_EQ(::recv(raw_.socket.get(), &b, 1, 0), 0) << "the corrupt client is disconnected";
}

TEST(ProtocolMismatch, LibkvtierRefusesADaemonSpeakingAnotherMajor) {
  TempDir dir;
  std::string path = dir.File("fake.sock");
  int listener = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(listener, 1), 0);
  std::thread fake([&] {
    int c = ::accept(listener, nullptr, nullptr);
    protocol::HelloRequest h{};
    ::recv(c, &h, sizeof h, MSG_WAITALL);
    protocol::HelloReply r{};
    r.magic = protocol::kReplyMagic;
    r.protocol_version = uint32_t{protocol::kProtocolMajor + 1} << 16;
    ::send(c, &r, sizeof r, 0);
    ::close(c);
  });
  kvt::Client client;
  kvt::Result res = Connect(path, &client);
  fake.join();
  ::close(listener);
  EXPECT_EQ(res.status, KVT_STATUS_PROTOCOL_MISMATCH);
  EXPECT_NE(res.message.find("protocol"), std::string::npos) << res.message;
}

TEST(DaemonCommandLine, UnusableConfigurationsExitNonZeroWithAMessage) {
  TempDir dir;
  auto run = [&](const std::string& args) {
    std::string cmd = BinDir() + "/kv-tierd --metrics-address off --socket " + dir.File("s.sock") + " " + args +
                      " > " + dir.File("out.txt") + " 2>&1";
    int rc = std::system(cmd.c_str());
    std::ifstream in(dir.File("out.txt"));
    std::string out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return std::make_pair(WEXITSTATUS(rc), out);
  };
  auto [rc1, out1] = run("--host-capacity lots --data-dir " + dir.File("d"));
  EXPECT_EQ(rc1, 1);
  EXPECT_NE(out1.find("host-capacity"), std::string::npos) << out1;
  auto [rc2, out2] = run("--host-capacity 64MiB --data-dir /proc/kvt-cannot-create");
  EXPECT_EQ(rc2, 1);
  EXPECT_NE(out2.find("data directory"), std::string::npos) << out2;
  auto [rc3, out3] = run("--config " + dir.File("missing.yaml"));
  EXPECT_EQ(rc3, 1);
  EXPECT_NE(out3.find("missing.yaml"), std::string::npos) << out3;
  auto [rc4, out4] = run("--host-capacity 8KiB --data-dir " + dir.File("d"));
  EXPECT_EQ(rc4, 1);
  EXPECT_NE(out4.find("at least"), std::string::npos) << out4;
}

TEST(DaemonCommandLine, SocketInUseIsRefused) {
  DaemonProcess first;
  ASSERT_TRUE(first.Start());
  std::string cmd = BinDir() + "/kv-tierd --metrics-address off --host-capacity 32MiB --socket " +
                    first.socket_path() + " --data-dir " + first.data_dir() + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[256];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  int rc = ::pclose(p);
  EXPECT_EQ(WEXITSTATUS(rc), 1);
  EXPECT_NE(out.find("in use"), std::string::npos) << out;
  EXPECT_TRUE(first.Alive());
}

}  // namespace
}  // namespace kvt::testing
