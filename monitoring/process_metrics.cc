#include "monitoring/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <prometheus/client_metric.h>
#include <prometheus/metric_type.h>

#include <charconv>
#include <fstream>
#include <optional>
#include <sstream>

namespace kvt::monitoring {
namespace {

std::optional<std::string> ReadSmallFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool ParseU64(std::string_view s, uint64_t* out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

bool ParseI64(std::string_view s, int64_t* out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

prometheus::MetricFamily OneSample(const char* name, const char* help, prometheus::MetricType type,
                                   double value) {
  prometheus::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  prometheus::ClientMetric m;
  if (type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  f.metric.push_back(std::move(m));
  return f;
}

}  // namespace

StatusOr<ProcStat> ParseProcStat(std::string_view text, double ticks_per_second,
                                 uint64_t page_bytes) {
  auto close = text.rfind(')');
  if (close == std::string_view::npos || ticks_per_second <= 0) {
    return InvalidArgument("proc stat: no ')' after the command name");
  }
  // Fields after the command name, numbered as in proc(5): 3 = state, 14 = utime, 15 = stime,
  // 20 = num_threads, 22 = starttime, 23 = vsize, 24 = rss (pages).
  std::vector<std::string_view> fields;
  std::string_view rest = text.substr(close + 1);
  size_t i = 0;
  while (i < rest.size()) {
    while (i < rest.size() && (rest[i] == ' ' || rest[i] == '\n')) ++i;
    size_t j = i;
    while (j < rest.size() && rest[j] != ' ' && rest[j] != '\n') ++j;
    if (j > i) fields.push_back(rest.substr(i, j - i));
    i = j;
  }
  auto field = [&](int n) { return fields[static_cast<size_t>(n - 3)]; };
  if (fields.size() < 24 - 2) {
    return InvalidArgument("proc stat: " + std::to_string(fields.size() + 2) +
                           " fields, want at least 24");
  }
  uint64_t utime, stime, threads, start, vsize;
  int64_t rss;  // signed in proc(5)
  if (!ParseU64(field(14), &utime) || !ParseU64(field(15), &stime) ||
      !ParseU64(field(20), &threads) || !ParseU64(field(22), &start) ||
      !ParseU64(field(23), &vsize) || !ParseI64(field(24), &rss)) {
    return InvalidArgument("proc stat: a numeric field does not parse");
  }
  ProcStat s;
  s.cpu_seconds = static_cast<double>(utime + stime) / ticks_per_second;
  s.start_seconds = static_cast<double>(start) / ticks_per_second;
  s.virtual_bytes = vsize;
  s.resident_bytes = rss > 0 ? static_cast<uint64_t>(rss) * page_bytes : 0;
  s.threads = threads;
  return s;
}

StatusOr<uint64_t> ParseBootTime(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    if (line.substr(0, 6) == "btime ") {
      uint64_t v;
      if (ParseU64(line.substr(6), &v)) return v;
      return InvalidArgument("proc stat: btime does not parse");
    }
    pos = end + 1;
  }
  return NotFound("proc stat: no btime line");
}

ProcessMetrics::ProcessMetrics(std::string proc_dir, std::string proc_root)
    : proc_dir_(std::move(proc_dir)), proc_root_(std::move(proc_root)) {}

std::vector<prometheus::MetricFamily> ProcessMetrics::Collect() const {
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> out;

  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const auto page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  if (auto text = ReadSmallFile(proc_dir_ + "/stat")) {
    if (auto st = ParseProcStat(*text, ticks, page); st.ok()) {
      out.push_back(OneSample("kvt_process_resident_memory_bytes", "Resident set size of kv-tierd",
                              MetricType::Gauge, static_cast<double>(st->resident_bytes)));
      out.push_back(OneSample("kvt_process_virtual_memory_bytes", "Virtual memory size of kv-tierd",
                              MetricType::Gauge, static_cast<double>(st->virtual_bytes)));
      out.push_back(OneSample("kvt_process_threads", "Threads of kv-tierd", MetricType::Gauge,
                              static_cast<double>(st->threads)));
      out.push_back(OneSample("kvt_process_cpu_seconds_total",
                              "User and system CPU time of kv-tierd", MetricType::Counter,
                              st->cpu_seconds));
      if (auto boot = ReadSmallFile(proc_root_ + "/stat")) {
        if (auto btime = ParseBootTime(*boot); btime.ok()) {
          out.push_back(OneSample("kvt_process_start_time_seconds",
                                  "Start time of kv-tierd, seconds since the Unix epoch",
                                  MetricType::Gauge,
                                  static_cast<double>(*btime) + st->start_seconds));
        }
      }
    }
  }

  if (DIR* d = ::opendir((proc_dir_ + "/fd").c_str())) {
    // Reading our own fd directory shows the descriptor used to read it; leave that one out.
    const std::string own = proc_dir_ == "/proc/self" ? std::to_string(::dirfd(d)) : std::string();
    uint64_t fds = 0;
    while (const dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.' || own == e->d_name) continue;
      ++fds;
    }
    ::closedir(d);
    out.push_back(OneSample("kvt_process_open_fds", "Open file descriptors of kv-tierd",
                            MetricType::Gauge, static_cast<double>(fds)));
  }

  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY) {
    out.push_back(OneSample("kvt_process_max_fds",
                            "Soft limit on open file descriptors of kv-tierd", MetricType::Gauge,
                            static_cast<double>(lim.rlim_cur)));
  }
  return out;
}

}  // namespace kvt::monitoring
