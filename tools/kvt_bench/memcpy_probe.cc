#include "tools/kvt_bench/memcpy_probe.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

#include <algorithm>
#include <chrono>
#include <cstring>

namespace kvt::bench {
namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// A sample repeats its call at least this long (see TimeWithMemcpy).
constexpr double kMinSampleMs = 50;

int RepsFor(double once_ms) {
  return static_cast<int>(std::clamp(kMinSampleMs / std::max(once_ms, 1e-3), 1.0, 1000.0));
}

}  // namespace

void MemcpyProbe::Reserve(size_t bytes) {
  if (src_.size() >= bytes) return;
  src_.assign(bytes, 1);  // written: the pages exist before any timing
  dst_.assign(bytes, 2);
}

double MemcpyProbe::CopyMs(size_t bytes) {
  const int slices = std::max(1, threads_);
  // Equal slices on 64-byte boundaries, one per thread, as a kernel's chunks would be spread.
  const size_t slice = (bytes / slices + 63) / 64 * 64;
  const auto t0 = Clock::now();
  tbb::parallel_for(
      tbb::blocked_range<int>(0, slices, 1),
      [&](const tbb::blocked_range<int>& r) {
        for (int s = r.begin(); s < r.end(); ++s) {
          const size_t first = std::min(bytes, s * slice);
          const size_t n = std::min(bytes - first, slice);
          if (n > 0) std::memcpy(dst_.data() + first, src_.data() + first, n);
        }
      },
      tbb::static_partitioner());
  return MsSince(t0);
}

PairedTiming TimeWithMemcpy(const std::function<void()>& fn, double bytes, MemcpyProbe& probe) {
  // A copy of n bytes reads n and writes n: the same read + written count as the kernel.
  const size_t copy = std::max<size_t>(64, static_cast<size_t>(bytes / 2) / 64 * 64);
  probe.Reserve(copy);
  auto t0 = Clock::now();
  fn();
  const int reps = RepsFor(MsSince(t0));
  t0 = Clock::now();
  probe.CopyMs(copy);
  const int copy_reps = RepsFor(MsSince(t0));
  std::vector<double> ms, copy_ms;
  const auto start = Clock::now();
  while (ms.size() < 3 ||
         (ms.size() < 50 && Clock::now() - start < std::chrono::milliseconds(600))) {
    t0 = Clock::now();
    for (int i = 0; i < reps; ++i) fn();
    ms.push_back(MsSince(t0) / reps);
    t0 = Clock::now();
    for (int i = 0; i < copy_reps; ++i) probe.CopyMs(copy);
    copy_ms.push_back(MsSince(t0) / copy_reps);
  }
  return {Median(ms), 2.0 * copy / (Median(copy_ms) * 1e6), 2.0 * copy};
}

}  // namespace kvt::bench
