// The GPU Sequence backend (SequenceOptions::cuda_device) against the CPU Sequence with the same
// plan and inputs, on fresh random activations (normal, never zeros) with ragged sizes: a prefill
// in uneven chunks that ends off every group boundary, then single-token decode steps. Skipped
// (visibly, exit 77) without a device.
//
// Tolerances, |gpu - cpu| <= tol * (1 + |cpu|) per output element:
//   full, offload, and sparse with every token in budget: 1e-4 — the same fp16 K/V and fp32
//     softmax; only the accumulation order differs (split-K, shared-memory atomics).
//   kivi and sparse (budget below the tokens, either scorer): 2e-3 for at least 95% of the
//     (layer, step) pairs and 0.1 for every one. Both quantize with the same rule, but a key or
//     value within float rounding of a code boundary may land on the neighbouring code on one side
//     (gpu/kernels/kivi_quantize.cuh: FMA contraction), moving it one quantization step; and the
//     token scores (sketch or channel rows), summed in another order, can swap the k-th and (k+1)-th candidates when
//     their scores tie within float rounding. Either is rare on random inputs and changes the
//     output by the softmax weight of one token, which is usually small but need not be.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "client/internal/abi_handles.h"
#include "host/kernels/convert.h"
#include "host/kernels/decode_attention.h"
#include "include/kvt/kvt.hpp"
#include "sequence/sequence.h"
#include "tests/gpu/device_buffer.h"
#include "tests/gpu/sequence_test_inputs.h"
#include "tests/support/daemon_process.h"

