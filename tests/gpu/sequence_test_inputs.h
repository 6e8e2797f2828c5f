// What the GPU sequence tests share: their shape (8 query heads, 2 KV heads, head_dim 64), random
// activations with a few strong key channels, a plan from layer specs, and opening a sequence on
// a device (or the CPU).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "sequence/sequence.h"

namespace kvt::sequence::testing {

constexpr int kQHeads = 8, kKvHeads = 2, kHeadDim = 64;
constexpr int kRow = kKvHeads * kHeadDim, kQRow = kQHeads * kHeadDim;

// Activations for `layers` layers over `tokens` tokens: K, V [tokens][kv_heads][head_dim] and one
// query per token [q_heads][head_dim]; normal (never zeros), keys with a few strong channels, as
// real post-RoPE keys have, so channel selection and the sketch have something to find.
struct Activations {
  std::vector<std::vector<float>> k, v, q;  // per layer
};

inline Activations MakeActivations(int layers, int tokens, uint32_t seed) {
  Activations a;
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  for (int l = 0; l < layers; ++l) {
    std::vector<float> k(static_cast<size_t>(tokens) * kRow), v(k.size()), q(static_cast<size_t>(tokens) * kQRow);
    for (size_t i = 0; i < k.size(); ++i) {
      const int c = static_cast<int>(i % kHeadDim);
      k[i] = nd(rng) * (c % 13 == 3 ? 4.0f : 1.0f);
      v[i] = nd(rng);
    }
    for (auto& x : q) x = nd(rng);
    a.k.push_back(std::move(k));
    a.v.push_back(std::move(v));
    a.q.push_back(std::move(q));
  }
  return a;
}

inline SequencePlan MakePlan(const std::vector<std::string>& specs, const std::string& model) {
  SequencePlan p;
  p.model = model;
  p.q_heads = kQHeads;
  p.kv_heads = kKvHeads;
  p.head_dim = kHeadDim;
  for (const auto& spec : specs) {
    auto lp = ParseLayerSpec(spec);
    EXPECT_TRUE(lp.ok()) << spec << ": " << lp.status().ToString();
    p.layers.push_back(*lp);
  }
  EXPECT_TRUE(p.Validate().ok());
  return p;
}

// `device` -1: the CPU. Null (with a test failure) when the sequence does not open.
inline std::unique_ptr<Sequence> OpenOrDie(const SequencePlan& plan, int device) {
  SequenceOptions o;
  o.cuda_device = device;
  auto s = Sequence::Open(plan, o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(*s) : nullptr;
}

}  // namespace kvt::sequence::testing
