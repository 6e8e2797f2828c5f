// Both I/O queues (and the fault-injecting wrapper) on a directory that takes O_DIRECT (under the
// build tree) and on tmpfs (/dev/shm, which refuses it: the probe must say so).
#include "host/nvme/io_queue.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <cstring>
#include <vector>

#include "common/unique_fd.h"
#include "host/nvme/fault_injecting_io_queue.h"
#include "host/nvme/staging_pool.h"
#include "tests/support/temp_dir.h"

namespace kvt::nvme {
namespace {

struct Backend {
  IoBackend backend;
  const char* name;
};

class IoQueueTest : public ::testing::TestWithParam<Backend> {};

void RoundTrip(IoQueue& q, const std::string& dir) {
  std::string path = dir + "/file";
  UniqueFd fd(::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC | (q.capabilities().direct ? O_DIRECT : 0), 0600));
  ASSERT_TRUE(fd.valid()) << std::strerror(errno);
  auto pool = StagingPool::Create(8 << 20);
  ASSERT_TRUE(pool.ok());
  q.RegisterBuffer((*pool)->base(), (*pool)->size());
  constexpr int kBlocks = 16;
  auto out = (*pool)->TryAllocate(kBlocks * 65536);
  auto in = (*pool)->TryAllocate(kBlocks * 65536);
  for (uint64_t i = 0; i < out->size(); ++i) out->data()[i] = static_cast<char>(i * 131 + 7);
  std::vector<IoRequest> w(kBlocks), r(kBlocks);
  for (int i = 0; i < kBlocks; ++i) {
    w[i] = {IoRequest::Op::kWrite, fd.get(), out->data() + i * 65536, 65536, uint64_t(i) * 65536, 0};
    r[i] = {IoRequest::Op::kRead, fd.get(), in->data() + i * 65536, 65536, uint64_t(i) * 65536, 0};
  }
  q.Run(w);
  for (auto& x : w) ASSERT_TRUE(IoResultStatus(x).ok()) << IoResultStatus(x).ToString();
  ASSERT_TRUE(q.Sync(fd.get()).ok());
  q.Run(r);
  for (auto& x : r) ASSERT_TRUE(IoResultStatus(x).ok()) << IoResultStatus(x).ToString();
  EXPECT_EQ(0, std::memcmp(out->data(), in->data(), out->size()));
}

TEST_P(IoQueueTest, RoundTripOnBuildTree) {
  // The build tree is on a disk file system in CI and here; tmpfs /tmp would refuse O_DIRECT.
  std::string dir = std::string(std::getenv("KVT_BIN_DIR") ? std::getenv("KVT_BIN_DIR") : ".") + "/io-queue-test";
  std::filesystem::create_directories(dir);
  IoQueueOptions o{GetParam().backend, dir, 16};
  auto q = MakeIoQueue(o);
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  std::printf("%s on %s: backend=%s direct=%d note=%s\n", GetParam().name, dir.c_str(),
              (*q)->capabilities().backend.c_str(), (*q)->capabilities().direct, (*q)->capabilities().note.c_str());
  if (GetParam().backend == IoBackend::kThreadPool) {
    EXPECT_EQ((*q)->capabilities().backend, "threadpool");
  }
  RoundTrip(**q, dir);
  std::filesystem::remove_all(dir);
}

TEST_P(IoQueueTest, WorksOnTmpfs) {
  // tmpfs refuses O_DIRECT before Linux 6.6 and takes it after: either way the probe decides and
  // says which in its note, and the queue works.
  if (!std::filesystem::is_directory("/dev/shm")) GTEST_SKIP() << "no /dev/shm (tmpfs) here";
  std::string dir = "/dev/shm/kvt-io-queue-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  auto q = MakeIoQueue({GetParam().backend, dir, 8});
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  std::printf("tmpfs: backend=%s direct=%d note=%s\n", (*q)->capabilities().backend.c_str(),
              (*q)->capabilities().direct, (*q)->capabilities().note.c_str());
  EXPECT_NE((*q)->capabilities().note.find("O_DIRECT"), std::string::npos) << (*q)->capabilities().note;
  RoundTrip(**q, dir);
  std::filesystem::remove_all(dir);
}

TEST_P(IoQueueTest, BufferedWhenDirectIsNotAllowed) {
  kvt::testing::TempDir dir;
  IoQueueOptions o{GetParam().backend, dir.path(), 8};
  o.allow_direct = false;
  auto q = MakeIoQueue(o);
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  EXPECT_FALSE((*q)->capabilities().direct);
  RoundTrip(**q, dir.path());
}

INSTANTIATE_TEST_SUITE_P(Backends, IoQueueTest,
                         ::testing::Values(Backend{IoBackend::kAuto, "auto"}, Backend{IoBackend::kThreadPool, "threadpool"}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(FaultInjectingIoQueue, InjectsEachKind) {
  kvt::testing::TempDir dir;
  auto inner = MakeIoQueue({IoBackend::kThreadPool, dir.path(), 4});
  ASSERT_TRUE(inner.ok());
  FaultInjectingIoQueue q(std::move(*inner));
  UniqueFd fd(::open(dir.File("f").c_str(), O_CREAT | O_RDWR, 0600));
  std::vector<char> buf(8192, 'x');
  IoRequest w{IoRequest::Op::kWrite, fd.get(), buf.data(), 8192, 0, 0};
  q.Arm({FaultRule::Target::kWrite, FaultRule::Kind::kEnospc, 1.0, 0, 1, 1});
  q.Run(std::span<IoRequest>(&w, 1));
  EXPECT_EQ(w.result, -ENOSPC);
  EXPECT_EQ(IoResultStatus(w).code(), StatusCode::kResourceExhausted);
  q.Run(std::span<IoRequest>(&w, 1));  // max_faults reached: passes
  EXPECT_EQ(w.result, 8192);
  IoRequest r{IoRequest::Op::kRead, fd.get(), buf.data(), 8192, 0, 0};
  q.Arm({FaultRule::Target::kRead, FaultRule::Kind::kShortRead, 1.0, 0, UINT64_MAX, 1});
  q.Run(std::span<IoRequest>(&r, 1));
  EXPECT_EQ(r.result, 4096);
  EXPECT_EQ(IoResultStatus(r).code(), StatusCode::kIoError);
  q.Arm({FaultRule::Target::kRead, FaultRule::Kind::kEio, 1.0, 1, UINT64_MAX, 1});  // skip the first
  q.Run(std::span<IoRequest>(&r, 1));
  EXPECT_EQ(r.result, 8192);
  q.Run(std::span<IoRequest>(&r, 1));
  EXPECT_EQ(r.result, -EIO);
  q.Arm({FaultRule::Target::kSync, FaultRule::Kind::kEio, 1.0, 0, UINT64_MAX, 1});
  EXPECT_EQ(q.Sync(fd.get()).code(), StatusCode::kIoError);
  q.Disarm();
  EXPECT_TRUE(q.Sync(fd.get()).ok());
  EXPECT_EQ(q.injected(), 4u);
}

}  // namespace
}  // namespace kvt::nvme
