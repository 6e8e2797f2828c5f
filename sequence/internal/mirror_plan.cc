#include "sequence/internal/mirror_plan.h"

#include <algorithm>

namespace kvt::sequence::internal {

namespace klr = kernels::lowrank;

void TaleMirror::Plan(const policies::lowrank::TaleCache& cache, MirrorPlan* plan) {
  const klr::TaleAttentionArgs a = cache.AttentionView();
  const size_t kv = static_cast<size_t>(a.num_kv_heads), d = static_cast<size_t>(a.head_dim);
  plan->sizes.assign(kBuffers, 0);
  plan->release.assign(kBuffers, 0);
  plan->copies.clear();
  auto copy = [plan](int buffer, size_t offset, const void* src, size_t bytes) {
    if (bytes > 0) plan->copies.push_back({buffer, offset, src, bytes});
  };
  bool counts_changed = !mirrored_;
  if (!mirrored_) {                     // at start or after Load: everything again
    calibrated_ = !cache.calibrated();  // forces the bases
    capacity_.fill(-1);                 // forces every level
    window_first_ = -1;                 // forces the window
    mirrored_ = true;
  }
  // Bases: identity until calibration, then fixed.
  const size_t basis = kv * d * d * sizeof(float);
  plan->sizes[kKeyBasis] = plan->sizes[kValueBasis] = basis;
  if (calibrated_ != cache.calibrated()) {
    copy(kKeyBasis, 0, a.key_basis, basis);
    copy(kValueBasis, 0, a.value_basis, basis);
    calibrated_ = cache.calibrated();
  }
  // Level records: append-only per (level, head) at a fixed capacity; the cache's growth of a
  // level moves every head's records (then all of them again).
  for (int l = 0; l < klr::kTaleLevels; ++l) {
    const klr::TaleLevelBuffers& lv = a.levels[l];
    const size_t kb = a.key_layout.levels[l].record_bytes,
                 vb = a.value_layout.levels[l].record_bytes;
    auto& mirrored = records_[static_cast<size_t>(l)];
    if (lv.capacity != capacity_[static_cast<size_t>(l)]) {
      capacity_[static_cast<size_t>(l)] = lv.capacity;
      mirrored.assign(kv, 0);
    }
    const size_t slots = kv * static_cast<size_t>(lv.capacity);
    plan->sizes[kLevelKeys + 2 * l] = slots * kb;
    plan->sizes[kLevelValues + 2 * l] = slots * vb;
    for (size_t h = 0; h < kv; ++h) {
      const int32_t have = mirrored[h], want = lv.tokens[h];
      if (want == have) continue;
      const size_t from = h * static_cast<size_t>(lv.capacity) + static_cast<size_t>(have);
      const size_t n = static_cast<size_t>(want - have);
      copy(kLevelKeys + 2 * l, from * kb, lv.key_records + from * kb, n * kb);
      copy(kLevelValues + 2 * l, from * vb, lv.value_records + from * vb, n * vb);
      mirrored[h] = want;
      counts_changed = true;
    }
  }
  plan->sizes[kCounts] = static_cast<size_t>(klr::kTaleLevels) * kv * sizeof(int32_t);
  if (counts_changed) {
    counts_.clear();
    for (const auto& r : records_) counts_.insert(counts_.end(), r.begin(), r.end());
    copy(kCounts, 0, counts_.data(), counts_.size() * sizeof(int32_t));
  }
  // The exact window: appends add rows at its end; compression drops rows from its front, which
  // moves every row (then the whole window again).
  const int64_t first = cache.compressed_tokens(), rows = a.window_tokens;
  const size_t row = kv * d * sizeof(float), bytes = static_cast<size_t>(rows) * row;
  int64_t from = window_rows_;
  if (first != window_first_ || rows < window_rows_) {
    from = 0;
    // Give back a prompt-sized window once compression has cut it to a few windows' worth.
    if (window_peak_ > 4 * (bytes + row) && window_peak_ > (size_t{64} << 10)) {
      plan->release[kWindowKeys] = plan->release[kWindowValues] = 1;
      window_peak_ = 0;
    }
  }
  window_peak_ = std::max(window_peak_, bytes);
  plan->sizes[kWindowKeys] = plan->sizes[kWindowValues] = bytes;
  const size_t at = static_cast<size_t>(from) * row, n = static_cast<size_t>(rows - from) * row;
  copy(kWindowKeys, at, reinterpret_cast<const uint8_t*>(a.window_keys) + at, n);
  copy(kWindowValues, at, reinterpret_cast<const uint8_t*>(a.window_values) + at, n);
  window_first_ = first;
  window_rows_ = rows;
}

void KvComposeMirror::Plan(const policies::lowrank::KvComposeCache& cache, int kv_heads,
                           int head_dim, MirrorPlan* plan) {
  const std::vector<int64_t>& counts = cache.head_token_counts();
  const size_t kv = static_cast<size_t>(kv_heads), d = static_cast<size_t>(head_dim);
  const size_t cap = static_cast<size_t>(cache.capacity());
  const size_t slot = d * sizeof(kernels::Half);
  plan->sizes.assign(kBuffers, kv * cap * slot);
  plan->release.assign(kBuffers, 0);
  plan->copies.clear();
  if (!mirrored_ || cache.layout_version() != version_) {  // the layout moved: every head again
    counts_.assign(kv, 0);
    version_ = cache.layout_version();
    mirrored_ = true;
  }
  for (size_t h = 0; h < kv; ++h) {
    const int64_t have = counts_[h], want = counts[h];
    if (want == have) continue;
    const size_t from = (h * cap + static_cast<size_t>(have)) * slot,
                 n = static_cast<size_t>(want - have) * slot;
    plan->copies.push_back(
        {kKeys, from, reinterpret_cast<const uint8_t*>(cache.key_data()) + from, n});
    plan->copies.push_back(
        {kValues, from, reinterpret_cast<const uint8_t*>(cache.value_data()) + from, n});
    counts_[h] = want;
  }
}

}  // namespace kvt::sequence::internal
