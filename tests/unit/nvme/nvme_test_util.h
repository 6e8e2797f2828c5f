// Helpers for the NVMe unit tests: metric lookup, directories that do or do not take O_DIRECT.
#pragma once

#include <prometheus/registry.h>

#include <filesystem>
#include <map>
#include <string>

namespace kvt::nvme::testing {

// The value of the series `name` whose labels include all of `labels` (0 if absent); for a
// histogram, its sample count.
inline double Metric(prometheus::Registry& registry, const std::string& name,
                     const std::map<std::string, std::string>& labels = {}) {
  for (const auto& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const auto& m : family.metric) {
      bool match = true;
      for (const auto& [k, v] : labels) {
        bool found = false;
        for (const auto& l : m.label) found |= l.name == k && l.value == v;
        match &= found;
      }
      if (!match) continue;
      if (family.type == prometheus::MetricType::Histogram) return static_cast<double>(m.histogram.sample_count);
      return family.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
    }
  }
  return 0;
}

// Bytes allocated on disk under dir.
inline uint64_t DiskBytes(const std::string& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.is_regular_file()) total += e.file_size();
  }
  return total;
}

}  // namespace kvt::nvme::testing
