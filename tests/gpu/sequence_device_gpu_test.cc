// The device-pointer calls of a GPU Sequence (AppendOnDevice, SelectOnDevice; issue 7) against
// the host-pointer calls of the same GPU sequence, every GPU layer kind (full, offload, kivi with
// two configurations, sparse with either scorer), fresh random activations (normal, a few strong
// key channels, never zeros), a ragged prefill (1 + 300 + 17 + 681 tokens, off every group and
// residual boundary) and single-token decode steps. Skipped (visibly, exit 77) without a device.
//
// Tolerances:
//   AppendOnDevice vs Append: the suspend images are equal byte for byte (fp16 K/V, KIVI codes,
//     scales and zeros, channel maxima): the device conversion (__float2half_rn) gives the CPU's
//     F16C bits, and the pushes that follow are the same kernels on the same bytes. Attention
//     outputs over the two states: 1e-6 relative (the same kernels; only shared-memory atomic
//     accumulation order may differ between two launches).
//   SelectOnDevice vs Select: the same segments (count, tokens, strides) and the same bytes for
//     full, offload and sparse (the same rows: sinks and window from the resident copies on the
//     device, the host tier on the host; the gathered rows the same selection's); kivi: the K/V
//     dequantized on the device vs on the host (KiviStore::Reconstruct), each rounded to fp16: at
//     most one fp16 step apart (|d| <= 2^-10 (1 + |x|)) where FMA contraction moves a float by an
//     ulp across a rounding boundary.
//   ConvertToHalfCuda vs ConvertToHalf: bit for bit on every non-NaN float tried.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gpu/kernels/convert.cuh"
#include "host/kernels/convert.h"
#include "sequence/sequence.h"
#include "tests/gpu/device_buffer.h"
#include "tests/gpu/sequence_test_inputs.h"

