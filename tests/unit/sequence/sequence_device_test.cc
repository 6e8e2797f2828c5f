// SequenceOptions::cuda_device on any machine (CI has no GPU): without a device (or without CUDA
// in the build) opening or restoring a GPU sequence is a clear UNSUPPORTED, never an abort; bad
// device indices are INVALID_ARGUMENT; a CPU sequence refuses the device entry points
// (AttendOnDevice, AppendOnDevice, SelectOnDevice). On a machine
// with a device the GPU sequence opens (tests/gpu/sequence_gpu_test.cc checks what it computes).
#include <gtest/gtest.h>

#include <cstdio>
#include <random>
#include <vector>

#include "gpu/host_memory.h"
#include "sequence/sequence.h"

namespace kvt::sequence {
namespace {

SequencePlan SmallPlan() {
  auto p = UniformPlan("full", 2, {4, 2, 16}, "device-test");
  EXPECT_TRUE(p.ok());
  return *p;
}

SequenceOptions OnDevice(int device) {
  SequenceOptions o;
  o.cuda_device = device;
  return o;
}

TEST(SequenceDevice, GpuSequenceWithoutDeviceIsUnsupported) {
  auto s = Sequence::Open(SmallPlan(), OnDevice(0));
  if (gpu::DeviceCount() > 0) {
    std::printf("a CUDA device is visible: checked that the GPU sequence opens instead\n");
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_TRUE((*s)->on_gpu());
    return;
  }
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kUnsupported) << s.status().ToString();
  EXPECT_NE(s.status().message().find("cuda"), std::string::npos) << s.status().ToString();
}

TEST(SequenceDevice, RestoreOnMissingDeviceIsUnsupported) {
  if (gpu::DeviceCount() > 0) GTEST_SKIP() << "a CUDA device is visible";
  auto cpu = Sequence::Open(SmallPlan());
  ASSERT_TRUE(cpu.ok());
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  std::vector<float> k(5 * 2 * 16), v(k.size());
  for (auto& x : k) x = nd(rng);
  for (auto& x : v) x = nd(rng);
  for (int l = 0; l < 2; ++l) ASSERT_TRUE((*cpu)->Append(l, k.data(), v.data(), 5).ok());
  auto image = (*cpu)->Suspend();
  ASSERT_TRUE(image.ok());
  auto gpu = Sequence::Restore(*image, OnDevice(0));
  EXPECT_EQ(gpu.status().code(), StatusCode::kUnsupported) << gpu.status().ToString();
  // The image is still good for a CPU sequence.
  auto again = Sequence::Restore(*image);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ((*again)->tokens(1), 5);
}

TEST(SequenceDevice, BadDeviceIndexIsAnError) {
  EXPECT_EQ(Sequence::Open(SmallPlan(), OnDevice(-2)).status().code(), StatusCode::kInvalidArgument);
  auto far = Sequence::Open(SmallPlan(), OnDevice(1 << 20));
  ASSERT_FALSE(far.ok());
  const StatusCode c = far.status().code();
  EXPECT_TRUE(c == StatusCode::kInvalidArgument || c == StatusCode::kUnsupported) << far.status().ToString();
}

TEST(SequenceDevice, CpuSequenceHasNoDeviceEntryPoint) {
  auto s = Sequence::Open(SmallPlan());
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE((*s)->on_gpu());
  std::vector<float> k(2 * 16, 0.5f), q(4 * 16, 0.25f), out(q.size());
  ASSERT_TRUE((*s)->Append(0, k.data(), k.data(), 1).ok());
  // Host pointers stand in for device ones: the call must refuse before touching them.
  EXPECT_EQ((*s)->AttendOnDevice(0, q.data(), out.data(), nullptr).code(), StatusCode::kUnsupported);
  EXPECT_EQ((*s)->AppendOnDevice(0, k.data(), k.data(), 1, nullptr).code(), StatusCode::kUnsupported);
  auto sel = (*s)->SelectOnDevice(0, q.data(), nullptr);
  EXPECT_EQ(sel.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(sel.status().message().find("cuda_device"), std::string::npos) << sel.status().ToString();
  EXPECT_EQ((*s)->tokens(0), 1);  // the refused append changed nothing
}

}  // namespace
}  // namespace kvt::sequence
