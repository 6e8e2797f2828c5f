// Every PromQL expression an operator sees, taken from the shipped files — the Grafana dashboard
// panels (and its template variables) and the Prometheus alert rules — made ready to send to
// Prometheus's /api/v1/query, and classified against monitoring/pending_metrics.yml.
#pragma once

#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "common/status_or.h"

namespace kvt::testing {

struct MonitoringExpression {
  std::string source;  // "dashboard", "variable" or "alert"
  std::string name;    // panel title + refId, variable name, or alert name
  std::string expr;    // as written in the file
  std::string query;   // what the test sends: Grafana variables substituted
  // For alerts: the same rule with every comparison made a `bool` comparison, so it returns
  // data whenever its inputs exist, whether or not the alert condition holds right now.
  std::string bool_query;
  // Labels the result must carry: {{label}} in a panel's legend, $labels.<label> in an alert's
  // annotations. A `sum by` that drops one of them would show blank legends or summaries.
  std::vector<std::string> labels_used;
  std::vector<std::string> metrics;  // kvt_* names it reads
  std::vector<std::string> pending;  // those of them listed in pending_metrics.yml
  std::string test_name;             // [A-Za-z0-9_] only, unique
};

// gtest prints parameters with this (instead of a byte dump).
inline void PrintTo(const MonitoringExpression& e, std::ostream* os) {
  *os << e.source << " '" << e.name << "'";
}

struct PendingMetric {
  std::string name, type, owner, meaning;
};

// monitoring_dir: the repository's monitoring/ folder.
StatusOr<std::vector<PendingMetric>> LoadPendingMetrics(const std::string& monitoring_dir);
StatusOr<std::vector<MonitoringExpression>> LoadMonitoringExpressions(
    const std::string& monitoring_dir);

// Grafana macros and the dashboard's variables replaced by what a test can send ($instance: all).
std::string SubstituteGrafanaVariables(const std::string& expr, const std::string& rate_interval);
// Inserts `bool` after each comparison operator outside label matchers, ranges and strings.
std::string MakeComparisonsBool(const std::string& expr);
// kvt_* identifiers in an expression (outside strings), in order of appearance, without repeats.
std::vector<std::string> MetricNames(const std::string& expr);

}  // namespace kvt::testing