namespace kvt::sequence {
namespace {

using gpu::testing::DeviceBuffer;
using kernels::Half;

using testing::Activations;
using testing::kHeadDim;
using testing::kKvHeads;
using testing::kQHeads;
using testing::kQRow;
using testing::kRow;
using testing::MakeActivations;
const std::vector<int> kPrefillChunks = {1, 300, 17, 681};
constexpr int kPrompt = 999, kSteps = 9;

// Every GPU layer kind; no HintNext anywhere (a no-op on the GPU).
const std::vector<std::string> kAllKinds = {
    "full",
    "offload",
    "kivi:bits=2,group=32,residual=128",
    "kivi:bits=4,group=32,residual=64",
    "sparse:budget=192,sinks=8,recent=56,channels=8,scorer=sketch,sketch_bits=2,sketch_group=64",
    "sparse:budget=128,sinks=8,recent=24,channels=8,scorer=channels",
    "sparse:budget=4096,sinks=4,recent=32,channels=8,scorer=sketch",  // budget covers every token
};

SequencePlan MakePlan(const std::vector<std::string>& specs) {
  return testing::MakePlan(specs, "sequence-device-gpu-test");
}

std::unique_ptr<Sequence> OpenOnDevice(const SequencePlan& plan) { return testing::OpenOrDie(plan, 0); }

float MaxRelError(const std::vector<float>& got, const std::vector<float>& want) {
  float worst = 0.0f;
  for (size_t i = 0; i < want.size(); ++i) {
    worst = std::max(worst, std::fabs(got[i] - want[i]) / (1.0f + std::fabs(want[i])));
  }
  return worst;
}

// Feeds tokens [from, from + count) of every layer: through host Append into `host`, and through
// AppendOnDevice into `dev` from one reused device staging buffer written on `stream` right before
// (so a sequence that read the rows out of order, or after the next overwrite, would differ).
void AppendBoth(Sequence& host, Sequence& dev, const Activations& a, int from, int count, cudaStream_t stream,
                DeviceBuffer<float>& dk, DeviceBuffer<float>& dv) {
  for (int l = 0; l < host.plan().num_layers(); ++l) {
    const float* k = a.k[l].data() + static_cast<size_t>(from) * kRow;
    const float* v = a.v[l].data() + static_cast<size_t>(from) * kRow;
    ASSERT_TRUE(host.Append(l, k, v, count).ok());
    const size_t bytes = static_cast<size_t>(count) * kRow * sizeof(float);
    ASSERT_EQ(cudaMemcpyAsync(dk.get(), k, bytes, cudaMemcpyHostToDevice, stream), cudaSuccess);
    ASSERT_EQ(cudaMemcpyAsync(dv.get(), v, bytes, cudaMemcpyHostToDevice, stream), cudaSuccess);
    const Status s = dev.AppendOnDevice(l, dk.get(), dv.get(), count, stream);
    ASSERT_TRUE(s.ok()) << "layer " << l << ": " << s.ToString();
  }
}

void ExpectSameImages(Sequence& host, Sequence& dev, const char* when) {
  auto a = host.Suspend();
  auto b = dev.Suspend();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->size(), b->size()) << when;
  EXPECT_TRUE(*a == *b) << when << ": AppendOnDevice left another state than Append";
  ASSERT_TRUE(host.Resume(*a).ok());
  ASSERT_TRUE(dev.Resume(*b).ok());
}

TEST(SequenceDeviceGpu, ConvertToHalfCudaMatchesCpu) {
  KVT_REQUIRE_GPU();
  std::mt19937 rng(7);
  std::vector<float> x;
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 1 << 16; ++i) {  // every exponent, random mantissas: ties, subnormals, overflow
    uint32_t u = bits(rng);
    float f;
    std::memcpy(&f, &u, 4);
    if (!std::isnan(f)) x.push_back(f);
  }
  std::normal_distribution<float> nd;
  for (int i = 0; i < 4096; ++i) x.push_back(nd(rng));
  for (float f : {0.0f, -0.0f, 65504.0f, 65520.0f, 65519.99f, 6.1035156e-05f, 5.9604645e-08f, 2.9802322e-08f,
                  std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()}) {
    x.push_back(f);
  }
  std::vector<Half> want(x.size());
  kernels::ConvertToHalf(x.data(), want.data(), static_cast<int64_t>(x.size()));
  DeviceBuffer<float> d_x(x);
  DeviceBuffer<Half> d_h(x.size());
  ASSERT_TRUE(gpu::ConvertToHalfCuda(d_x.get(), d_h.get(), static_cast<int64_t>(x.size()), nullptr).ok());
  const std::vector<Half> got = d_h.Download(x.size());
  int mismatches = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (got[i].bits != want[i].bits && ++mismatches <= 5) {
      ADD_FAILURE() << "x = " << x[i] << ": gpu " << got[i].bits << ", cpu " << want[i].bits;
    }
  }
  EXPECT_EQ(mismatches, 0);
  EXPECT_EQ(gpu::ConvertToHalfCuda(nullptr, d_h.get(), 1, nullptr).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(gpu::ConvertToHalfCuda(nullptr, nullptr, 0, nullptr).ok());
}

