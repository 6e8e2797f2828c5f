// `--device cpu|cuda|auto`: parsing, what the CUDA path refuses (with the reason), auto falling
// back to the CPU, and the binary's behaviour. Runs anywhere; where the outcome depends on a CUDA
// device being present, the expectation follows CudaDeviceCount().
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "examples/llama/cuda/cuda_backend.h"
#include "examples/llama/device_choice.h"
#include "examples/llama/model_loader.h"
#include "tests/unit/engine/engine_test_data.h"

namespace kvt::llama {
namespace {

TEST(DeviceChoice, ParsesTheThreeKinds) {
  EXPECT_EQ(*ParseDeviceKind("cpu"), DeviceKind::kCpu);
  EXPECT_EQ(*ParseDeviceKind("cuda"), DeviceKind::kCuda);
  EXPECT_EQ(*ParseDeviceKind("auto"), DeviceKind::kAuto);
  EXPECT_EQ(ParseDeviceKind("gpu").status().code(), StatusCode::kInvalidArgument);
}

TEST(DeviceChoice, CudaRunsOnlyTheUncompressedFloat32Policies) {
  EXPECT_TRUE(CudaRunsPolicy("exact"));
  EXPECT_TRUE(CudaRunsPolicy("full"));
  EXPECT_TRUE(CudaRunsPolicy("full:dtype=f32"));
  EXPECT_FALSE(CudaRunsPolicy("full:dtype=f16"));
  EXPECT_FALSE(CudaRunsPolicy("kivi2"));
  EXPECT_FALSE(CudaRunsPolicy("snapkv:budget=64"));
}

class DeviceChoiceModel : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = LoadModelFile(testing::ModelBin());
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    model_ = std::move(m).value();
  }
  LoadedModel model_;
};

TEST_F(DeviceChoiceModel, CpuIsAlwaysTheCpu) {
  const std::string p[] = {"kivi2"};
  auto c = ChooseDevice({DeviceKind::kCpu, p, true}, model_.weights);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->backend, nullptr);
  EXPECT_EQ(c->description, "cpu");
}

TEST_F(DeviceChoiceModel, CudaRefusesOtherPoliciesAndPrefixReuseWithTheReason) {
  const std::string kivi[] = {"full", "kivi2"};
  auto c = ChooseDevice({DeviceKind::kCuda, kivi, false}, model_.weights);
  ASSERT_EQ(c.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(c.status().ToString().find(CudaPathBuilt() ? "kivi2" : "KVT_ENABLE_CUDA=OFF"),
            std::string::npos)
      << c.status().ToString();
  const std::string exact[] = {"exact"};
  auto r = ChooseDevice({DeviceKind::kCuda, exact, true}, model_.weights);
  ASSERT_EQ(r.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(r.status().ToString().find(CudaPathBuilt() ? "kvtier" : "KVT_ENABLE_CUDA=OFF"),
            std::string::npos)
      << r.status().ToString();
}

TEST_F(DeviceChoiceModel, AutoFallsBackToTheCpuWithTheReason) {
  const std::string kivi[] = {"kivi2"};
  auto c = ChooseDevice({DeviceKind::kAuto, kivi, false}, model_.weights);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->backend, nullptr);
  EXPECT_EQ(c->description.rfind("cpu (auto: ", 0), 0u) << c->description;
}

TEST_F(DeviceChoiceModel, CudaNeedsADevice) {
  const std::string exact[] = {"exact"};
  auto cuda = ChooseDevice({DeviceKind::kCuda, exact, false}, model_.weights);
  auto aut = ChooseDevice({DeviceKind::kAuto, exact, false}, model_.weights);
  ASSERT_TRUE(aut.ok()) << aut.status().ToString();
  if (CudaDeviceCount() == 0) {
    EXPECT_EQ(cuda.status().code(), StatusCode::kUnsupported);
    EXPECT_EQ(aut->backend, nullptr);
    EXPECT_NE(aut->description.find(CudaPathBuilt() ? "no CUDA device" : "KVT_ENABLE_CUDA=OFF"),
              std::string::npos)
        << aut->description;
  } else {
    ASSERT_TRUE(cuda.ok()) << cuda.status().ToString();
    EXPECT_NE(cuda->backend, nullptr);
    EXPECT_NE(aut->backend, nullptr);
  }
}

// Runs the binary; returns stdout + stderr ("2>&1") and the exit status.
std::string RunKvtLlama(const std::string& args, int* status) {
  return testing::RunCommand(testing::KvtLlama() + " " + args + " 2>&1", status);
}

TEST(DeviceChoiceBinary, CpuIsGoldenAndCudaWithoutADeviceIsAClearError) {
  const std::string common = "generate --model " + testing::ModelBin() + " --tokenizer " +
                             testing::TokenizerBin() + " --prompt Zoo --steps 60 --temperature 0";
  int status = 0;
  std::string out = RunKvtLlama(common + " --device cpu", &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find(testing::kGoldenZoo60), std::string::npos) << out;
  EXPECT_NE(out.find("[kvt-llama] device: cpu"), std::string::npos) << out;

  out = RunKvtLlama(common + " --device cuda --policy kivi2", &status);
  EXPECT_NE(status, 0) << out;
  EXPECT_NE(out.find("--device cuda"), std::string::npos) << out;

  if (CudaDeviceCount() == 0) {
    out = RunKvtLlama(common + " --device cuda", &status);
    EXPECT_NE(status, 0) << out;
    EXPECT_NE(out.find(CudaPathBuilt() ? "no CUDA device" : "KVT_ENABLE_CUDA=OFF"),
              std::string::npos)
        << out;
    out = RunKvtLlama(common, &status);  // auto
    EXPECT_EQ(status, 0) << out;
    EXPECT_NE(out.find("[kvt-llama] device: cpu (auto: "), std::string::npos) << out;
  }
  out = RunKvtLlama(common + " --device tpu", &status);
  EXPECT_NE(status, 0) << out;
}

}  // namespace
}  // namespace kvt::llama