namespace kvt::sequence {
namespace {

using gpu::testing::DeviceBuffer;

using testing::Activations;
using testing::kHeadDim;
using testing::kKvHeads;
using testing::kQHeads;
using testing::kQRow;
using testing::kRow;
using testing::MakeActivations;
using testing::OpenOrDie;

SequencePlan MakePlan(const std::vector<std::string>& specs) { return testing::MakePlan(specs, "sequence-gpu-test"); }

// The TailorKV plan of these tests: KIVI dense layers, sparse layers with either scorer, and the
// two baselines, so every GPU layer kind runs. No HintNext: a CPU sequence's channel scorer then
// picks its channels from the real query, as the GPU one always does.
const std::vector<std::string> kTailorKv = {
    "kivi:bits=2,group=32,residual=128",
    "sparse:budget=192,sinks=8,recent=56,channels=8,scorer=sketch,sketch_bits=2,sketch_group=64",
    "kivi:bits=4,group=32,residual=64",
    "sparse:budget=160,sinks=4,recent=40,channels=6,scorer=sketch,sketch_bits=2,sketch_group=32",
    "sparse:budget=128,sinks=8,recent=24,channels=8,scorer=channels",
    "full",
    "offload",
};

// Prefill in uneven chunks (1 + 300 + 17 + 681 = 999 tokens: off every group and residual boundary).
const std::vector<int> kPrefillChunks = {1, 300, 17, 681};
constexpr int kPrompt = 999, kSteps = 37;

void Prefill(Sequence& s, const Activations& a) {
  for (int l = 0; l < s.plan().num_layers(); ++l) {
    int at = 0;
    for (int chunk : kPrefillChunks) {
      ASSERT_TRUE(s.Append(l, a.k[l].data() + at * kRow, a.v[l].data() + at * kRow, chunk).ok());
      at += chunk;
    }
  }
}

// Appends token `t` to every layer and attends with its query; outputs [layers][q_row].
std::vector<std::vector<float>> Step(Sequence& s, const Activations& a, int t) {
  std::vector<std::vector<float>> out(static_cast<size_t>(s.plan().num_layers()), std::vector<float>(kQRow));
  for (int l = 0; l < s.plan().num_layers(); ++l) {
    EXPECT_TRUE(s.Append(l, a.k[l].data() + t * kRow, a.v[l].data() + t * kRow, 1).ok());
    const Status st = s.Attend(l, a.q[l].data() + t * kQRow, out[l].data());
    EXPECT_TRUE(st.ok()) << "layer " << l << " token " << t << ": " << st.ToString();
  }
  return out;
}

float MaxRelError(const std::vector<float>& got, const std::vector<float>& want) {
  float worst = 0.0f;
  for (size_t i = 0; i < want.size(); ++i) {
    worst = std::max(worst, std::fabs(got[i] - want[i]) / (1.0f + std::fabs(want[i])));
  }
  return worst;
}

TEST(SequenceGpu, MatchesCpuSequenceOnTailorKvPlan) {
  KVT_REQUIRE_GPU();
  const SequencePlan plan = MakePlan(kTailorKv);
  const Activations a = MakeActivations(plan.num_layers(), kPrompt + kSteps, 11);
  auto cpu = OpenOrDie(plan, -1);
  auto gpu = OpenOrDie(plan, 0);
  ASSERT_TRUE(cpu && gpu);
  ASSERT_TRUE(gpu->on_gpu());
  Prefill(*cpu, a);
  Prefill(*gpu, a);
  int approx_pairs = 0, approx_loose = 0;
  std::vector<float> worst(static_cast<size_t>(plan.num_layers()), 0.0f);
  for (int t = kPrompt; t < kPrompt + kSteps; ++t) {
    const auto want = Step(*cpu, a, t);
    const auto got = Step(*gpu, a, t);
    for (int l = 0; l < plan.num_layers(); ++l) {
      const float e = MaxRelError(got[l], want[l]);
      worst[l] = std::max(worst[l], e);
      switch (plan.layers[l].kind) {
        case LayerKind::kFull:
        case LayerKind::kOffload: EXPECT_LE(e, 1e-4f) << "layer " << l << " token " << t; break;
        case LayerKind::kKivi:
        case LayerKind::kSparse:
          ++approx_pairs;
          if (e > 2e-3f) ++approx_loose;
          EXPECT_LE(e, 0.1f) << "layer " << l << " token " << t;
          EXPECT_EQ(gpu->kept_tokens(l), cpu->kept_tokens(l));
          break;
        case LayerKind::kTale:
        case LayerKind::kKvCompose: ADD_FAILURE() << "not in this plan (sequence_methods_gpu_test.cc)"; break;
      }
    }
  }
  EXPECT_LE(approx_loose * 20, approx_pairs) << approx_loose << " of " << approx_pairs << " kivi/sparse steps above 2e-3";
  for (int l = 0; l < plan.num_layers(); ++l) {
    std::printf("layer %d (%s): worst |gpu - cpu| / (1 + |cpu|) = %.3g\n", l,
                std::string(LayerKindName(plan.layers[l].kind)).c_str(), worst[l]);
  }
  std::printf("kivi/sparse steps above 2e-3: %d of %d\n", approx_loose, approx_pairs);
  // Both count the same gathered bytes (the dominant tokens' K/V, the offload layer's all).
  EXPECT_EQ(gpu->counters().attention_fetch_bytes, cpu->counters().attention_fetch_bytes);
  EXPECT_GT(gpu->counters().device_bytes, 0u);
  EXPECT_GT(gpu->counters().host_bytes, 0u);  // offload and sparse K/V in pinned memory
}

// Full attention on the CPU over the fp16-rounded K/V of tokens [0, t).
std::vector<float> FullAttention(const Activations& a, int layer, int t) {
  std::vector<kernels::Half> k(static_cast<size_t>(t) * kRow), v(k.size());
  kernels::ConvertToHalf(a.k[layer].data(), k.data(), static_cast<int64_t>(k.size()));
  kernels::ConvertToHalf(a.v[layer].data(), v.data(), static_cast<int64_t>(v.size()));
  const kernels::AttentionShape shape{kQHeads, kKvHeads, kHeadDim};
  const kernels::KvSegment<kernels::Half> seg{k.data(), v.data(), t, kRow, kHeadDim};
  std::vector<float> ws(kernels::DecodeAttentionWorkspaceFloats(shape, t)), out(kQRow);
  EXPECT_TRUE(kernels::DecodeAttention(shape, std::span(&seg, 1), a.q[layer].data() + (t - 1) * kQRow, out.data(), ws)
                  .ok());
  return out;
}

TEST(SequenceGpu, SparseBudgetCoveringEveryTokenIsFullAttention) {
  KVT_REQUIRE_GPU();
  // Budget 2048 > the 1036 tokens: every candidate fits, both backends attend to everything.
  const SequencePlan plan = MakePlan({"sparse:budget=2048,sinks=8,recent=56,channels=8,scorer=sketch", "full",
                                      "offload"});
  const Activations a = MakeActivations(plan.num_layers(), kPrompt + kSteps, 23);
  auto cpu = OpenOrDie(plan, -1);
  auto gpu = OpenOrDie(plan, 0);
  ASSERT_TRUE(cpu && gpu);
  Prefill(*cpu, a);
  Prefill(*gpu, a);
  for (int t = kPrompt; t < kPrompt + kSteps; ++t) {
    const auto want_cpu = Step(*cpu, a, t);
    const auto got = Step(*gpu, a, t);
    for (int l = 0; l < plan.num_layers(); ++l) {
      const auto full = FullAttention(a, l, t + 1);
      EXPECT_LE(MaxRelError(got[l], full), 1e-4f) << "gpu layer " << l << " token " << t;
      EXPECT_LE(MaxRelError(want_cpu[l], full), 1e-4f) << "cpu layer " << l << " token " << t;
      EXPECT_EQ(gpu->kept_tokens(l), t + 1);
    }
  }
}

TEST(SequenceGpu, AttendOnDeviceMatchesHostAttend) {
  KVT_REQUIRE_GPU();
  const SequencePlan plan = MakePlan(kTailorKv);
  const Activations a = MakeActivations(plan.num_layers(), kPrompt + 1, 31);
  auto gpu = OpenOrDie(plan, 0);
  ASSERT_TRUE(gpu);
  Prefill(*gpu, a);
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  for (int l = 0; l < plan.num_layers(); ++l) {
    const float* q = a.q[l].data() + kPrompt * kQRow;
    ASSERT_TRUE(gpu->Append(l, a.k[l].data() + kPrompt * kRow, a.v[l].data() + kPrompt * kRow, 1).ok());
    std::vector<float> host_out(kQRow);
    ASSERT_TRUE(gpu->Attend(l, q, host_out.data()).ok());
    DeviceBuffer<float> d_q(std::vector<float>(q, q + kQRow)), d_out(kQRow);
    const Status s = gpu->AttendOnDevice(l, d_q.get(), d_out.get(), stream);
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    EXPECT_LE(MaxRelError(d_out.Download(kQRow), host_out), 1e-6f) << "layer " << l;
  }
  cudaStreamDestroy(stream);
}

// Select on a GPU sequence hands back host pointers to what AttendOn attends to: the CPU decode
// kernel over them gives the GPU attention's output (1e-4; kivi: 1e-2, as Select returns the
// dequantized K/V rounded to fp16 while the attention reads the codes), and the same token count
// as the CPU sequence's Select.
TEST(SequenceGpu, SelectMatchesAttend) {
  KVT_REQUIRE_GPU();
  const SequencePlan plan = MakePlan(kTailorKv);
  const Activations a = MakeActivations(plan.num_layers(), kPrompt + 3, 53);
  auto cpu = OpenOrDie(plan, -1);
  auto gpu = OpenOrDie(plan, 0);
  ASSERT_TRUE(cpu && gpu);
  Prefill(*cpu, a);
  Prefill(*gpu, a);
  const kernels::AttentionShape shape{kQHeads, kKvHeads, kHeadDim};
  for (int t = kPrompt; t < kPrompt + 3; ++t) {
    const auto attended = Step(*gpu, a, t);
    (void)Step(*cpu, a, t);
    for (int l = 0; l < plan.num_layers(); ++l) {
      const float* q = a.q[l].data() + t * kQRow;
      auto sel = gpu->Select(l, q);
      ASSERT_TRUE(sel.ok()) << "layer " << l << ": " << sel.status().ToString();
      auto cpu_sel = cpu->Select(l, q);
      ASSERT_TRUE(cpu_sel.ok());
      EXPECT_EQ(sel->tokens, cpu_sel->tokens) << "layer " << l;
      EXPECT_EQ(sel->segments.size(), cpu_sel->segments.size()) << "layer " << l;
      std::vector<float> ws(kernels::DecodeAttentionWorkspaceFloats(shape, sel->tokens)), out(kQRow);
      ASSERT_TRUE(kernels::DecodeAttention(shape, sel->segments, q, out.data(), ws).ok());
      const float tol = plan.layers[l].kind == LayerKind::kKivi ? 1e-2f : 1e-4f;
      EXPECT_LE(MaxRelError(out, attended[l]), tol) << "layer " << l << " token " << t;
    }
  }
}

TEST(SequenceGpu, SuspendResumeIsBitExact) {
  KVT_REQUIRE_GPU();
  const SequencePlan plan = MakePlan(kTailorKv);
  const Activations a = MakeActivations(plan.num_layers(), kPrompt + kSteps, 47);
  auto live = OpenOrDie(plan, 0);    // never suspended
  auto cycled = OpenOrDie(plan, 0);  // suspended and resumed mid-decode
  ASSERT_TRUE(live && cycled);
  Prefill(*live, a);
  Prefill(*cycled, a);
  const int suspend_at = kPrompt + 11;
  float worst = 0.0f;
  for (int t = kPrompt; t < kPrompt + kSteps; ++t) {
    if (t == suspend_at) {
      auto image = cycled->Suspend();
      ASSERT_TRUE(image.ok()) << image.status().ToString();
      EXPECT_TRUE(cycled->suspended());
      EXPECT_EQ(cycled->counters().device_bytes, 0u);
      ASSERT_TRUE(cycled->Resume(*image).ok());
      // The state came back whole: suspending again writes the same bytes.
      auto again = cycled->Suspend();
      ASSERT_TRUE(again.ok());
      EXPECT_TRUE(*again == *image) << "a resumed GPU sequence suspends to a different image";
      // The image is the CPU backend's format: a CPU sequence restores it and writes it back unchanged.
      auto on_cpu = Sequence::Restore(*image);
      ASSERT_TRUE(on_cpu.ok()) << on_cpu.status().ToString();
      auto from_cpu = (*on_cpu)->Suspend();
      ASSERT_TRUE(from_cpu.ok());
      EXPECT_TRUE(*from_cpu == *image) << "a GPU image does not round-trip through a CPU sequence";
      // And a GPU sequence restores the CPU's bytes.
      SequenceOptions o;
      o.cuda_device = 0;
      auto restored = Sequence::Restore(*from_cpu, o);
      ASSERT_TRUE(restored.ok()) << restored.status().ToString();
      ASSERT_TRUE((*restored)->on_gpu());
      cycled = std::move(*restored);
    }
    const auto want = Step(*live, a, t);
    const auto got = Step(*cycled, a, t);
    for (int l = 0; l < plan.num_layers(); ++l) {
      const float e = MaxRelError(got[l], want[l]);
      worst = std::max(worst, e);
      // The same state and the same kernels; only the attention kernels' shared-memory atomic
      // accumulation order may differ between two runs.
      EXPECT_LE(e, 1e-6f) << "layer " << l << " token " << t;
    }
  }
  std::printf("suspend/resume: worst |resumed - live| / (1 + |live|) = %.3g\n", worst);
}

TEST(SequenceGpu, BadInputsAreErrors) {
  KVT_REQUIRE_GPU();
  const SequencePlan plan = MakePlan(kTailorKv);
  const Activations a = MakeActivations(plan.num_layers(), 70, 5);
  auto gpu = OpenOrDie(plan, 0);
  ASSERT_TRUE(gpu);
  std::vector<float> out(kQRow);
  DeviceBuffer<float> d_q(a.q[0]), d_out(kQRow);
  const int layers = plan.num_layers();
  // Nothing appended yet.
  EXPECT_EQ(gpu->Attend(0, a.q[0].data(), out.data()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(gpu->AttendOnDevice(0, d_q.get(), d_out.get(), nullptr).code(), StatusCode::kInvalidArgument);
  for (int l = 0; l < layers; ++l) ASSERT_TRUE(gpu->Append(l, a.k[l].data(), a.v[l].data(), 70).ok());
  for (int bad : {-1, layers}) {
    EXPECT_EQ(gpu->Append(bad, a.k[0].data(), a.v[0].data(), 1).code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(gpu->Attend(bad, a.q[0].data(), out.data()).code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(gpu->AttendOnDevice(bad, d_q.get(), d_out.get(), nullptr).code(), StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(gpu->Append(0, nullptr, a.v[0].data(), 1).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(gpu->Append(0, a.k[0].data(), a.v[0].data(), 0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(gpu->Attend(0, nullptr, out.data()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(gpu->Attend(0, a.q[0].data(), nullptr).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(gpu->AttendOnDevice(0, nullptr, d_out.get(), nullptr).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(gpu->AttendOnDevice(0, d_q.get(), nullptr, nullptr).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(gpu->HintNext(1, a.q[1].data()).ok());  // a no-op for sketch-scored layers
  // Every layer still attends after the rejected calls.
  for (int l = 0; l < layers; ++l) EXPECT_TRUE(gpu->Attend(l, a.q[l].data(), out.data()).ok()) << "layer " << l;
  // Suspended: calls are refused until Resume; a corrupt image changes nothing.
  auto image = gpu->Suspend();
  ASSERT_TRUE(image.ok());
  EXPECT_EQ(gpu->Attend(0, a.q[0].data(), out.data()).code(), StatusCode::kUnsupported);
  EXPECT_EQ(gpu->AttendOnDevice(0, d_q.get(), d_out.get(), nullptr).code(), StatusCode::kUnsupported);
  std::vector<uint8_t> truncated(image->begin(), image->begin() + static_cast<long>(image->size() / 2));
  EXPECT_EQ(gpu->Resume(truncated).code(), StatusCode::kCorruption);
  ASSERT_TRUE(gpu->Resume(*image).ok());
  EXPECT_TRUE(gpu->Attend(0, a.q[0].data(), out.data()).ok());
  // A CPU sequence has no device entry point.
  auto cpu = OpenOrDie(plan, -1);
  ASSERT_TRUE(cpu);
  EXPECT_EQ(cpu->AttendOnDevice(0, d_q.get(), d_out.get(), nullptr).code(), StatusCode::kUnsupported);
}

TEST(SequenceGpu, BadDevicesAreErrors) {
  KVT_REQUIRE_GPU();
  SequenceOptions o;
  o.cuda_device = 0;
  o.cuda_device = 1 << 20;
  EXPECT_EQ(Sequence::Open(MakePlan({"full"}), o).status().code(), StatusCode::kInvalidArgument);
  o.cuda_device = -2;
  EXPECT_EQ(Sequence::Open(MakePlan({"full"}), o).status().code(), StatusCode::kInvalidArgument);
}

// kvt_sequence_open_in_client on a device: the host tier (offload and sparse K/V, channels-scored
// transposed keys) in the client's shared heap, registered for DMA and read zero-copy by the
// kernels, against a process-local GPU sequence (cudaHostAlloc'd host tier) on the same inputs:
// the same state and kernels, so only the attention kernels' atomic accumulation order may differ.
// Its host tier shows as heap in use and goes back at close. Starts a real kv-tierd.
TEST(SequenceGpu, InClientHostTierMatchesProcessLocalGpuSequence) {
  KVT_REQUIRE_GPU();
  kvt::testing::DaemonProcess daemon;
  ASSERT_TRUE(daemon.Start()) << daemon.Log();
  kvt_client_options_t o;
  kvt_client_options_init(&o);
  o.socket_path = daemon.socket_path().c_str();
  o.heap_bytes = 64ull << 20;
  ::kvt::Client client;
  auto opened = ::kvt::Client::Open(o, &client);
  ASSERT_TRUE(opened) << opened.message;
  const SequencePlan plan = MakePlan(kTailorKv);
  const Activations a = MakeActivations(plan.num_layers(), kPrompt + kSteps, 53);
  auto local = OpenOrDie(plan, 0);
  ASSERT_TRUE(local);
  const uint64_t heap_before = client.get()->connection->heap_used_bytes();
  ::kvt::Sequence shared;
  auto r = ::kvt::Sequence::OpenInClient(client, FormatPlan(plan).c_str(), 0, &shared);
  ASSERT_TRUE(r) << r.message;
  const uint64_t heap_opened = client.get()->connection->heap_used_bytes();
  Prefill(*local, a);
  for (int l = 0; l < plan.num_layers(); ++l) {
    int at = 0;
    for (int chunk : kPrefillChunks) {
      ASSERT_TRUE(shared.Append(l, a.k[l].data() + at * kRow, a.v[l].data() + at * kRow, chunk));
      at += chunk;
    }
  }
  EXPECT_GT(client.get()->connection->heap_used_bytes(), heap_opened);
  float worst = 0.0f;
  std::vector<float> got(kQRow);
  for (int t = kPrompt; t < kPrompt + kSteps; ++t) {
    const auto want = Step(*local, a, t);
    for (int l = 0; l < plan.num_layers(); ++l) {
      ASSERT_TRUE(shared.Append(l, a.k[l].data() + t * kRow, a.v[l].data() + t * kRow, 1));
      auto ra = shared.Attend(l, a.q[l].data() + t * kQRow, got.data());
      ASSERT_TRUE(ra) << ra.message;
      const float e = MaxRelError(got, want[l]);
      worst = std::max(worst, e);
      EXPECT_LE(e, 1e-6f) << "layer " << l << " token " << t;
    }
  }
  std::printf("in client vs process-local GPU sequence: worst rel. error %.3g\n", worst);
  // On the engine's stream too.
  DeviceBuffer<float> d_q(kQRow), d_out(kQRow);
  ASSERT_EQ(cudaMemcpy(d_q.get(), a.q[4].data(), kQRow * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
  ASSERT_TRUE(shared.AttendOnDevice(4, d_q.get(), d_out.get(), nullptr));
  std::vector<float> on_device(kQRow), host(kQRow);
  ASSERT_EQ(cudaMemcpy(on_device.data(), d_out.get(), kQRow * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
  ASSERT_TRUE(local->Attend(4, a.q[4].data(), host.data()).ok());
  EXPECT_LE(MaxRelError(on_device, host), 1e-6f);
  shared.Close();
  EXPECT_EQ(client.get()->connection->heap_used_bytes(), heap_opened) << "closing gives the heap back";
  EXPECT_LE(heap_opened - heap_before, 4096u);
}

}  // namespace
}  // namespace kvt::sequence