TEST(SequenceDeviceGpu, AppendOnDeviceEqualsAppend) {
  KVT_REQUIRE_GPU();
  const SequencePlan plan = MakePlan(kAllKinds);
  const int layers = plan.num_layers();
  const Activations a = MakeActivations(layers, kPrompt + kSteps, 61);
  auto host = OpenOnDevice(plan);
  auto dev = OpenOnDevice(plan);
  ASSERT_TRUE(host && dev);
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  DeviceBuffer<float> dk(static_cast<size_t>(kPrompt) * kRow), dv(static_cast<size_t>(kPrompt) * kRow);
  int at = 0;
  for (int chunk : kPrefillChunks) {
    AppendBoth(*host, *dev, a, at, chunk, stream, dk, dv);
    at += chunk;
  }
  ExpectSameImages(*host, *dev, "after prefill");
  float worst = 0.0f;
  std::vector<float> want(kQRow), got(kQRow);
  for (int t = kPrompt; t < kPrompt + kSteps; ++t) {
    if (t % 3 == 1) {  // a host append into the device-fed sequence too: the two paths mix
      for (int l = 0; l < layers; ++l) {
        ASSERT_TRUE(host->Append(l, a.k[l].data() + t * kRow, a.v[l].data() + t * kRow, 1).ok());
        ASSERT_TRUE(dev->Append(l, a.k[l].data() + t * kRow, a.v[l].data() + t * kRow, 1).ok());
      }
    } else {
      AppendBoth(*host, *dev, a, t, 1, stream, dk, dv);
    }
    for (int l = 0; l < layers; ++l) {
      const float* q = a.q[l].data() + t * kQRow;
      ASSERT_TRUE(host->Attend(l, q, want.data()).ok());
      ASSERT_TRUE(dev->Attend(l, q, got.data()).ok());
      const float e = MaxRelError(got, want);
      worst = std::max(worst, e);
      EXPECT_LE(e, 1e-6f) << "layer " << l << " token " << t;
      EXPECT_EQ(dev->kept_tokens(l), host->kept_tokens(l)) << "layer " << l;
    }
  }
  ExpectSameImages(*host, *dev, "after decode");
  std::printf("append on device: worst |dev - host| / (1 + |host|) = %.3g\n", worst);
  EXPECT_EQ(dev->counters().host_bytes, host->counters().host_bytes);
  cudaStreamDestroy(stream);
}

// Segment s's element (t, h, c) from a host-readable copy of its extent.
struct SegmentCopy {
  std::vector<Half> k, v;
  int64_t token_stride = 0, head_stride = 0;
  Half K(int64_t t, int h, int c) const { return k[static_cast<size_t>(t * token_stride + h * head_stride + c)]; }
  Half V(int64_t t, int h, int c) const { return v[static_cast<size_t>(t * token_stride + h * head_stride + c)]; }
};

SegmentCopy CopyBack(const kernels::KvSegment<Half>& s) {
  SegmentCopy c;
  c.token_stride = s.token_stride;
  c.head_stride = s.head_stride;
  const int64_t extent = (s.tokens - 1) * s.token_stride + (kKvHeads - 1) * s.head_stride + kHeadDim;
  c.k.resize(static_cast<size_t>(extent));
  c.v.resize(c.k.size());
  EXPECT_EQ(cudaMemcpy(c.k.data(), s.keys, c.k.size() * sizeof(Half), cudaMemcpyDefault), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(c.v.data(), s.values, c.v.size() * sizeof(Half), cudaMemcpyDefault), cudaSuccess);
  return c;
}

