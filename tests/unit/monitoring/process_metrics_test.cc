// ProcessMetrics: /proc parsing on fixed text, and a live Collect() of this test process.
#include "monitoring/process_metrics.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <ctime>
#include <map>
#include <string>

namespace kvt::monitoring {
namespace {

// A real line from proc(5) layout with a command name holding spaces and parentheses.
constexpr char kStat[] =
    "4242 (kv tierd (x)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 7 0 123400 "
    "987654321 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 3 0 0 0 0 0\n";

TEST(ParseProcStat, ReadsFieldsAfterTheLastParenthesis) {
  auto st = ParseProcStat(kStat, 100.0, 4096);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_DOUBLE_EQ(st->cpu_seconds, 3.0);  // (250 + 50) / 100
  EXPECT_EQ(st->threads, 7u);
  EXPECT_DOUBLE_EQ(st->start_seconds, 1234.0);
  EXPECT_EQ(st->virtual_bytes, 987654321u);
  EXPECT_EQ(st->resident_bytes, 2048u * 4096u);
}

TEST(ParseProcStat, RejectsTruncatedAndGarbledText) {
  EXPECT_FALSE(ParseProcStat("", 100.0, 4096).ok());
  EXPECT_FALSE(ParseProcStat("1 (x) S 1 2 3", 100.0, 4096).ok());
  std::string bad = kStat;
  bad.replace(bad.find(" 250 "), 5, " 2x0 ");
  EXPECT_FALSE(ParseProcStat(bad, 100.0, 4096).ok());
  EXPECT_FALSE(ParseProcStat(kStat, 0.0, 4096).ok());
}

TEST(ParseBootTime, FindsTheBtimeLine) {
  auto b = ParseBootTime("cpu  1 2 3\nintr 5\nbtime 1700000000\nprocesses 9\n");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, 1700000000u);
  EXPECT_EQ(ParseBootTime("cpu 1\n").status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(ParseBootTime("btime x\n").ok());
}

std::map<std::string, double> Values(const std::vector<prometheus::MetricFamily>& families) {
  std::map<std::string, double> v;
  for (const auto& f : families) {
    EXPECT_EQ(f.metric.size(), 1u) << f.name;
    EXPECT_TRUE(f.metric[0].label.empty()) << f.name;
    v[f.name] = f.type == prometheus::MetricType::Counter ? f.metric[0].counter.value
                                                          : f.metric[0].gauge.value;
  }
  return v;
}

TEST(ProcessMetrics, CollectsThisProcess) {
  ProcessMetrics metrics;
  auto before = Values(metrics.Collect());
  for (const char* name :
       {"kvt_process_resident_memory_bytes", "kvt_process_virtual_memory_bytes",
        "kvt_process_threads", "kvt_process_cpu_seconds_total", "kvt_process_start_time_seconds",
        "kvt_process_open_fds", "kvt_process_max_fds"}) {
    EXPECT_TRUE(before.count(name)) << name << " missing";
  }
  EXPECT_GT(before["kvt_process_resident_memory_bytes"], 1 << 20);
  EXPECT_GE(before["kvt_process_threads"], 1);
  const double now = static_cast<double>(std::time(nullptr));
  EXPECT_LE(before["kvt_process_start_time_seconds"], now + 1);
  EXPECT_GT(before["kvt_process_start_time_seconds"], now - 3600);

  // Three more descriptors show up as exactly three more.
  int fds[3];
  for (int& fd : fds) fd = ::open("/dev/null", O_RDONLY);
  auto after = Values(metrics.Collect());
  for (int fd : fds) ::close(fd);
  EXPECT_EQ(after["kvt_process_open_fds"], before["kvt_process_open_fds"] + 3);
  EXPECT_GE(after["kvt_process_cpu_seconds_total"], before["kvt_process_cpu_seconds_total"]);
}

TEST(ProcessMetrics, MissingProcDirectoryYieldsNoSeriesNotGarbage) {
  ProcessMetrics metrics("/nonexistent/proc/self", "/nonexistent/proc");
  for (const auto& f : metrics.Collect()) EXPECT_EQ(f.name, "kvt_process_max_fds");
}

}  // namespace
}  // namespace kvt::monitoring
