// Small helpers shared by kvt-bench subcommands: timing, percentiles, a memcpy baseline, a
// daemon started for the run, and machine identification for the report.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace kvt::bench {

inline double Seconds(std::chrono::steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Value at quantile q (0..1) of unsorted samples (sorts a copy).
double Percentile(std::vector<double> samples, double q);

// Single-thread memcpy bandwidth in GB/s (1e9 bytes/s) with `block` bytes per copy over a
// `working_set` that defeats the caches, measured for about `seconds`.
double MeasureMemcpyGbps(uint64_t block, uint64_t working_set, double seconds);

// "model name" from /proc/cpuinfo, cores and memory: names the machine in every report.
std::string MachineDescription();

// A kv-tierd started from the directory of this executable, on a private socket; stopped (SIGTERM)
// by the destructor.
class BenchDaemon {
 public:
  BenchDaemon(const std::string& host_capacity, const std::vector<std::string>& extra_args = {});
  ~BenchDaemon();
  bool ok() const { return pid_ > 0; }
  const std::string& socket() const { return socket_; }

 private:
  std::string dir_;
  std::string socket_;
  pid_t pid_ = -1;
};

}  // namespace kvt::bench
