#include "policies/lowrank/tale_cache.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "host/kernels/lowrank/observed_attention_scores.h"
#include "host/kernels/lowrank/tale_attention.h"
#include "policies/lowrank/internal/checks.h"

namespace kvt::policies::lowrank {

namespace klr = kernels::lowrank;

namespace {
constexpr size_t kReservoir = 4096;  // relative importances kept per head for level quantiles

// An observation count plus `more` (>= 0), stopping at INT32_MAX instead of overflowing.
int32_t SaturatingAdd(int32_t count, int64_t more) {
  return static_cast<int32_t>(std::min<int64_t>(int64_t{count} + more, INT32_MAX));
}
}

StatusOr<std::unique_ptr<TaleCache>> TaleCache::Create(const LayerShape& shape,
                                                       const TaleOptions& options) {
  KVT_RETURN_IF_ERROR(internal::CheckShape(shape, "tale"));
  if (options.window < 1) return InvalidArgument("tale: window must be >= 1");
  if (options.sinks < 0) return InvalidArgument("tale: sinks must be >= 0");
  float total = 0.0f;
  for (float f : options.fractions) {
    if (!(f >= 0.0f && f <= 1.0f)) return InvalidArgument("tale: level fractions must be in [0, 1]");
    total += f;
  }
  if (std::fabs(total - 1.0f) > 1e-3f) return InvalidArgument("tale: level fractions must sum to 1");
  if (options.basis == TaleBasisKind::kPreRope) {
    return Unsupported("tale: a pre-RoPE key basis is not reconstruction-free; use basis=post or pairs");
  }
  if (options.basis == TaleBasisKind::kRopePairs && shape.head_dim % 2 != 0) {
    return InvalidArgument("tale: basis=pairs needs an even head_dim");
  }
  klr::TaleFormat kf = klr::DefaultTaleFormat(shape.head_dim, {8, 8, 4, 4});
  if (options.basis == TaleBasisKind::kRopePairs) {
    // Keep RoPE pairs whole: a level never ends between the two axes of a pair.
    for (int l = 0; l < klr::kTaleLevels; ++l) kf.ranks[l] = std::min(shape.head_dim, (kf.ranks[l] + 1) & ~1);
  }
  klr::TaleFormat vf = klr::DefaultTaleFormat(shape.head_dim, {8, 8, 4, 4});
  for (int s = 0; s < klr::kTaleLevels; ++s) {
    kf.bits[s] = options.key_bits[s];
    vf.bits[s] = options.value_bits[s];
  }
  KVT_ASSIGN_OR_RETURN(auto kl, klr::MakeTaleLayout(kf));
  KVT_ASSIGN_OR_RETURN(auto vl, klr::MakeTaleLayout(vf));
  return std::unique_ptr<TaleCache>(new TaleCache(shape, options, kl, vl));
}

TaleCache::TaleCache(const LayerShape& shape, const TaleOptions& options, klr::TaleLayout kl,
                     klr::TaleLayout vl)
    : shape_(shape),
      opt_(options),
      key_layout_(kl),
      value_layout_(vl),
      d_(shape.head_dim),
      kv_(shape.num_kv_heads),
      group_(shape.num_q_heads / shape.num_kv_heads) {
  // Identity bases until calibration (only exact tokens exist then, so they are unused).
  key_basis_.assign(static_cast<size_t>(kv_) * d_ * d_, 0.0f);
  for (int h = 0; h < kv_; ++h) {
    for (int i = 0; i < d_; ++i) key_basis_[(static_cast<size_t>(h) * d_ + i) * d_ + i] = 1.0f;
  }
  value_basis_ = key_basis_;
  for (auto& l : levels_) l.tokens.assign(kv_, 0);
  reservoir_.resize(kv_);
  reservoir_next_.assign(kv_, 0);
  thresholds_.assign(kv_, {0.0f, 0.0f, 0.0f});
}

Status TaleCache::Append(const AppendBatch& batch) {
  KVT_RETURN_IF_ERROR(internal::CheckBatch(batch, false, "tale"));
  if (batch.tokens == 0) return Status::Ok();
  const size_t row = static_cast<size_t>(kv_) * d_;
  exact_k_.insert(exact_k_.end(), batch.keys, batch.keys + batch.tokens * row);
  exact_v_.insert(exact_v_.end(), batch.values, batch.values + batch.tokens * row);
  exact_pos_.insert(exact_pos_.end(), batch.positions, batch.positions + batch.tokens);
  exact_imp_.resize(exact_imp_.size() + static_cast<size_t>(batch.tokens) * kv_, 0.0f);
  exact_obs_.resize(exact_obs_.size() + batch.tokens, 0);
  tokens_ += batch.tokens;
  const int64_t n = static_cast<int64_t>(exact_pos_.size());
  if (calibrated_ && n > 2 * static_cast<int64_t>(opt_.window)) Evict(n - opt_.window);
  return Status::Ok();
}

Status TaleCache::Compress(const Observation& obs) {
  const int64_t n = static_cast<int64_t>(exact_pos_.size());
  if (obs.window < 0 || (obs.window > 0 && obs.queries == nullptr)) {
    return InvalidArgument("tale: bad observation");
  }
  if (obs.window > 0 && n > 0) {
    // Use the last min(window, n) observation queries: they are the newest prompt positions.
    const int w = static_cast<int>(std::min<int64_t>(obs.window, n));
    const float* queries = obs.queries + static_cast<size_t>(obs.window - w) * shape_.num_q_heads * d_;
    klr::ObservedAttentionShape s{kv_, shape_.num_q_heads, d_, n, w, 0.0f};
    std::vector<float> scores(static_cast<size_t>(kv_) * n);
    workspace_.resize(klr::ObservedAttentionScoresWorkspaceBytes(s) / sizeof(float) + 1);
    KVT_RETURN_IF_ERROR(klr::ObservedAttentionScores(s, exact_k_.data(), queries,
                                                     klr::ObservationReduce::kSum, scores.data(),
                                                     workspace_.data(), workspace_.size() * sizeof(float)));
    for (int64_t t = 0; t < n; ++t) {
      const int64_t observers = std::min<int64_t>(w, n - t);
      exact_obs_[t] = SaturatingAdd(exact_obs_[t], observers);
      for (int h = 0; h < kv_; ++h) exact_imp_[t * kv_ + h] += scores[h * n + t] * static_cast<float>(n);
    }
  }
  if (!calibrated_ && n > 0) KVT_RETURN_IF_ERROR(Calibrate());
  if (calibrated_ && n > opt_.window) Evict(n - opt_.window);
  return Status::Ok();
}

Status TaleCache::Calibrate() {
  const int64_t n = static_cast<int64_t>(exact_pos_.size());
  const int64_t stride = static_cast<int64_t>(kv_) * d_;
  for (int h = 0; h < kv_; ++h) {
    float* kb = key_basis_.data() + static_cast<size_t>(h) * d_ * d_;
    float* vb = value_basis_.data() + static_cast<size_t>(h) * d_ * d_;
    if (opt_.basis == TaleBasisKind::kRopePairs) {
      KVT_RETURN_IF_ERROR(RopePairBasis(exact_k_.data() + h * d_, n, d_, stride, kb));
    } else {
      KVT_RETURN_IF_ERROR(PcaBasis(exact_k_.data() + h * d_, n, d_, stride, kb));
    }
    KVT_RETURN_IF_ERROR(PcaBasis(exact_v_.data() + h * d_, n, d_, stride, vb));
  }
  calibrated_ = true;
  return Status::Ok();
}

int TaleCache::LevelFor(int head, float rel) const {
  const auto& th = thresholds_[head];
  for (int l = 0; l < 3; ++l) {
    if (rel >= th[l]) return l;
  }
  return 3;
}

void TaleCache::UpdateThresholds() {
  std::vector<float> sorted;
  for (int h = 0; h < kv_; ++h) {
    sorted = reservoir_[h];
    if (sorted.empty()) continue;
    std::sort(sorted.begin(), sorted.end(), std::greater<float>());
    float cum = 0.0f;
    for (int l = 0; l < 3; ++l) {
      cum += opt_.fractions[l];
      // A token is at level <= l when it ranks within the top cum fraction.
      const int64_t idx = static_cast<int64_t>(std::ceil(cum * static_cast<float>(sorted.size()))) - 1;
      thresholds_[h][l] = idx < 0 ? INFINITY
                                  : sorted[std::min<size_t>(static_cast<size_t>(idx), sorted.size() - 1)];
    }
  }
}

void TaleCache::Grow(Level& level, int l) {
  const int64_t cap = std::max<int64_t>(64, level.capacity * 2);
  const size_t kb = key_layout_.levels[l].record_bytes, vb = value_layout_.levels[l].record_bytes;
  std::vector<uint8_t> nk(static_cast<size_t>(kv_) * cap * kb), nv(static_cast<size_t>(kv_) * cap * vb);
  for (int h = 0; h < kv_; ++h) {
    const size_t used = static_cast<size_t>(level.tokens[h]);
    if (used == 0) continue;
    std::memcpy(nk.data() + h * cap * kb, level.keys.data() + h * level.capacity * kb, used * kb);
    std::memcpy(nv.data() + h * cap * vb, level.values.data() + h * level.capacity * vb, used * vb);
  }
  level.keys.swap(nk);
  level.values.swap(nv);
  level.capacity = cap;
}

void TaleCache::Evict(int64_t count) {
  const int64_t n = static_cast<int64_t>(exact_pos_.size());
  count = std::min(count, n);
  if (count <= 0) return;
  // Relative importance: attention received per observing query, times the tokens it competed
  // with (uniform attention = 1). Never observed: 1.
  std::vector<float> rel(static_cast<size_t>(count) * kv_);
  for (int64_t t = 0; t < count; ++t) {
    for (int h = 0; h < kv_; ++h) {
      rel[t * kv_ + h] = exact_obs_[t] > 0 ? exact_imp_[t * kv_ + h] / static_cast<float>(exact_obs_[t]) : 1.0f;
    }
  }
  for (int h = 0; h < kv_; ++h) {
    auto& res = reservoir_[h];
    for (int64_t t = 0; t < count; ++t) {
      if (exact_pos_[t] < opt_.sinks) continue;
      if (res.size() < kReservoir) {
        res.push_back(rel[t * kv_ + h]);
      } else {
        res[reservoir_next_[h]] = rel[t * kv_ + h];
        reservoir_next_[h] = (reservoir_next_[h] + 1) % kReservoir;
      }
    }
  }
  UpdateThresholds();
  std::vector<float> coeff(d_);
  record_levels_.resize(static_cast<size_t>(((compressed_ + count) * kv_ + 3) / 4), 0);
  for (int64_t t = 0; t < count; ++t) {
    for (int h = 0; h < kv_; ++h) {
      const int l = exact_pos_[t] < opt_.sinks ? 0 : LevelFor(h, rel[t * kv_ + h]);
      const int64_t tag = (compressed_ + t) * kv_ + h;
      record_levels_[tag / 4] |= static_cast<uint8_t>(l << (2 * (tag % 4)));
      Level& level = levels_[l];
      if (level.tokens[h] == level.capacity) Grow(level, l);
      const auto& klv = key_layout_.levels[l];
      const auto& vlv = value_layout_.levels[l];
      for (int pass = 0; pass < 2; ++pass) {
        const float* x = (pass == 0 ? exact_k_ : exact_v_).data() + (static_cast<size_t>(t) * kv_ + h) * d_;
        const float* b = (pass == 0 ? key_basis_ : value_basis_).data() + static_cast<size_t>(h) * d_ * d_;
        std::fill(coeff.begin(), coeff.end(), 0.0f);
        for (int i = 0; i < d_; ++i) {
          for (int j = 0; j < d_; ++j) coeff[j] += b[i * d_ + j] * x[i];
        }
        if (pass == 0) {
          klr::TaleEncodeRecord(klv, coeff.data(),
                                level.keys.data() + (h * level.capacity + level.tokens[h]) * klv.record_bytes);
        } else {
          klr::TaleEncodeRecord(vlv, coeff.data(),
                                level.values.data() + (h * level.capacity + level.tokens[h]) * vlv.record_bytes);
        }
      }
      ++level.tokens[h];
    }
  }
  compressed_ += count;
  const size_t row = static_cast<size_t>(kv_) * d_;
  exact_k_.erase(exact_k_.begin(), exact_k_.begin() + count * row);
  exact_v_.erase(exact_v_.begin(), exact_v_.begin() + count * row);
  exact_pos_.erase(exact_pos_.begin(), exact_pos_.begin() + count);
  exact_imp_.erase(exact_imp_.begin(), exact_imp_.begin() + count * kv_);
  exact_obs_.erase(exact_obs_.begin(), exact_obs_.begin() + count);
}

Status TaleCache::PrepareAttend() {
  if (tokens_ == 0) return InvalidArgument("tale: Attend on an empty cache");
  const int64_t n = static_cast<int64_t>(exact_pos_.size());
  if (!calibrated_ && n > 2 * static_cast<int64_t>(opt_.window)) {
    KVT_RETURN_IF_ERROR(Calibrate());
    Evict(n - opt_.window);
  }
  return Status::Ok();
}

klr::TaleAttentionArgs TaleCache::AttentionView() const {
  klr::TaleAttentionArgs a;
  a.num_kv_heads = kv_;
  a.num_q_heads = shape_.num_q_heads;
  a.head_dim = d_;
  a.key_layout = key_layout_;
  a.value_layout = value_layout_;
  a.key_basis = key_basis_.data();
  a.value_basis = value_basis_.data();
  int64_t max_head = 0;
  for (int h = 0; h < kv_; ++h) {
    int64_t s = 0;
    for (const auto& l : levels_) s += l.tokens[h];
    max_head = std::max(max_head, s);
  }
  for (int l = 0; l < klr::kTaleLevels; ++l) {
    a.levels[l].key_records = levels_[l].keys.data();
    a.levels[l].value_records = levels_[l].values.data();
    a.levels[l].tokens = levels_[l].tokens.data();
    a.levels[l].capacity = levels_[l].capacity;
  }
  a.window_keys = exact_k_.data();
  a.window_values = exact_v_.data();
  a.window_tokens = static_cast<int32_t>(exact_pos_.size());
  a.max_head_tokens = max_head;
  return a;
}

void TaleCache::AddWindowAttention(const float* window_attention) {
  // Importance while recent: the weight each exact token got, scaled by the tokens it competed with.
  const int64_t n = static_cast<int64_t>(exact_pos_.size());
  const float total = static_cast<float>(tokens_);
  for (int64_t t = 0; t < n; ++t) {
    exact_obs_[t] = SaturatingAdd(exact_obs_[t], 1);  // a resumed image may hold any count
    for (int h = 0; h < kv_; ++h) exact_imp_[t * kv_ + h] += window_attention[h * n + t] * total;
  }
}

Status TaleCache::Attend(const float* query, float* out) {
  if (query == nullptr || out == nullptr) return InvalidArgument("tale: null query or output");
  KVT_RETURN_IF_ERROR(PrepareAttend());
  klr::TaleAttentionArgs a = AttentionView();
  a.query = query;
  a.out = out;
  window_attention_.resize(static_cast<size_t>(kv_) * exact_pos_.size());
  a.window_attention = window_attention_.data();
  const size_t bytes = klr::TaleAttentionWorkspaceBytes(a);
  if (workspace_.size() * sizeof(float) < bytes) workspace_.resize(bytes / sizeof(float) + 1);
  KVT_RETURN_IF_ERROR(klr::TaleAttention(a, workspace_.data(), workspace_.size() * sizeof(float)));
  AddWindowAttention(window_attention_.data());
  return Status::Ok();
}

uint64_t TaleCache::stored_bytes() const {
  uint64_t bytes = 0;
  for (int l = 0; l < klr::kTaleLevels; ++l) {
    const uint64_t per = key_layout_.levels[l].record_bytes + value_layout_.levels[l].record_bytes;
    for (int h = 0; h < kv_; ++h) bytes += per * static_cast<uint64_t>(levels_[l].tokens[h]);
  }
  bytes += exact_k_.size() * 4 + exact_v_.size() * 4 + exact_pos_.size() * 4;
  bytes += record_levels_.size();
  if (calibrated_) bytes += (key_basis_.size() + value_basis_.size()) * 4;
  return bytes;
}

bool TaleCache::ReconstructKv(float* keys, float* values) const {
  std::vector<int64_t> next(static_cast<size_t>(klr::kTaleLevels) * kv_, 0);  // [level][head]
  std::vector<float> coeff(d_);
  for (int64_t t = 0; t < compressed_; ++t) {
    for (int h = 0; h < kv_; ++h) {
      const int64_t tag = t * kv_ + h;
      const int l = (record_levels_[tag / 4] >> (2 * (tag % 4))) & 3;
      const Level& level = levels_[l];
      const int64_t slot = static_cast<int64_t>(h) * level.capacity + next[l * kv_ + h]++;
      for (int pass = 0; pass < 2; ++pass) {
        const auto& layout = (pass == 0 ? key_layout_ : value_layout_).levels[l];
        const uint8_t* rec = (pass == 0 ? level.keys : level.values).data() + slot * layout.record_bytes;
        klr::TaleDecodeRecord(layout, d_, rec, coeff.data());
        const float* b = (pass == 0 ? key_basis_ : value_basis_).data() + static_cast<size_t>(h) * d_ * d_;
        float* x = (pass == 0 ? keys : values) + (static_cast<size_t>(t) * kv_ + h) * d_;
        for (int i = 0; i < d_; ++i) {
          float s = 0.0f;
          for (int j = 0; j < layout.rank; ++j) s += b[i * d_ + j] * coeff[j];
          x[i] = s;
        }
      }
    }
  }
  const size_t row = static_cast<size_t>(kv_) * d_;
  std::copy(exact_k_.begin(), exact_k_.end(), keys + compressed_ * row);
  std::copy(exact_v_.begin(), exact_v_.end(), values + compressed_ * row);
  return true;
}

Status TaleCache::CheckLoaded(const LevelBytes& keys, const LevelBytes& values,
                              const std::vector<uint64_t>& reservoir_next) {
  const size_t kv = static_cast<size_t>(kv_), d = static_cast<size_t>(d_);
  const size_t n = exact_pos_.size();
  if (key_basis_.size() != kv * d * d || value_basis_.size() != key_basis_.size()) {
    return Corruption("tale image: basis sizes disagree with the shape");
  }
  if (exact_k_.size() != n * kv * d || exact_v_.size() != exact_k_.size() || exact_imp_.size() != n * kv ||
      exact_obs_.size() != n) {
    return Corruption("tale image: exact window sizes disagree");
  }
  if (compressed_ < 0 || compressed_ > INT32_MAX || tokens_ != compressed_ + static_cast<int64_t>(n) ||
      tokens_ > INT32_MAX || (!calibrated_ && compressed_ != 0)) {
    return Corruption("tale image: bad token counts");
  }
  if (record_levels_.size() != static_cast<size_t>((compressed_ * kv_ + 3) / 4)) {
    return Corruption("tale image: level map size disagrees");
  }
  std::vector<int64_t> records(kv, 0);
  for (int l = 0; l < klr::kTaleLevels; ++l) {
    Level& level = levels_[l];
    if (level.tokens.size() != kv) return Corruption("tale image: level counts disagree with the shape");
    const size_t kb = key_layout_.levels[l].record_bytes, vb = value_layout_.levels[l].record_bytes;
    int64_t total = 0, longest = 0;
    for (int h = 0; h < kv_; ++h) {
      const int32_t c = level.tokens[h];
      if (c < 0 || c > compressed_) return Corruption("tale image: bad level count");
      records[h] += c;
      total += c;
      longest = std::max<int64_t>(longest, c);
    }
    if (keys[l].size() != static_cast<size_t>(total) * kb || values[l].size() != static_cast<size_t>(total) * vb) {
      return Corruption("tale image: level record sizes disagree");
    }
    level.capacity = longest;
    level.keys.assign(kv * static_cast<size_t>(longest) * kb, 0);
    level.values.assign(kv * static_cast<size_t>(longest) * vb, 0);
    size_t from = 0;
    for (int h = 0; h < kv_; ++h) {
      const size_t c = static_cast<size_t>(level.tokens[h]);
      if (c > 0) {
        std::memcpy(level.keys.data() + h * longest * kb, keys[l].data() + from * kb, c * kb);
        std::memcpy(level.values.data() + h * longest * vb, values[l].data() + from * vb, c * vb);
      }
      from += c;
    }
  }
  // Every compressed token has one record per head, and the level map agrees with the counts
  // (its padding bits zero: Evict ORs the next tokens' levels into them).
  if (const int64_t used = compressed_ * kv_; used % 4 != 0 && (record_levels_.back() >> (2 * (used % 4))) != 0) {
    return Corruption("tale image: level map padding not zero");
  }
  std::vector<int64_t> mapped(static_cast<size_t>(klr::kTaleLevels) * kv, 0);
  for (int64_t tag = 0; tag < compressed_ * kv_; ++tag) {
    ++mapped[static_cast<size_t>((record_levels_[tag / 4] >> (2 * (tag % 4))) & 3) * kv + tag % kv_];
  }
  for (int h = 0; h < kv_; ++h) {
    if (records[h] != compressed_) return Corruption("tale image: records per head disagree with the tokens");
    for (int l = 0; l < klr::kTaleLevels; ++l) {
      if (mapped[l * kv + h] != levels_[l].tokens[h]) return Corruption("tale image: level map disagrees");
    }
  }
  if (reservoir_next.size() != kv || thresholds_.size() != kv) return Corruption("tale image: reservoir sizes");
  for (int h = 0; h < kv_; ++h) {
    if (reservoir_[h].size() > kReservoir || reservoir_next[h] >= kReservoir) {
      return Corruption("tale image: reservoir out of range");
    }
    reservoir_next_[h] = static_cast<size_t>(reservoir_next[h]);
  }
  return Status::Ok();
}

TaleStats TaleCache::stats() const {
  TaleStats s;
  double rank_sum = 0.0, record_bytes = 0.0;
  for (int l = 0; l < klr::kTaleLevels; ++l) {
    int64_t c = 0;
    for (int h = 0; h < kv_; ++h) c += levels_[l].tokens[h];
    s.level_records[l] = c;
    s.compressed_tokens += c;
    rank_sum += static_cast<double>(c) * key_layout_.levels[l].rank;
    record_bytes += static_cast<double>(c) *
                    (key_layout_.levels[l].record_bytes + value_layout_.levels[l].record_bytes);
  }
  if (s.compressed_tokens > 0) {
    s.avg_rank = rank_sum / static_cast<double>(s.compressed_tokens);
    s.compressed_bits_per_element = record_bytes * 8.0 / (static_cast<double>(s.compressed_tokens) * 2 * d_);
  }
  if (tokens_ > 0) {
    s.bits_per_element = static_cast<double>(stored_bytes()) * 8.0 /
                         (static_cast<double>(tokens_) * kv_ * 2 * d_);
  }
  return s;
}

}  // namespace kvt::policies::lowrank
