// ProcessMetrics — kvt_process_* for the daemon's own process, read from /proc at scrape time.
//
// prometheus-cpp has no process collector, so this Collectable supplies the usual figures under
// the kvt_ prefix (one process, no labels):
//   kvt_process_resident_memory_bytes  gauge    RSS (includes the touched part of the host arena)
//   kvt_process_virtual_memory_bytes   gauge    virtual size
//   kvt_process_open_fds               gauge    entries in /proc/<pid>/fd
//   kvt_process_max_fds                gauge    RLIMIT_NOFILE soft limit
//   kvt_process_threads                gauge    threads
//   kvt_process_cpu_seconds_total      counter  user + system CPU time
//   kvt_process_start_time_seconds     gauge    start time, seconds since the Unix epoch
//
// Collect() runs on the exposer's thread at every scrape; it only reads files and never throws.
// A figure that cannot be read is left out of that scrape (an absent series, not a wrong value).
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status_or.h"

namespace kvt::monitoring {

// The fields of /proc/<pid>/stat that the metrics need, already in base units.
struct ProcStat {
  double cpu_seconds = 0;    // utime + stime
  double start_seconds = 0;  // since boot
  uint64_t virtual_bytes = 0;
  uint64_t resident_bytes = 0;
  uint64_t threads = 0;
};

// Parses the text of /proc/<pid>/stat. The command name (field 2) may hold spaces and
// parentheses, so fields are counted from the last ')'. ticks_per_second and page_bytes come from
// sysconf in production and are parameters for tests.
StatusOr<ProcStat> ParseProcStat(std::string_view text, double ticks_per_second,
                                 uint64_t page_bytes);

// The "btime" line of /proc/stat: boot time in seconds since the epoch.
StatusOr<uint64_t> ParseBootTime(std::string_view proc_stat_text);

class ProcessMetrics : public prometheus::Collectable {
 public:
  // proc_dir: the process directory to read ("/proc/self"); proc_root: where /proc/stat lives.
  explicit ProcessMetrics(std::string proc_dir = "/proc/self", std::string proc_root = "/proc");

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  std::string proc_dir_;
  std::string proc_root_;
};

}  // namespace kvt::monitoring