TEST(SequenceDeviceGpu, SelectOnDeviceEqualsSelect) {
  KVT_REQUIRE_GPU();
  const SequencePlan plan = MakePlan(kAllKinds);
  const int layers = plan.num_layers();
  const Activations a = MakeActivations(layers, kPrompt + 2, 67);
  auto gpu = OpenOnDevice(plan);
  ASSERT_TRUE(gpu);
  for (int l = 0; l < layers; ++l) ASSERT_TRUE(gpu->Append(l, a.k[l].data(), a.v[l].data(), kPrompt + 2).ok());
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  for (int l = 0; l < layers; ++l) {
    const LayerKind kind = plan.layers[static_cast<size_t>(l)].kind;
    const float* q = a.q[l].data() + (kPrompt + 1) * kQRow;
    auto host = gpu->Select(l, q);
    ASSERT_TRUE(host.ok()) << host.status().ToString();
    const SelectedKv want = *host;  // host pointers stay valid: SelectOnDevice does not touch them
    DeviceBuffer<float> d_q(std::vector<float>(q, q + kQRow));
    auto dev = gpu->SelectOnDevice(l, d_q.get(), stream);
    ASSERT_TRUE(dev.ok()) << "layer " << l << ": " << dev.status().ToString();
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    ASSERT_EQ(dev->segments.size(), want.segments.size()) << "layer " << l;
    ASSERT_EQ(dev->memory.size(), dev->segments.size());
    EXPECT_EQ(dev->tokens, want.tokens) << "layer " << l;
    int off_by_one_step = 0;
    for (size_t i = 0; i < want.segments.size(); ++i) {
      const auto& w = want.segments[i];
      const auto& g = dev->segments[i];
      ASSERT_EQ(g.tokens, w.tokens) << "layer " << l << " segment " << i;
      const KvMemory expect_memory =
          kind == LayerKind::kOffload || (kind == LayerKind::kSparse && want.segments.size() == 1)
              ? KvMemory::kMappedHost
              : KvMemory::kDevice;
      EXPECT_EQ(dev->memory[i], expect_memory) << "layer " << l << " segment " << i;
      const SegmentCopy c = CopyBack(g);
      for (int64_t t = 0; t < w.tokens; ++t) {
        for (int h = 0; h < kKvHeads; ++h) {
          for (int d = 0; d < kHeadDim; ++d) {
            const int64_t at = t * w.token_stride + h * w.head_stride + d;
            const Half wk = w.keys[at], wv = w.values[at], gk = c.K(t, h, d), gv = c.V(t, h, d);
            if (kind != LayerKind::kKivi) {
              ASSERT_EQ(gk.bits, wk.bits) << "layer " << l << " seg " << i << " (" << t << "," << h << "," << d << ")";
              ASSERT_EQ(gv.bits, wv.bits) << "layer " << l << " seg " << i << " (" << t << "," << h << "," << d << ")";
              continue;
            }
            for (auto [x, y] : {std::pair{gk, wk}, std::pair{gv, wv}}) {
              const float fx = kernels::HalfToFloat(x), fy = kernels::HalfToFloat(y);
              if (x.bits != y.bits) ++off_by_one_step;
              ASSERT_LE(std::fabs(fx - fy), std::ldexp(1.0f, -10) * (1.0f + std::fabs(fy)))
                  << "kivi layer " << l << " (" << t << "," << h << "," << d << ")";
            }
          }
        }
      }
    }
    if (kind == LayerKind::kKivi) std::printf("layer %d (kivi): %d elements one fp16 step apart\n", l, off_by_one_step);
  }
  cudaStreamDestroy(stream);
}

// SelectOnDevice's pointers are what the attention reads: the CPU decode kernel over the copied-back
// segments gives AttendOnDevice's output (1e-4: accumulation order; kivi 1e-2: fp16-rounded
// dequantized K/V vs attention on the codes).
TEST(SequenceDeviceGpu, SelectOnDeviceIsWhatAttendReads) {
  KVT_REQUIRE_GPU();
  const SequencePlan plan = MakePlan(kAllKinds);
  const Activations a = MakeActivations(plan.num_layers(), kPrompt + 1, 71);
  auto gpu = OpenOnDevice(plan);
  ASSERT_TRUE(gpu);
  const kernels::AttentionShape shape{kQHeads, kKvHeads, kHeadDim};
  for (int l = 0; l < plan.num_layers(); ++l) {
    ASSERT_TRUE(gpu->Append(l, a.k[l].data(), a.v[l].data(), kPrompt + 1).ok());
    const float* q = a.q[l].data() + kPrompt * kQRow;
    DeviceBuffer<float> d_q(std::vector<float>(q, q + kQRow)), d_out(kQRow);
    ASSERT_TRUE(gpu->AttendOnDevice(l, d_q.get(), d_out.get(), nullptr).ok());
    const std::vector<float> attended = d_out.Download(kQRow);
    auto sel = gpu->SelectOnDevice(l, d_q.get(), nullptr);
    ASSERT_TRUE(sel.ok()) << sel.status().ToString();
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    std::vector<SegmentCopy> copies;
    std::vector<kernels::KvSegment<Half>> segs;
    for (const auto& s : sel->segments) copies.push_back(CopyBack(s));
    for (size_t i = 0; i < copies.size(); ++i) {
      const auto& s = sel->segments[i];
      segs.push_back({copies[i].k.data(), copies[i].v.data(), s.tokens, s.token_stride, s.head_stride});
    }
    std::vector<float> ws(kernels::DecodeAttentionWorkspaceFloats(shape, sel->tokens)), out(kQRow);
    ASSERT_TRUE(kernels::DecodeAttention(shape, segs, q, out.data(), ws).ok());
    const float tol = plan.layers[static_cast<size_t>(l)].kind == LayerKind::kKivi ? 1e-2f : 1e-4f;
    EXPECT_LE(MaxRelError(out, attended), tol) << "layer " << l;
  }
}

