// PrometheusServer — a real Prometheus (Debian's /usr/bin/prometheus) for integration tests, on
// 127.0.0.1 with a private storage directory, configured from the shipped
// monitoring/prometheus/prometheus.yml with only targets, intervals and paths rewritten.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/status.h"
#include "tests/support/temp_dir.h"

namespace kvt::testing {

// $KVT_PROMETHEUS when set (only it), else `prometheus` on PATH, else /usr/bin/prometheus;
// "" when none is executable.
std::string FindPrometheusBinary();

class PrometheusServer {
 public:
  explicit PrometheusServer(std::string binary) : binary_(std::move(binary)) {}
  ~PrometheusServer();  // Stop()

  // Writes the test configuration: `shipped_config` with every job's targets replaced by
  // `targets` (for the job named `job`), scrape and evaluation intervals set to `interval`, and
  // rule_files made absolute. Then starts Prometheus and waits (bounded) until /-/ready.
  Status Start(const std::string& shipped_config, const std::string& job,
               const std::vector<std::string>& targets, const std::string& interval);
  // SIGTERM, bounded wait, SIGKILL if it lingers. Idempotent.
  void Stop();

  int port() const { return port_; }
  std::string Log() const;
  const std::string& config_path() const { return config_path_; }

 private:
  std::string binary_;
  TempDir dir_;
  std::string config_path_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace kvt::testing
