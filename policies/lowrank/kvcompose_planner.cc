#include "policies/lowrank/kvcompose_planner.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <tuple>

namespace kvt::policies::lowrank {

KvComposePlanner::KvComposePlanner(int num_layers, int num_kv_heads, float ratio, bool structured)
    : num_layers_(num_layers), kv_(num_kv_heads), ratio_(ratio), structured_(structured) {
  sorted_.resize(std::max(0, num_layers));
  tokens_.assign(std::max(0, num_layers), -1);
}

Status KvComposePlanner::Submit(int layer, const std::vector<float>& scores, int64_t tokens) {
  std::lock_guard<std::mutex> lock(mu_);
  if (layer < 0 || layer >= num_layers_) return InvalidArgument("kvcompose: layer out of range");
  if (tokens < 0 || scores.size() != static_cast<size_t>(kv_) * static_cast<size_t>(tokens)) {
    return InvalidArgument("kvcompose: scores must be [kv_heads][tokens]");
  }
  if (tokens_[layer] >= 0) {
    return InvalidArgument("kvcompose: layer " + std::to_string(layer) + " submitted twice");
  }
  std::vector<float> s = scores;
  for (int h = 0; h < kv_; ++h) {
    std::sort(s.begin() + h * tokens, s.begin() + (h + 1) * tokens, std::greater<float>());
  }
  sorted_[layer] = std::move(s);
  tokens_[layer] = tokens;
  if (++submitted_ == num_layers_) Plan();
  return Status::Ok();
}

void KvComposePlanner::Plan() {
  int64_t total = 0;
  for (int64_t t : tokens_) total += t;
  budget_ = std::llround(static_cast<double>(ratio_) * static_cast<double>(total));
  counts_.assign(num_layers_, std::vector<int64_t>(kv_, 0));
  // Candidates as (score, layer, head, rank); the top `need` by score, ties by layer then rank.
  struct Cand {
    float score;
    int layer, head;
    int64_t rank;
  };
  std::vector<Cand> cands;
  if (structured_) {
    std::vector<std::vector<float>> comp(num_layers_);
    for (int l = 0; l < num_layers_; ++l) {
      comp[l].assign(tokens_[l], 0.0f);
      for (int h = 0; h < kv_; ++h) {
        for (int64_t j = 0; j < tokens_[l]; ++j) comp[l][j] += sorted_[l][h * tokens_[l] + j] / kv_;
      }
    }
    if (num_layers_ > 1) {
      for (int64_t j = 0; j < tokens_[0]; ++j) {
        for (int l = 1; l < num_layers_; ++l) {
          if (j < tokens_[l]) comp[0][j] = std::max(comp[0][j], comp[l][j]);
        }
      }
    }
    for (int l = 0; l < num_layers_; ++l) {
      for (int64_t j = 0; j < tokens_[l]; ++j) cands.push_back({comp[l][j], l, 0, j});
    }
  } else {
    std::vector<float> layer0 = sorted_[0];
    for (int h = 0; h < kv_; ++h) {
      for (int64_t j = 0; j < tokens_[0]; ++j) {
        for (int l = 1; l < num_layers_; ++l) {
          if (j < tokens_[l]) layer0[h * tokens_[0] + j] = std::max(layer0[h * tokens_[0] + j], sorted_[l][h * tokens_[l] + j]);
        }
      }
    }
    for (int l = 0; l < num_layers_; ++l) {
      const std::vector<float>& s = l == 0 ? layer0 : sorted_[l];
      for (int h = 0; h < kv_; ++h) {
        for (int64_t j = 0; j < tokens_[l]; ++j) cands.push_back({s[h * tokens_[l] + j], l, h, j});
      }
    }
  }
  const int64_t need = structured_ ? budget_ : budget_ * kv_;
  const auto better = [](const Cand& a, const Cand& b) {
    if (a.score != b.score) return a.score > b.score;
    return std::tie(a.layer, a.rank, a.head) < std::tie(b.layer, b.rank, b.head);
  };
  const int64_t take = std::min<int64_t>(need, static_cast<int64_t>(cands.size()));
  std::nth_element(cands.begin(), cands.begin() + std::max<int64_t>(0, take - 1), cands.end(), better);
  if (take > 0) std::sort(cands.begin(), cands.begin() + take, better);
  for (int64_t i = 0; i < take; ++i) {
    if (structured_) {
      for (int h = 0; h < kv_; ++h) ++counts_[cands[i].layer][h];
    } else {
      ++counts_[cands[i].layer][cands[i].head];
    }
  }
  ready_ = true;
}

bool KvComposePlanner::ready() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ready_;
}

StatusOr<std::vector<int64_t>> KvComposePlanner::HeadCounts(int layer) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (!ready_) return NotFound("kvcompose: plan not ready (not every layer has compressed)");
  if (layer < 0 || layer >= num_layers_) return InvalidArgument("kvcompose: layer out of range");
  return counts_[layer];
}

std::vector<double> KvComposePlanner::LayerCounts() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<double> out;
  if (!ready_) return out;
  for (const auto& c : counts_) {
    double s = 0.0;
    for (int64_t x : c) s += static_cast<double>(x);
    out.push_back(s / kv_);
  }
  return out;
}

int64_t KvComposePlanner::budget() const {
  std::lock_guard<std::mutex> lock(mu_);
  return budget_;
}

}  // namespace kvt::policies::lowrank