TEST(SequenceDeviceGpu, BadDeviceInputsAreErrors) {
  KVT_REQUIRE_GPU();
  const SequencePlan plan = MakePlan(kAllKinds);
  const int layers = plan.num_layers();
  const Activations a = MakeActivations(layers, 70, 5);
  auto gpu = OpenOnDevice(plan);
  ASSERT_TRUE(gpu);
  DeviceBuffer<float> dk(a.k[0]), dv(a.v[0]), d_q(a.q[0]), d_out(kQRow);
  std::vector<float> out(kQRow);
  // Nothing appended: select has nothing to select.
  EXPECT_EQ(gpu->SelectOnDevice(0, d_q.get(), nullptr).status().code(), StatusCode::kInvalidArgument);
  for (int l = 0; l < layers; ++l) ASSERT_TRUE(gpu->AppendOnDevice(l, dk.get(), dv.get(), 70, nullptr).ok());
  // Host pointers where device memory is due: refused before any kernel touches them.
  for (int l = 0; l < layers; ++l) {
    const Status s = gpu->AppendOnDevice(l, a.k[0].data(), dv.get(), 1, nullptr);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
    EXPECT_NE(s.message().find("not device memory"), std::string::npos) << s.ToString();
    EXPECT_EQ(gpu->SelectOnDevice(l, a.q[0].data(), nullptr).status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(gpu->AttendOnDevice(l, a.q[0].data(), d_out.get(), nullptr).code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(gpu->AttendOnDevice(l, d_q.get(), out.data(), nullptr).code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(gpu->tokens(l), 70) << "a refused append changed layer " << l;
  }
  for (int bad : {-1, layers}) {
    EXPECT_EQ(gpu->AppendOnDevice(bad, dk.get(), dv.get(), 1, nullptr).code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(gpu->SelectOnDevice(bad, d_q.get(), nullptr).status().code(), StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(gpu->AppendOnDevice(0, nullptr, dv.get(), 1, nullptr).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(gpu->AppendOnDevice(0, dk.get(), nullptr, 1, nullptr).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(gpu->AppendOnDevice(0, dk.get(), dv.get(), 0, nullptr).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(gpu->SelectOnDevice(0, nullptr, nullptr).status().code(), StatusCode::kInvalidArgument);
  // Everything still works after the refusals.
  for (int l = 0; l < layers; ++l) {
    EXPECT_TRUE(gpu->Attend(l, a.q[l].data(), out.data()).ok()) << "layer " << l;
    EXPECT_TRUE(gpu->SelectOnDevice(l, d_q.get(), nullptr).ok()) << "layer " << l;
  }
  // Suspended: refused until Resume.
  auto image = gpu->Suspend();
  ASSERT_TRUE(image.ok());
  EXPECT_EQ(gpu->AppendOnDevice(0, dk.get(), dv.get(), 1, nullptr).code(), StatusCode::kUnsupported);
  EXPECT_EQ(gpu->SelectOnDevice(0, d_q.get(), nullptr).status().code(), StatusCode::kUnsupported);
  ASSERT_TRUE(gpu->Resume(*image).ok());
  EXPECT_TRUE(gpu->AppendOnDevice(0, dk.get(), dv.get(), 1, nullptr).ok());
}

}  // namespace
}  // namespace kvt::sequence
