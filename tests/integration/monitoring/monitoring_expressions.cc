#include "tests/integration/monitoring/monitoring_expressions.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <set>

namespace kvt::testing {
namespace {

void ReplaceAll(std::string* s, const std::string& from, const std::string& to) {
  for (size_t p = s->find(from); p != std::string::npos; p = s->find(from, p + to.size())) {
    s->replace(p, from.size(), to);
  }
}

std::string TestName(const std::string& source, const std::string& name,
                     std::set<std::string>* used) {
  std::string out = source + "_";
  for (char c : name) out.push_back(std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
  std::string unique = out;
  for (int i = 2; !used->insert(unique).second; ++i) unique = out + "_" + std::to_string(i);
  return unique;
}

// JSON is YAML; yaml-cpp reads the dashboard without another library.
StatusOr<YAML::Node> LoadYaml(const std::string& path) {
  try {
    return YAML::LoadFile(path);
  } catch (const std::exception& e) {
    return InvalidArgument("cannot parse " + path + ": " + e.what());
  }
}

struct Found {
  std::string name, expr, label_text;
};

// Label names in "{{tier}} {{ $labels.instance }}" style text: {{x}} and $labels.x.
std::vector<std::string> LabelsIn(const std::string& text) {
  std::vector<std::string> out;
  auto add = [&](size_t from) {
    size_t j = from;
    while (j < text.size() && (std::isalnum(static_cast<unsigned char>(text[j])) || text[j] == '_'))
      ++j;
    std::string l = text.substr(from, j - from);
    if (!l.empty() && std::find(out.begin(), out.end(), l) == out.end()) out.push_back(l);
  };
  for (size_t p = text.find("{{"); p != std::string::npos; p = text.find("{{", p + 2)) {
    size_t q = p + 2;
    while (q < text.size() && text[q] == ' ') ++q;
    if (q < text.size() && text[q] != '$' && text[q] != '.') add(q);
  }
  for (size_t p = text.find("$labels."); p != std::string::npos; p = text.find("$labels.", p + 8))
    add(p + 8);
  return out;
}

void CollectPanels(const YAML::Node& panels, std::vector<Found>* out) {
  if (!panels || !panels.IsSequence()) return;
  for (const auto& p : panels) {
    const std::string title = p["title"] ? p["title"].as<std::string>() : "untitled";
    if (p["targets"]) {
      for (const auto& t : p["targets"]) {
        if (!t["expr"]) continue;
        const std::string ref = t["refId"] ? t["refId"].as<std::string>() : "";
        out->push_back({title + " " + ref, t["expr"].as<std::string>(),
                        t["legendFormat"].as<std::string>("")});
      }
    }
    CollectPanels(p["panels"], out);  // collapsed rows nest their panels
  }
}

}  // namespace

std::string SubstituteGrafanaVariables(const std::string& expr, const std::string& rate_interval) {
  std::string s = expr;
  ReplaceAll(&s, "${__rate_interval}", rate_interval);
  ReplaceAll(&s, "$__rate_interval", rate_interval);
  ReplaceAll(&s, "$__interval", "1s");
  ReplaceAll(&s, "$__range", "5m");
  ReplaceAll(&s, "${instance}", ".+");
  ReplaceAll(&s, "$instance", ".+");  // the variable's allValue
  return s;
}

std::string MakeComparisonsBool(const std::string& expr) {
  std::string out;
  int braces = 0, brackets = 0;
  char quote = 0;
  for (size_t i = 0; i < expr.size(); ++i) {
    const char c = expr[i];
    out.push_back(c);
    if (quote) {
      if (c == '\\' && i + 1 < expr.size())
        out.push_back(expr[++i]);
      else if (c == quote)
        quote = 0;
      continue;
    }
    if (c == '"' || c == '\'' || c == '`') {
      quote = c;
      continue;
    }
    if (c == '{') ++braces;
    if (c == '}') --braces;
    if (c == '[') ++brackets;
    if (c == ']') --brackets;
    if (braces > 0 || brackets > 0) continue;
    size_t len = 0;
    const char next = i + 1 < expr.size() ? expr[i + 1] : '\0';
    if ((c == '=' || c == '!' || c == '<' || c == '>') && next == '=')
      len = 2;
    else if (c == '<' || c == '>')
      len = 1;
    if (len == 0) continue;
    if (len == 2) out.push_back(expr[++i]);
    size_t j = i + 1;
    while (j < expr.size() && std::isspace(static_cast<unsigned char>(expr[j]))) ++j;
    if (expr.compare(j, 4, "bool") != 0) out += " bool";
  }
  return out;
}

std::vector<std::string> MetricNames(const std::string& expr) {
  std::vector<std::string> names;
  char quote = 0;
  for (size_t i = 0; i < expr.size(); ++i) {
    const char c = expr[i];
    if (quote) {
      if (c == '\\')
        ++i;
      else if (c == quote)
        quote = 0;
      continue;
    }
    if (c == '"' || c == '\'' || c == '`') {
      quote = c;
      continue;
    }
    const bool at_word_start =
        i == 0 || !(std::isalnum(static_cast<unsigned char>(expr[i - 1])) || expr[i - 1] == '_');
    if (at_word_start && expr.compare(i, 4, "kvt_") == 0) {
      size_t j = i;
      while (j < expr.size() &&
             (std::isalnum(static_cast<unsigned char>(expr[j])) || expr[j] == '_'))
        ++j;
      std::string name = expr.substr(i, j - i);
      if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
      i = j - 1;
    }
  }
  return names;
}

StatusOr<std::vector<PendingMetric>> LoadPendingMetrics(const std::string& monitoring_dir) {
  KVT_ASSIGN_OR_RETURN(auto doc, LoadYaml(monitoring_dir + "/pending_metrics.yml"));
  std::vector<PendingMetric> out;
  if (!doc["pending"]) return out;
  for (const auto& p : doc["pending"]) {
    out.push_back({p["metric"].as<std::string>(), p["type"].as<std::string>(""),
                   p["owner"].as<std::string>(""), p["meaning"].as<std::string>("")});
  }
  return out;
}

StatusOr<std::vector<MonitoringExpression>> LoadMonitoringExpressions(
    const std::string& monitoring_dir) {
  KVT_ASSIGN_OR_RETURN(auto pending, LoadPendingMetrics(monitoring_dir));
  std::vector<MonitoringExpression> out;
  std::set<std::string> used_names;
  auto add = [&](const std::string& source, const std::string& name, const std::string& expr,
                 const std::string& label_text) {
    MonitoringExpression e;
    e.labels_used = LabelsIn(label_text);
    e.source = source;
    e.name = name;
    e.expr = expr;
    e.query = SubstituteGrafanaVariables(expr, "30s");
    e.bool_query = MakeComparisonsBool(e.query);
    e.metrics = MetricNames(expr);
    for (const auto& m : e.metrics) {
      for (const auto& p : pending) {
        if (m == p.name || m == p.name + "_bucket" || m == p.name + "_sum" ||
            m == p.name + "_count") {
          e.pending.push_back(p.name);
        }
      }
    }
    e.test_name = TestName(source, name, &used_names);
    out.push_back(std::move(e));
  };

  const std::string dashboard = monitoring_dir + "/grafana/dashboards/kv-tierd.json";
  KVT_ASSIGN_OR_RETURN(auto dash, LoadYaml(dashboard));
  std::vector<Found> panels;
  try {
    CollectPanels(dash["panels"], &panels);
    for (const auto& p : panels) add("dashboard", p.name, p.expr, p.label_text);
    // Template variables: label_values(<selector>, <label>) is Grafana's; the PromQL behind it
    // is the selector, grouped by the label.
    for (const auto& v : dash["templating"]["list"]) {
      if (v["type"].as<std::string>("") != "query") continue;
      std::string label_text;
      std::string q =
          v["query"].IsMap() ? v["query"]["query"].as<std::string>() : v["query"].as<std::string>();
      if (q.rfind("label_values(", 0) == 0 && q.back() == ')') {
        std::string inner = q.substr(13, q.size() - 14);
        auto comma = inner.rfind(',');
        if (comma == std::string::npos)
          return InvalidArgument("variable query without a selector: " + q);
        std::string label = inner.substr(comma + 1);
        label.erase(0, label.find_first_not_of(' '));
        q = "count by (" + label + ") (" + inner.substr(0, comma) + ")";
        label_text = "{{" + label + "}}";
      }
      add("variable", v["name"].as<std::string>(), q, label_text);
    }
  } catch (const std::exception& e) {
    return InvalidArgument(dashboard + ": unexpected structure: " + e.what());
  }

  const std::string rules = monitoring_dir + "/prometheus/kv-tierd-alerts.yml";
  KVT_ASSIGN_OR_RETURN(auto doc, LoadYaml(rules));
  try {
    for (const auto& g : doc["groups"]) {
      for (const auto& r : g["rules"]) {
        const std::string name =
            r["alert"] ? r["alert"].as<std::string>() : r["record"].as<std::string>();
        std::string annotations;
        for (const auto& a : r["annotations"]) annotations += a.second.as<std::string>() + "\n";
        add("alert", name, r["expr"].as<std::string>(), annotations);
      }
    }
  } catch (const std::exception& e) {
    return InvalidArgument(rules + ": unexpected structure: " + e.what());
  }
  return out;
}

}  // namespace kvt::testing
