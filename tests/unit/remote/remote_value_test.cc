// Redis Cluster slots (the specification's examples), the shared record header and the remote
// value checks: every damaged, foreign or stale value is refused; and an unreachable Redis gives
// bounded misses, never an error or a hang.
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <chrono>
#include <random>
#include <string>

#include "host/remote/key_slot.h"
#include "host/remote/remote_tier.h"
#include "host/remote/remote_value.h"
#include "tiering/record_header.h"

#include <xxhash.h>
#include <cstring>

namespace kvt::remote {
namespace {

TEST(KeySlot, MatchesTheClusterSpecification) {
  EXPECT_EQ(Crc16Xmodem("123456789"), 0x31C3);  // the CRC16-XMODEM check value
  EXPECT_EQ(KeySlot("foo"), 12182);
  EXPECT_EQ(KeySlot("bar"), 5061);
  EXPECT_EQ(KeySlot("{user1000}.following"), KeySlot("{user1000}.followers"));
  EXPECT_EQ(KeySlot("{user1000}.following"), KeySlot("user1000"));
  EXPECT_EQ(KeySlot("foo{}{bar}"), Crc16Xmodem("foo{}{bar}") % kClusterSlots);  // empty tag: whole key
  EXPECT_EQ(KeySlot("foo{{bar}}zap"), KeySlot("{bar"));                          // first '{' to first '}'
}

class ValueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::mt19937_64 rng(11);
    payload_.resize(4096);
    for (auto& c : payload_) c = static_cast<char>(rng());
    value_ = EncodeValueHeader(key_, fp_, payload_.data(), payload_.size(), 123) + payload_;
  }
  tiering::ChunkKey key_{1, 2};
  tiering::Fingerprint fp_{3, 4};
  std::string payload_, value_;
};

TEST_F(ValueTest, IntactValueVerifies) {
  EXPECT_EQ(VerifyValue(value_, key_, fp_, payload_.size()), ValueCheck::kOk);
  EXPECT_EQ(value_.size(), tiering::kRecordHeaderBytes + payload_.size());
}

TEST_F(ValueTest, EveryFlippedByteIsCaught) {
  for (size_t i = 0; i < value_.size(); i += 7) {
    std::string v = value_;
    v[i] ^= 0x20;
    EXPECT_NE(VerifyValue(v, key_, fp_, payload_.size()), ValueCheck::kOk) << "byte " << i;
  }
}

TEST_F(ValueTest, ForeignStaleTruncatedAndExtendedAreRefused) {
  EXPECT_EQ(VerifyValue(value_, {9, 9}, fp_, payload_.size()), ValueCheck::kForeign);
  EXPECT_EQ(VerifyValue(value_, key_, {5, 5}, payload_.size()), ValueCheck::kForeign);  // other tenant/namespace
  EXPECT_EQ(VerifyValue(value_, key_, fp_, payload_.size() * 2), ValueCheck::kForeign);
  EXPECT_EQ(VerifyValue(value_.substr(0, value_.size() - 1), key_, fp_, payload_.size()), ValueCheck::kCorrupt);
  EXPECT_EQ(VerifyValue(value_ + "x", key_, fp_, payload_.size()), ValueCheck::kCorrupt);
  EXPECT_EQ(VerifyValue("short", key_, fp_, payload_.size()), ValueCheck::kCorrupt);
  EXPECT_EQ(VerifyValue("", key_, fp_, payload_.size()), ValueCheck::kCorrupt);
  // A well-formed header of another format version: stale, not corrupt.
  tiering::RecordHeader h;
  std::memcpy(&h, value_.data(), sizeof h);
  h.version = tiering::kRecordFormatVersion + 1;
  h.header_xxh3 = 0;
  h.header_xxh3 = XXH3_64bits(&h, sizeof h);
  std::string v = value_;
  std::memcpy(v.data(), &h, sizeof h);
  EXPECT_EQ(VerifyValue(v, key_, fp_, payload_.size()), ValueCheck::kStale);
}

TEST(RemoteTierUnreachable, MissesAreImmediateAndNothingHangs) {
  prometheus::Registry registry;
  RemoteOptions o;
  o.endpoints = {"127.0.0.1:1"};  // nothing listens on port 1
  o.connect_timeout_ms = 100;
  o.op_timeout_ms = 200;
  auto tier = RemoteTier::Create(o, registry);
  ASSERT_TRUE(tier.ok()) << tier.status().ToString();
  tiering::ChunkKey keys[3] = {{1, 1}, {2, 2}, {3, 3}};
  std::vector<char> out(3 * 64);
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ((*tier)->CountPresent({7, 7}, keys), 0u);
    EXPECT_EQ((*tier)->ReadPrefix({7, 7}, keys, out.data(), 64), 0u);
    auto data = std::shared_ptr<const char>(new char[64], std::default_delete<const char[]>());
    (*tier)->Offer(keys[0], {7, 7}, 0, data, 64);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  EXPECT_GE((*tier)->metrics().dropped_unavailable.Value(), 20);
  EXPECT_TRUE(RemoteTier::Create(RemoteOptions{}, registry).status().code() == StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvt::remote
