// kvt_sequence_* (include/kvt/kvt.h): the C ABI gives the same results as sequence::Sequence,
// suspends/resumes bit-exact, and answers bad arguments with status codes and messages.
#include <gtest/gtest.h>

#include <sys/resource.h>

#include <csignal>
#include <cstring>
#include <fstream>
#include <random>
#include <vector>

#include "gpu/host_memory.h"
#include "include/kvt/kvt.h"
#include "kvt/kvt.hpp"
#include "sequence/sequence.h"
#include "tests/support/temp_dir.h"

namespace {

constexpr char kPlan[] =
    "kvt-sequence-plan 1\n"
    "shape layers=3,q_heads=8,kv_heads=2,head_dim=64\n"
    "layer 0 kivi bits=2,group=32,residual=64\n"
    "layer 1 sparse budget=96,sinks=4,recent=32,channels=8\n"
    "layer 2 sparse budget=96,sinks=4,recent=32,channels=8,scorer=sketch\n";

TEST(SequenceAbi, MatchesTheLibraryAndResumesBitExact) {
  const int row = 2 * 64, qrow = 8 * 64, prompt = 500;
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  std::vector<float> k((prompt + 4) * row), v(k.size()), q(4 * qrow);
  for (auto& x : k) x = nd(rng);
  for (auto& x : v) x = nd(rng);
  for (auto& x : q) x = nd(rng);

  kvt_sequence_t* s = nullptr;
  ASSERT_EQ(kvt_sequence_open(kPlan, &s), KVT_STATUS_OK) << kvt_last_error_message();
  auto plan = kvt::sequence::ParsePlan(kPlan);
  ASSERT_TRUE(plan.ok());
  auto ref = kvt::sequence::Sequence::Open(*plan);
  ASSERT_TRUE(ref.ok());
  for (uint32_t l = 0; l < 3; ++l) {
    ASSERT_EQ(kvt_sequence_append(s, l, k.data(), v.data(), prompt), KVT_STATUS_OK);
    ASSERT_TRUE((*ref)->Append(static_cast<int>(l), k.data(), v.data(), prompt).ok());
  }
  std::vector<float> a(qrow), b(qrow);
  for (int step = 0; step < 4; ++step) {
    if (step == 2) {  // suspend and resume through the ABI
      void* image = nullptr;
      uint64_t bytes = 0;
      ASSERT_EQ(kvt_sequence_suspend(s, &image, &bytes), KVT_STATUS_OK) << kvt_last_error_message();
      EXPECT_GT(bytes, 0u);
      EXPECT_NE(kvt_sequence_attend(s, 0, q.data(), a.data()), KVT_STATUS_OK);  // suspended
      ASSERT_EQ(kvt_sequence_resume(s, image, bytes), KVT_STATUS_OK) << kvt_last_error_message();
      kvt_sequence_image_free(image);
    }
    const float* qs = q.data() + step * qrow;
    for (uint32_t l = 0; l < 3; ++l) {
      const float* kt = k.data() + (prompt + step) * row;
      const float* vt = v.data() + (prompt + step) * row;
      if (l + 1 < 3) {
        ASSERT_EQ(kvt_sequence_hint_next(s, l + 1, qs), KVT_STATUS_OK);
        ASSERT_TRUE((*ref)->HintNext(static_cast<int>(l) + 1, qs).ok());
      }
      ASSERT_EQ(kvt_sequence_append(s, l, kt, vt, 1), KVT_STATUS_OK);
      ASSERT_TRUE((*ref)->Append(static_cast<int>(l), kt, vt, 1).ok());
      ASSERT_EQ(kvt_sequence_attend(s, l, qs, a.data()), KVT_STATUS_OK) << kvt_last_error_message();
      ASSERT_TRUE((*ref)->Attend(static_cast<int>(l), qs, b.data()).ok());
      EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << "step " << step << " layer " << l;
    }
  }
  kvt_kv_segment_t segs[4];
  uint32_t count = 0;
  ASSERT_EQ(kvt_sequence_select(s, 1, q.data(), segs, 4, &count), KVT_STATUS_OK);
  EXPECT_EQ(count, 3u);  // sinks, gathered, recent
  EXPECT_EQ(segs[0].tokens + segs[1].tokens + segs[2].tokens, 96);
  ASSERT_EQ(kvt_sequence_select(s, 1, q.data(), nullptr, 0, &count), KVT_STATUS_OK);
  EXPECT_EQ(count, 3u);
  kvt_sequence_close(s);
}

// (ABI 1.2) Suspend to a file and back: bit-exact against a twin that never left memory; a file
// limit hit while writing (EFBIG, as ENOSPC) leaves the sequence live; a truncated file leaves it
// suspended.
TEST(SequenceAbi, SuspendsToAFile) {
  uint32_t major = 0, minor = 0;
  kvt_version(&major, &minor, nullptr);
  EXPECT_GE(minor, 2u);
  const int row = 2 * 64, qrow = 8 * 64, prompt = 300;
  std::mt19937 rng(6);
  std::normal_distribution<float> nd;
  std::vector<float> k((prompt + 2) * row), v(k.size()), q(qrow);
  for (auto& x : k) x = nd(rng);
  for (auto& x : v) x = nd(rng);
  for (auto& x : q) x = nd(rng);
  kvt_sequence_t *s = nullptr, *twin = nullptr;
  ASSERT_EQ(kvt_sequence_open(kPlan, &s), KVT_STATUS_OK);
  ASSERT_EQ(kvt_sequence_open(kPlan, &twin), KVT_STATUS_OK);
  for (uint32_t l = 0; l < 3; ++l) {
    ASSERT_EQ(kvt_sequence_append(s, l, k.data(), v.data(), prompt), KVT_STATUS_OK);
    ASSERT_EQ(kvt_sequence_append(twin, l, k.data(), v.data(), prompt), KVT_STATUS_OK);
  }
  kvt::testing::TempDir dir;
  const std::string path = dir.File("s.kvtq");
  EXPECT_EQ(kvt_sequence_suspend_to_file(s, nullptr), KVT_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(kvt_sequence_suspend_to_file(nullptr, path.c_str()), KVT_STATUS_INVALID_ARGUMENT);
  {  // a 4 KiB file-size limit: the write fails with EFBIG (SIGXFSZ ignored)
    rlimit old{};
    ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
    rlimit small = old;
    small.rlim_cur = 4096;
    auto* prev = std::signal(SIGXFSZ, SIG_IGN);
    ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
    const kvt_status_t st = kvt_sequence_suspend_to_file(s, path.c_str());
    ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &old), 0);
    std::signal(SIGXFSZ, prev);
    EXPECT_EQ(st, KVT_STATUS_RESOURCE_EXHAUSTED) << kvt_last_error_message();
  }
  std::vector<float> a(qrow), b(qrow);
  EXPECT_EQ(kvt_sequence_attend(s, 1, q.data(), a.data()), KVT_STATUS_OK);  // still live
  ASSERT_EQ(kvt_sequence_suspend_to_file(s, path.c_str()), KVT_STATUS_OK) << kvt_last_error_message();
  EXPECT_EQ(kvt_sequence_attend(s, 1, q.data(), a.data()), KVT_STATUS_UNSUPPORTED);
  {  // truncated copy
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(dir.File("cut"), std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  }
  EXPECT_EQ(kvt_sequence_resume_from_file(s, dir.File("cut").c_str()), KVT_STATUS_CORRUPTION);
  EXPECT_NE(std::strstr(kvt_last_error_message(), "truncated"), nullptr) << kvt_last_error_message();
  EXPECT_EQ(kvt_sequence_attend(s, 1, q.data(), a.data()), KVT_STATUS_UNSUPPORTED);  // still suspended
  ASSERT_EQ(kvt_sequence_resume_from_file(s, path.c_str()), KVT_STATUS_OK) << kvt_last_error_message();
  for (int step = 0; step < 2; ++step) {
    for (uint32_t l = 0; l < 3; ++l) {
      const float* kt = k.data() + (prompt + step) * row;
      const float* vt = v.data() + (prompt + step) * row;
      ASSERT_EQ(kvt_sequence_append(s, l, kt, vt, 1), KVT_STATUS_OK);
      ASSERT_EQ(kvt_sequence_append(twin, l, kt, vt, 1), KVT_STATUS_OK);
      ASSERT_EQ(kvt_sequence_attend(s, l, q.data(), a.data()), KVT_STATUS_OK);
      ASSERT_EQ(kvt_sequence_attend(twin, l, q.data(), b.data()), KVT_STATUS_OK);
      EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << step << " " << l;
    }
  }
  kvt_sequence_close(s);
  kvt_sequence_close(twin);
}

TEST(SequenceAbi, DeviceOpenWithoutGpuIsUnsupported) {
  uint32_t major = 0, minor = 0;
  kvt_version(&major, &minor, nullptr);
  EXPECT_GE(minor, 3u);
  const char* plan = "kvt-sequence-plan 1\nmodel t\nshape layers=1,q_heads=4,kv_heads=2,head_dim=16\nlayer 0 full\n";
  kvt_sequence_t* s = nullptr;
  EXPECT_EQ(kvt_sequence_open_on_device(plan, -2, &s), KVT_STATUS_INVALID_ARGUMENT);
  const kvt_status_t st = kvt_sequence_open_on_device(plan, 0, &s);
  if (kvt::gpu::DeviceCount() == 0) {
    EXPECT_EQ(st, KVT_STATUS_UNSUPPORTED) << kvt_last_error_message();
    EXPECT_NE(std::strstr(kvt_last_error_message(), "cuda"), nullptr) << kvt_last_error_message();
    EXPECT_EQ(s, nullptr);
  } else {
    EXPECT_EQ(st, KVT_STATUS_OK) << kvt_last_error_message();
    kvt_sequence_close(s);
  }
  // A CPU sequence refuses the device entry point before touching the pointers.
  ASSERT_EQ(kvt_sequence_open_on_device(plan, -1, &s), KVT_STATUS_OK) << kvt_last_error_message();
  std::vector<float> k(2 * 16, 0.5f), q(4 * 16, 0.25f), out(q.size());
  ASSERT_EQ(kvt_sequence_append(s, 0, k.data(), k.data(), 1), KVT_STATUS_OK);
  EXPECT_EQ(kvt_sequence_attend_on_device(s, 0, q.data(), out.data(), nullptr), KVT_STATUS_UNSUPPORTED);
  EXPECT_EQ(kvt_sequence_attend_on_device(nullptr, 0, q.data(), out.data(), nullptr), KVT_STATUS_INVALID_ARGUMENT);
  kvt_sequence_close(s);
}

// The C++ layer: kvt::Sequence over the same calls; the device calls on a CPU sequence are errors
// with their messages.
TEST(SequenceAbi, CppWrapper) {
  const char* plan = "kvt-sequence-plan 1\nmodel t\nshape layers=1,q_heads=4,kv_heads=2,head_dim=16\nlayer 0 full\n";
  kvt::Sequence s;
  ASSERT_TRUE(kvt::Sequence::Open(plan, &s)) << kvt_last_error_message();
  std::vector<float> k(2 * 16, 0.5f), q(4 * 16, 0.25f), out(q.size());
  ASSERT_TRUE(s.Append(0, k.data(), k.data(), 1));
  ASSERT_TRUE(s.Attend(0, q.data(), out.data()));
  EXPECT_FLOAT_EQ(out[0], 0.5f);  // one token: the output is its value
  kvt_kv_segment_t seg[4];
  uint32_t count = 0;
  ASSERT_TRUE(s.Select(0, q.data(), seg, 4, &count));
  EXPECT_EQ(count, 1u);
  kvt::Result r = s.AppendOnDevice(0, k.data(), k.data(), 1, nullptr);
  EXPECT_EQ(r.status, KVT_STATUS_UNSUPPORTED);
  EXPECT_FALSE(r.message.empty());
  EXPECT_EQ(s.AttendOnDevice(0, q.data(), out.data(), nullptr).status, KVT_STATUS_UNSUPPORTED);
  kvt_device_selection_t sel;
  EXPECT_EQ(s.SelectOnDevice(0, q.data(), nullptr, &sel).status, KVT_STATUS_UNSUPPORTED);
  kvt::Sequence moved = std::move(s);
  EXPECT_EQ(s.get(), nullptr);
  EXPECT_TRUE(moved.Attend(0, q.data(), out.data()));
  kvt::Sequence bad;
  EXPECT_EQ(kvt::Sequence::Open("not a plan", &bad).status, KVT_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(bad.get(), nullptr);
}

// ABI 1.5: the device-pointer append and select refuse a CPU sequence, a null handle and a bad
// output struct with status codes, before touching the pointers.
TEST(SequenceAbi, DeviceAppendAndSelectOnCpuSequence) {
  uint32_t major = 0, minor = 0;
  kvt_version(&major, &minor, nullptr);
  EXPECT_GE(minor, 5u);
  const char* plan = "kvt-sequence-plan 1\nmodel t\nshape layers=1,q_heads=4,kv_heads=2,head_dim=16\nlayer 0 full\n";
  kvt_sequence_t* s = nullptr;
  ASSERT_EQ(kvt_sequence_open(plan, &s), KVT_STATUS_OK) << kvt_last_error_message();
  std::vector<float> k(2 * 16, 0.5f), q(4 * 16, 0.25f);
  ASSERT_EQ(kvt_sequence_append(s, 0, k.data(), k.data(), 1), KVT_STATUS_OK);
  EXPECT_EQ(kvt_sequence_append_on_device(s, 0, k.data(), k.data(), 1, nullptr), KVT_STATUS_UNSUPPORTED);
  EXPECT_NE(std::strstr(kvt_last_error_message(), "CPU"), nullptr) << kvt_last_error_message();
  EXPECT_EQ(kvt_sequence_append_on_device(nullptr, 0, k.data(), k.data(), 1, nullptr), KVT_STATUS_INVALID_ARGUMENT);
  kvt_device_selection_t sel{};
  sel.struct_size = sizeof sel;
  sel.count = 99;
  EXPECT_EQ(kvt_sequence_select_on_device(s, 0, q.data(), nullptr, &sel), KVT_STATUS_UNSUPPORTED);
  EXPECT_EQ(sel.count, 0u);  // cleared on failure
  EXPECT_EQ(sel.struct_size, sizeof sel);
  EXPECT_EQ(kvt_sequence_select_on_device(s, 0, q.data(), nullptr, nullptr), KVT_STATUS_INVALID_ARGUMENT);
  sel.struct_size = 8;
  EXPECT_EQ(kvt_sequence_select_on_device(s, 0, q.data(), nullptr, &sel), KVT_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(std::strstr(kvt_last_error_message(), "struct_size"), nullptr) << kvt_last_error_message();
  sel.struct_size = sizeof sel;
  EXPECT_EQ(kvt_sequence_select_on_device(nullptr, 0, q.data(), nullptr, &sel), KVT_STATUS_INVALID_ARGUMENT);
  kvt_sequence_close(s);
}

TEST(SequenceAbi, BadArgumentsAreStatusCodes) {
  kvt_sequence_t* s = nullptr;
  EXPECT_EQ(kvt_sequence_open(nullptr, &s), KVT_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(kvt_sequence_open("not a plan", &s), KVT_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(std::strlen(kvt_last_error_message()), 0u);
  EXPECT_EQ(s, nullptr);
  float x[512] = {};
  EXPECT_EQ(kvt_sequence_append(nullptr, 0, x, x, 1), KVT_STATUS_INVALID_ARGUMENT);
  ASSERT_EQ(kvt_sequence_open(kPlan, &s), KVT_STATUS_OK);
  EXPECT_EQ(kvt_sequence_append(s, 7, x, x, 1), KVT_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(kvt_sequence_append(s, 0, nullptr, x, 1), KVT_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(kvt_sequence_attend(s, 0, x, x), KVT_STATUS_INVALID_ARGUMENT);  // no tokens yet
  EXPECT_EQ(kvt_sequence_resume(s, "garbage!", 8), KVT_STATUS_CORRUPTION);
  // Reporting (ABI 1.1; the daemon side is checked by the monitoring and Python tests): a null
  // sequence is refused, detaching a sequence that reports nowhere is fine.
  EXPECT_EQ(kvt_sequence_attach(nullptr, nullptr), KVT_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(kvt_sequence_attach(s, nullptr), KVT_STATUS_OK);
  kvt_sequence_close(s);
  kvt_sequence_close(nullptr);
}

// ABI 1.4: the plan kinds tale and kvcompose come with the plan text; kvt_sequence_observe
// compresses them (the kvcompose layer then keeps fewer tokens), Select on them is UNSUPPORTED.
TEST(SequenceAbi, TaleAndKvComposeLayersWithObserve) {
  uint32_t major = 0, minor = 0;
  kvt_version(&major, &minor, nullptr);
  EXPECT_GE(minor, 4u);
  const char* plan =
      "kvt-sequence-plan 1\nshape layers=2,q_heads=8,kv_heads=2,head_dim=16\n"
      "layer 0 tale window=8,sinks=2\nlayer 1 kvcompose ratio=0.25\n";
  kvt_sequence_t* s = nullptr;
  ASSERT_EQ(kvt_sequence_open(plan, &s), KVT_STATUS_OK) << kvt_last_error_message();
  std::mt19937 rng(11);
  std::normal_distribution<float> nd;
  std::vector<float> k(40 * 2 * 16), v(k.size()), q(4 * 8 * 16), out(8 * 16);
  for (auto* buf : {&k, &v, &q}) {
    for (auto& x : *buf) x = nd(rng);
  }
  for (uint32_t l = 0; l < 2; ++l) {
    ASSERT_EQ(kvt_sequence_append(s, l, k.data(), v.data(), 40), KVT_STATUS_OK);
    ASSERT_EQ(kvt_sequence_observe(s, l, q.data(), 4), KVT_STATUS_OK) << kvt_last_error_message();
    ASSERT_EQ(kvt_sequence_attend(s, l, q.data(), out.data()), KVT_STATUS_OK) << kvt_last_error_message();
    kvt_kv_segment_t seg[2];
    uint32_t count = 0;
    EXPECT_EQ(kvt_sequence_select(s, l, q.data(), seg, 2, &count), KVT_STATUS_UNSUPPORTED);
  }
  EXPECT_EQ(kvt_sequence_observe(s, 0, nullptr, 4), KVT_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(kvt_sequence_observe(nullptr, 0, q.data(), 4), KVT_STATUS_INVALID_ARGUMENT);
  void* image = nullptr;
  uint64_t bytes = 0;
  ASSERT_EQ(kvt_sequence_suspend(s, &image, &bytes), KVT_STATUS_OK) << kvt_last_error_message();
  ASSERT_EQ(kvt_sequence_resume(s, image, bytes), KVT_STATUS_OK) << kvt_last_error_message();
  kvt_sequence_image_free(image);
  EXPECT_EQ(kvt_sequence_attend(s, 1, q.data(), out.data()), KVT_STATUS_OK);
  kvt_sequence_close(s);
  // A GPU sequence takes them: opened where a device is, else UNSUPPORTED for want of one (never a
  // refusal of the kinds).
  s = nullptr;
  const kvt_status_t on_device = kvt_sequence_open_on_device(plan, 0, &s);
  if (on_device == KVT_STATUS_OK) {
    kvt_sequence_close(s);
  } else {
    EXPECT_EQ(on_device, KVT_STATUS_UNSUPPORTED);
    EXPECT_EQ(std::strstr(kvt_last_error_message(), "CPU path only"), nullptr) << kvt_last_error_message();
  }
}

}  // namespace
