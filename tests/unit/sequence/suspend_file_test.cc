// Suspend to a file (sequence/suspend_file.h, Sequence::SuspendToFile / ResumeFromFile): decode
// after a round trip through the file equals decode of a never-suspended twin bit for bit; the
// sequence's memory is released while suspended; a truncated, corrupt or foreign file is an error
// that leaves the sequence suspended and resumable; a full disk leaves it live and unchanged.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>

#include "sequence/sequence.h"
#include "tests/support/temp_dir.h"

namespace kvt::sequence {
namespace {

constexpr int kLayers = 5, kKvHeads = 2, kQHeads = 8, kHeadDim = 64;
constexpr int kRow = kKvHeads * kHeadDim, kQRow = kQHeads * kHeadDim;

// Every kind of layer, a hinted channel-row sparse layer and a sketch one among them.
constexpr char kPlan[] =
    "kvt-sequence-plan 1\n"
    "shape layers=5,q_heads=8,kv_heads=2,head_dim=64\n"
    "layer 0 kivi bits=2,group=32,residual=64\n"
    "layer 1 sparse budget=96,sinks=4,recent=32,channels=8\n"
    "layer 2 sparse budget=96,sinks=4,recent=32,channels=8,scorer=sketch\n"
    "layer 3 offload\n"
    "layer 4 full\n";

// Random activations: prompt + steps tokens of K/V per layer, one query per step and layer.
struct Activations {
  int prompt, steps;
  std::vector<float> k, v, q;  // [layers][tokens][row], [layers][steps][qrow]
  Activations(int p, int s, uint32_t seed) : prompt(p), steps(s) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd;
    k.resize(static_cast<size_t>(kLayers) * (p + s) * kRow);
    v.resize(k.size());
    q.resize(static_cast<size_t>(kLayers) * s * kQRow);
    for (auto& x : k) x = nd(rng);
    for (auto& x : v) x = nd(rng);
    for (auto& x : q) x = nd(rng);
  }
  const float* K(int l, int t) const { return k.data() + (static_cast<size_t>(l) * (prompt + steps) + t) * kRow; }
  const float* V(int l, int t) const { return v.data() + (static_cast<size_t>(l) * (prompt + steps) + t) * kRow; }
  const float* Q(int l, int s) const { return q.data() + (static_cast<size_t>(l) * steps + s) * kQRow; }
};

std::unique_ptr<Sequence> OpenPrefilled(const Activations& a) {
  auto plan = ParsePlan(kPlan);
  EXPECT_TRUE(plan.ok()) << plan.status().ToString();
  auto s = Sequence::Open(*plan);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  for (int l = 0; l < kLayers; ++l) EXPECT_TRUE((*s)->Append(l, a.K(l, 0), a.V(l, 0), a.prompt).ok());
  return std::move(*s);
}

// Decode step `s` on every layer (hint, append, attend); outputs [layers][qrow].
std::vector<float> Step(Sequence& seq, const Activations& a, int s) {
  std::vector<float> out(static_cast<size_t>(kLayers) * kQRow);
  for (int l = 0; l < kLayers; ++l) {
    if (l + 1 < kLayers) {
      EXPECT_TRUE(seq.HintNext(l + 1, a.Q(l + 1, s)).ok());
    }
    EXPECT_TRUE(seq.Append(l, a.K(l, a.prompt + s), a.V(l, a.prompt + s), 1).ok());
    Status st = seq.Attend(l, a.Q(l, s), out.data() + static_cast<size_t>(l) * kQRow);
    EXPECT_TRUE(st.ok()) << st.ToString();
  }
  return out;
}

std::vector<uint8_t> ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}
void WriteAll(const std::string& path, std::span<const uint8_t> bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}
bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

