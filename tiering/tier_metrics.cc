#include "tiering/tier_metrics.h"

namespace kvt::tiering::metrics {

prometheus::Counter& AddCounter(prometheus::Registry& registry, const std::string& name,
                                const std::string& help, const prometheus::Labels& labels) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add(labels);
}

prometheus::Gauge& AddGauge(prometheus::Registry& registry, const std::string& name,
                            const std::string& help, const prometheus::Labels& labels) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add(labels);
}

prometheus::Counter& AddCounter(prometheus::Registry& registry, FamilySpec family,
                                const prometheus::Labels& labels) {
  return AddCounter(registry, family.name, family.help, labels);
}

prometheus::Gauge& AddGauge(prometheus::Registry& registry, FamilySpec family,
                            const prometheus::Labels& labels) {
  return AddGauge(registry, family.name, family.help, labels);
}

}  // namespace kvt::tiering::metrics
