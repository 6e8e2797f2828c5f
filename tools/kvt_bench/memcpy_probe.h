// The physical limit a CPU kernel record is compared with: a memcpy that moves the same number of
// bytes as the kernel (read + written: a copy of bytes / 2), on the same number of threads, timed
// alternately with the kernel so that load from other processes hits both alike.
//
// Not thread-safe: one probe per benchmark thread. Buffers grow to the largest copy asked for and
// are touched before timing (no page faults inside a sample).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace kvt::bench {

class MemcpyProbe {
 public:
  // `threads`: how many oneTBB workers split each copy (contiguous equal slices), as many as the
  // kernels run on.
  explicit MemcpyProbe(int threads) : threads_(threads) {}

  // Makes room for a copy of `bytes` (outside any timing).
  void Reserve(size_t bytes);
  // One copy of `bytes` (Reserve()d before) from one buffer into the other; milliseconds.
  double CopyMs(size_t bytes);

 private:
  int threads_;
  std::vector<char> src_, dst_;
};

struct PairedTiming {
  double ms;            // median time of one kernel call
  double memcpy_gbps;   // median bandwidth of the paired copies, read + written bytes / s / 1e9
  double memcpy_bytes;  // bytes each copy read plus wrote (= the kernel's bytes, rounded to 64)
};

// Times fn (which reads plus writes `bytes`) and a copy of bytes / 2 alternately, after one
// warm-up of each: at least 3 pairs and about 0.6 s. Each sample repeats its call for at least
// 50 ms (reported per call): a 2 ms sample on a machine shared with compilers is mostly scheduler
// noise. Medians of each.
PairedTiming TimeWithMemcpy(const std::function<void()>& fn, double bytes, MemcpyProbe& probe);

}  // namespace kvt::bench