TEST(SuspendFile, ResumeFromFileIsBitExactAndFreesMemory) {
  const Activations a(400, 6, 11);
  auto seq = OpenPrefilled(a), twin = OpenPrefilled(a);
  kvt::testing::TempDir dir;
  const std::string path = dir.File("seq.kvtq");
  for (int s = 0; s < a.steps; ++s) {
    if (s == 1 || s == 4) {
      ASSERT_GT(seq->counters().host_bytes, 0u);
      ASSERT_TRUE(seq->SuspendToFile(path).ok());
      EXPECT_TRUE(seq->suspended());
      EXPECT_FALSE(Exists(path + ".partial"));
      // Nothing of the sequence stays in memory: no layer, no transfer buffer.
      const SequenceCounters c = seq->counters();
      EXPECT_EQ(c.host_bytes, 0u);
      EXPECT_EQ(c.device_bytes, 0u);
      EXPECT_EQ(seq->tokens(0), 0);
      std::vector<float> out(kQRow);
      EXPECT_EQ(seq->Attend(0, a.Q(0, s), out.data()).code(), StatusCode::kUnsupported);
      EXPECT_EQ(seq->SuspendToFile(path).code(), StatusCode::kUnsupported);
      // The file's payload is the in-memory image of the same state.
      auto payload = ReadSuspendFile(path);
      ASSERT_TRUE(payload.ok()) << payload.status().ToString();
      auto restored = Sequence::Restore(*payload);
      ASSERT_TRUE(restored.ok());
      auto image = (*restored)->Suspend();
      ASSERT_TRUE(image.ok());
      EXPECT_EQ(*image, *payload);
      EXPECT_EQ(ReadAll(path).size(), payload->size() + sizeof(SuspendFileHeader));

      Status st = seq->ResumeFromFile(path);
      ASSERT_TRUE(st.ok()) << st.ToString();
      EXPECT_FALSE(seq->suspended());
      EXPECT_EQ(seq->tokens(3), a.prompt + s);
    }
    const auto got = Step(*seq, a, s), want = Step(*twin, a, s);
    ASSERT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0) << "step " << s;
  }
  for (int l = 0; l < kLayers; ++l) EXPECT_EQ(seq->tokens(l), twin->tokens(l));
}

TEST(SuspendFile, BadFilesAreErrorsAndLeaveTheSequenceSuspended) {
  const Activations a(200, 2, 12);
  auto seq = OpenPrefilled(a), twin = OpenPrefilled(a);
  kvt::testing::TempDir dir;
  const std::string good = dir.File("good"), bad = dir.File("bad");
  ASSERT_TRUE(seq->SuspendToFile(good).ok());
  const std::vector<uint8_t> bytes = ReadAll(good);
  ASSERT_GT(bytes.size(), sizeof(SuspendFileHeader) + 1000);

  auto expect = [&](std::span<const uint8_t> content, StatusCode code, const char* what) {
    WriteAll(bad, content);
    Status st = seq->ResumeFromFile(bad);
    EXPECT_EQ(st.code(), code) << what << ": " << st.ToString();
    EXPECT_FALSE(st.message().empty());
    EXPECT_TRUE(seq->suspended()) << what;
  };
  for (size_t cut : {size_t{0}, size_t{4}, size_t{8}, size_t{40}, sizeof(SuspendFileHeader),
                     sizeof(SuspendFileHeader) + 17, bytes.size() / 2, bytes.size() - 1}) {
    expect(std::span(bytes.data(), cut), StatusCode::kCorruption, "truncated");
  }
  std::vector<uint8_t> c = bytes;
  c[bytes.size() - 100] ^= 0x01;  // one bit of the last layer's values
  expect(c, StatusCode::kCorruption, "payload bit flip");
  c = bytes;
  c[16] ^= 0x01;  // payload length in the header
  expect(c, StatusCode::kCorruption, "header bit flip");
  c = bytes;
  c.push_back(0);
  expect(c, StatusCode::kCorruption, "trailing byte");
  c = bytes;
  c[0] = 'X';
  expect(c, StatusCode::kInvalidArgument, "foreign file");
  const std::string text = "kvt-sequence-plan 1\nshape layers=5,q_heads=8,kv_heads=2,head_dim=64\n";
  expect(std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()), StatusCode::kInvalidArgument,
         "a plan, not a suspend file");
  EXPECT_EQ(seq->ResumeFromFile(dir.File("missing")).code(), StatusCode::kNotFound);
  EXPECT_EQ(seq->ResumeFromFile("").code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(seq->suspended());
  // Intact: the good file still resumes it, bit-exact.
  ASSERT_TRUE(seq->ResumeFromFile(good).ok());
  for (int s = 0; s < a.steps; ++s) {
    const auto got = Step(*seq, a, s), want = Step(*twin, a, s);
    EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0) << "step " << s;
  }
  // A live sequence refuses to be overwritten by a file.
  EXPECT_EQ(seq->ResumeFromFile(good).code(), StatusCode::kUnsupported);
}

