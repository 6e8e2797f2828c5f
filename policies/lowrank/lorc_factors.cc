#include "policies/lowrank/lorc_factors.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>

#include "host/kernels/lowrank/sym_eigen.h"

namespace kvt::policies::lowrank {
namespace {

constexpr uint64_t kFnvOffsetBasis = 14695981039346656037ull;  // 0xcbf29ce484222325
// Files written before this was fixed hashed from a mistyped basis (one digit short); they are
// still read, so factors computed by an older kvt-lorc keep loading.
constexpr uint64_t kLegacyFnvOffsetBasis = 1469598103934665603ull;

uint64_t Fnv1a(const uint8_t* p, size_t n, uint64_t basis = kFnvOffsetBasis) {
  uint64_t h = basis;
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

class Writer {
 public:
  template <typename T>
  void Put(const T& v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    bytes_.insert(bytes_.end(), p, p + sizeof(T));
  }
  void PutFloats(const std::vector<float>& v) {
    const auto* p = reinterpret_cast<const uint8_t*>(v.data());
    bytes_.insert(bytes_.end(), p, p + v.size() * sizeof(float));
  }
  std::vector<uint8_t>& bytes() { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

class Reader {
 public:
  Reader(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  template <typename T>
  bool Get(T* v) {
    if (n_ - off_ < sizeof(T)) return false;
    std::memcpy(v, p_ + off_, sizeof(T));
    off_ += sizeof(T);
    return true;
  }
  bool GetFloats(std::vector<float>* v, size_t count) {
    if ((n_ - off_) / sizeof(float) < count) return false;
    v->resize(count);
    std::memcpy(v->data(), p_ + off_, count * sizeof(float));
    off_ += count * sizeof(float);
    return true;
  }
  size_t offset() const { return off_; }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t off_ = 0;
};

// Sum of clamp(round(alpha * s_l * d), 1, d).
int64_t RankSum(const std::vector<double>& s, int d, double alpha, std::vector<int>* out) {
  int64_t sum = 0;
  for (size_t l = 0; l < s.size(); ++l) {
    const int r = std::clamp(static_cast<int>(std::lround(alpha * s[l] * d)), 1, d);
    if (out != nullptr) (*out)[l] = r;
    sum += r;
  }
  return sum;
}

}  // namespace

StatusOr<LorcSchedule> ParseLorcSchedule(std::string_view word) {
  if (word == "progressive") return LorcSchedule::kProgressive;
  if (word == "uniform") return LorcSchedule::kUniform;
  return InvalidArgument("LoRC schedule must be progressive or uniform, got '" + std::string(word) + "'");
}

StatusOr<std::vector<int>> LorcRanks(const std::vector<double>& log_cond, int head_dim,
                                     double budget, LorcSchedule schedule) {
  const int layers = static_cast<int>(log_cond.size());
  if (layers < 1 || head_dim < 1) return InvalidArgument("LorcRanks: no layers");
  if (!(budget > 0.0 && budget <= 1.0)) return InvalidArgument("LorcRanks: budget must be in (0, 1]");
  const int64_t target = std::clamp<int64_t>(std::llround(budget * layers * head_dim), layers,
                                             static_cast<int64_t>(layers) * head_dim);
  std::vector<int> ranks(layers, 1);
  if (schedule == LorcSchedule::kUniform) {
    const int64_t base = target / layers, extra = target % layers;
    for (int l = 0; l < layers; ++l) ranks[l] = static_cast<int>(base + (l < extra ? 1 : 0));
    return ranks;
  }
  // Cumulative (log) condition number from each layer to the last, normalized by the largest.
  std::vector<double> s(layers, 0.0);
  double acc = 0.0;
  for (int l = layers - 1; l >= 0; --l) {
    acc += std::max(0.0, log_cond[l]);
    s[l] = acc;
  }
  if (s[0] <= 0.0) {
    std::fill(s.begin(), s.end(), 1.0);
  } else {
    const double top = s[0];
    for (double& x : s) x /= top;
  }
  // Map to [kLorcScheduleFloor, 1]: the deepest layer keeps a share proportional to the floor
  // instead of collapsing to rank 1 (LoRC bounds its per-layer ratios the same way).
  for (double& x : s) x = kLorcScheduleFloor + (1.0 - kLorcScheduleFloor) * x;
  // RankSum is non-decreasing in alpha: bisect for the largest alpha not above the target.
  double lo = 0.0, hi = 1.0;
  while (RankSum(s, head_dim, hi, nullptr) < target && hi < 1e9) hi *= 2.0;
  for (int it = 0; it < 200; ++it) {
    const double mid = 0.5 * (lo + hi);
    if (RankSum(s, head_dim, mid, nullptr) <= target) lo = mid; else hi = mid;
  }
  int64_t sum = RankSum(s, head_dim, lo, &ranks);
  // Rounding leaves a small gap: hand it out one rank at a time, shallowest layer first, keeping
  // the schedule non-increasing where possible.
  while (sum < target) {
    int pick = -1;
    for (int l = 0; l < layers && pick < 0; ++l) {
      if (ranks[l] < head_dim && (l == 0 || ranks[l] < ranks[l - 1])) pick = l;
    }
    for (int l = 0; l < layers && pick < 0; ++l) {
      if (ranks[l] < head_dim) pick = l;
    }
    if (pick < 0) break;
    ++ranks[pick];
    ++sum;
  }
  return ranks;
}

StatusOr<LorcFactors> ComputeLorcFactors(const LorcWeightsView& w, double key_budget,
                                         double value_budget, LorcSchedule schedule) {
  if (w.num_layers < 1 || w.dim < 1 || w.num_kv_heads < 1 || w.head_dim < 1 || w.head_dim > 256 ||
      w.wk == nullptr || w.wv == nullptr) {
    return InvalidArgument("ComputeLorcFactors: bad weights view");
  }
  const int L = w.num_layers, d = w.head_dim, kv = w.num_kv_heads, dim = w.dim;
  const size_t dd = static_cast<size_t>(d) * d;
  LorcFactors f;
  f.num_layers = L;
  f.dim = dim;
  f.num_kv_heads = kv;
  f.head_dim = d;
  f.schedule = schedule;
  f.key_budget = key_budget;
  f.value_budget = value_budget;
  f.layers.resize(L);
  // Full eigen-decompositions first (U: [L][2][kv][d][d]), ranks after.
  std::vector<double> u(static_cast<size_t>(L) * 2 * kv * dd), lam(d), ws(dd), gram(dd);
  std::vector<double> log_cond[2] = {std::vector<double>(L), std::vector<double>(L)};
  for (int l = 0; l < L; ++l) {
    for (int m = 0; m < 2; ++m) {
      const float* W = (m == 0 ? w.wk : w.wv) + static_cast<size_t>(l) * kv * d * dim;
      auto& sing = m == 0 ? f.layers[l].key_singular : f.layers[l].value_singular;
      sing.resize(static_cast<size_t>(kv) * d);
      double log_sum = 0.0;
      for (int h = 0; h < kv; ++h) {
        const float* Wh = W + static_cast<size_t>(h) * d * dim;
        for (int i = 0; i < d; ++i) {
          for (int j = i; j < d; ++j) {
            double s = 0.0;
            for (int c = 0; c < dim; ++c) s += static_cast<double>(Wh[i * dim + c]) * Wh[j * dim + c];
            gram[i * d + j] = s;
          }
        }
        double* U = u.data() + ((static_cast<size_t>(l) * 2 + m) * kv + h) * dd;
        KVT_RETURN_IF_ERROR(kernels::lowrank::SymmetricEigen(gram.data(), d, lam.data(), U, ws.data()));
        for (int i = 0; i < d; ++i) sing[h * d + i] = static_cast<float>(std::sqrt(std::max(0.0, lam[i])));
        const double smax = std::sqrt(std::max(0.0, lam[0]));
        const double smin = std::max(std::sqrt(std::max(0.0, lam[d - 1])), smax * 1e-12 + 1e-30);
        log_sum += std::log(std::max(1.0, smax / smin));
      }
      log_cond[m][l] = log_sum / kv;
    }
  }
  KVT_ASSIGN_OR_RETURN(auto kr, LorcRanks(log_cond[0], d, key_budget, schedule));
  KVT_ASSIGN_OR_RETURN(auto vr, LorcRanks(log_cond[1], d, value_budget, schedule));
  for (int l = 0; l < L; ++l) {
    LorcLayerFactors& lf = f.layers[l];
    lf.key_rank = kr[l];
    lf.value_rank = vr[l];
    for (int m = 0; m < 2; ++m) {
      const int r = m == 0 ? lf.key_rank : lf.value_rank;
      auto& up = m == 0 ? lf.key_up : lf.value_up;
      auto& down = m == 0 ? lf.key_down : lf.value_down;
      up.assign(static_cast<size_t>(kv) * d * r, 0.0f);
      down.assign(static_cast<size_t>(kv) * r * dim, 0.0f);
      const float* W = (m == 0 ? w.wk : w.wv) + static_cast<size_t>(l) * kv * d * dim;
      for (int h = 0; h < kv; ++h) {
        const double* U = u.data() + ((static_cast<size_t>(l) * 2 + m) * kv + h) * dd;
        const float* Wh = W + static_cast<size_t>(h) * d * dim;
        for (int i = 0; i < d; ++i) {
          for (int j = 0; j < r; ++j) up[(static_cast<size_t>(h) * d + i) * r + j] = static_cast<float>(U[i * d + j]);
        }
        for (int j = 0; j < r; ++j) {
          for (int c = 0; c < dim; ++c) {
            double s = 0.0;
            for (int i = 0; i < d; ++i) s += U[i * d + j] * Wh[i * dim + c];
            down[(static_cast<size_t>(h) * r + j) * dim + c] = static_cast<float>(s);
          }
        }
      }
    }
  }
  return f;
}

Status SaveLorcFactors(const LorcFactors& f, const std::string& path) {
  Writer w;
  w.bytes().insert(w.bytes().end(), {'K', 'V', 'T', 'L', 'O', 'R', 'C', '1'});
  w.Put<uint32_t>(1);
  w.Put<uint32_t>(f.num_layers);
  w.Put<uint32_t>(f.dim);
  w.Put<uint32_t>(f.num_kv_heads);
  w.Put<uint32_t>(f.head_dim);
  w.Put<uint32_t>(static_cast<uint32_t>(f.schedule));
  w.Put<double>(f.key_budget);
  w.Put<double>(f.value_budget);
  for (const auto& l : f.layers) w.Put<uint32_t>(l.key_rank);
  for (const auto& l : f.layers) w.Put<uint32_t>(l.value_rank);
  for (const auto& l : f.layers) {
    w.PutFloats(l.key_singular);
    w.PutFloats(l.value_singular);
    w.PutFloats(l.key_up);
    w.PutFloats(l.key_down);
    w.PutFloats(l.value_up);
    w.PutFloats(l.value_down);
  }
  w.Put<uint64_t>(Fnv1a(w.bytes().data(), w.bytes().size()));
  const std::string tmp = path + ".tmp";
  std::FILE* fp = std::fopen(tmp.c_str(), "wb");
  if (fp == nullptr) return ErrnoStatus("fopen " + tmp, errno);
  const size_t n = std::fwrite(w.bytes().data(), 1, w.bytes().size(), fp);
  const int err = errno;
  if (std::fclose(fp) != 0 || n != w.bytes().size()) return ErrnoStatus("write " + tmp, err ? err : EIO);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return ErrnoStatus("rename " + tmp, errno);
  return Status::Ok();
}

StatusOr<LorcFactors> ParseLorcFactors(const uint8_t* data, size_t size) {
  if (data == nullptr || size < 8 + 8 || std::memcmp(data, "KVTLORC1", 8) != 0) {
    return Corruption("LoRC factors: bad magic");
  }
  uint64_t stored;
  std::memcpy(&stored, data + size - 8, 8);
  if (Fnv1a(data, size - 8) != stored && Fnv1a(data, size - 8, kLegacyFnvOffsetBasis) != stored) {
    return Corruption("LoRC factors: checksum mismatch");
  }
  Reader r(data + 8, size - 16);
  uint32_t version, L, dim, kv, d, sched;
  LorcFactors f;
  if (!r.Get(&version) || !r.Get(&L) || !r.Get(&dim) || !r.Get(&kv) || !r.Get(&d) || !r.Get(&sched) ||
      !r.Get(&f.key_budget) || !r.Get(&f.value_budget)) {
    return Corruption("LoRC factors: truncated header");
  }
  if (version != 1) return Corruption("LoRC factors: unsupported version " + std::to_string(version));
  if (L < 1 || L > 1024 || dim < 1 || dim > (1u << 16) || kv < 1 || kv > 1024 || d < 1 || d > 256 || sched > 1) {
    return Corruption("LoRC factors: header out of range");
  }
  f.num_layers = static_cast<int>(L);
  f.dim = static_cast<int>(dim);
  f.num_kv_heads = static_cast<int>(kv);
  f.head_dim = static_cast<int>(d);
  f.schedule = static_cast<LorcSchedule>(sched);
  f.layers.resize(L);
  for (auto& l : f.layers) {
    uint32_t x;
    if (!r.Get(&x) || x < 1 || x > d) return Corruption("LoRC factors: bad key rank");
    l.key_rank = static_cast<int>(x);
  }
  for (auto& l : f.layers) {
    uint32_t x;
    if (!r.Get(&x) || x < 1 || x > d) return Corruption("LoRC factors: bad value rank");
    l.value_rank = static_cast<int>(x);
  }
  for (auto& l : f.layers) {
    const size_t kvd = static_cast<size_t>(kv) * d;
    if (!r.GetFloats(&l.key_singular, kvd) || !r.GetFloats(&l.value_singular, kvd) ||
        !r.GetFloats(&l.key_up, kvd * l.key_rank) ||
        !r.GetFloats(&l.key_down, static_cast<size_t>(kv) * l.key_rank * dim) ||
        !r.GetFloats(&l.value_up, kvd * l.value_rank) ||
        !r.GetFloats(&l.value_down, static_cast<size_t>(kv) * l.value_rank * dim)) {
      return Corruption("LoRC factors: truncated layer data");
    }
  }
  if (r.offset() != size - 16) return Corruption("LoRC factors: trailing bytes");
  return f;
}

StatusOr<LorcFactors> LoadLorcFactors(const std::string& path) {
  std::FILE* fp = std::fopen(path.c_str(), "rb");
  if (fp == nullptr) return ErrnoStatus("fopen " + path, errno);
  std::vector<uint8_t> bytes;
  uint8_t buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), fp)) > 0) bytes.insert(bytes.end(), buf, buf + n);
  const bool err = std::ferror(fp) != 0;
  std::fclose(fp);
  if (err) return IoError("reading " + path);
  auto f = ParseLorcFactors(bytes.data(), bytes.size());
  if (!f.ok()) return f.status().WithContext(path);
  return f;
}

}  // namespace kvt::policies::lowrank