// Fails every write once `budget` bytes are written, as a full file system does.
class FullDiskIo final : public SuspendFileIo {
 public:
  explicit FullDiskIo(uint64_t budget, int err = ENOSPC) : budget_(budget), err_(err) {}
  Status PWrite(int fd, std::span<const uint8_t> bytes, uint64_t offset) override {
    ++writes_;
    if (written_ + bytes.size() > budget_) return ErrnoStatus("pwrite", err_);
    written_ += bytes.size();
    return SuspendFileIo::PWrite(fd, bytes, offset);
  }
  uint64_t written_ = 0;
  int writes_ = 0;

 private:
  uint64_t budget_;
  int err_;
};

TEST(SuspendFile, FullDiskLeavesTheSequenceLive) {
  const Activations a(300, 3, 13);
  auto seq = OpenPrefilled(a), twin = OpenPrefilled(a);
  kvt::testing::TempDir dir;
  const std::string path = dir.File("seq");
  const std::vector<uint8_t> earlier = {1, 2, 3, 4};
  WriteAll(path, earlier);  // an older file at the path survives a failed suspend
  seq->scheduler().Drain();  // host_bytes counts the rows written back so far
  const uint64_t host = seq->counters().host_bytes;
  // The payload's size, to let it through and fail the header.
  FullDiskIo probe(~uint64_t{0});
  ASSERT_TRUE(OpenPrefilled(a)->SuspendToFile(dir.File("probe"), &probe).ok());
  const uint64_t payload = probe.written_ - sizeof(SuspendFileHeader);
  // Out of space at the start (the prologue), in the middle (a layer), and at the header.
  for (uint64_t budget : {uint64_t{0}, uint64_t{50'000}, payload}) {
    FullDiskIo io(budget);
    Status st = seq->SuspendToFile(path, &io);
    EXPECT_EQ(st.code(), StatusCode::kResourceExhausted) << budget << ": " << st.ToString();
    EXPECT_GT(io.writes_, 0);
    EXPECT_FALSE(seq->suspended());
    EXPECT_EQ(seq->counters().host_bytes, host);
    EXPECT_FALSE(Exists(path + ".partial"));
    EXPECT_EQ(ReadAll(path), earlier);
  }
  FullDiskIo quota(1000, EDQUOT);
  EXPECT_EQ(seq->SuspendToFile(path, &quota).code(), StatusCode::kResourceExhausted);
  // No such directory: an error, the sequence live.
  EXPECT_EQ(seq->SuspendToFile(dir.File("no/such/dir/seq")).code(), StatusCode::kNotFound);
  EXPECT_FALSE(seq->suspended());
  // Still usable, and unchanged.
  for (int s = 0; s < a.steps; ++s) {
    const auto got = Step(*seq, a, s), want = Step(*twin, a, s);
    EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0) << "step " << s;
  }
}

}  // namespace
}  // namespace kvt::sequence
