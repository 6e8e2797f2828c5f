// MethodParams — the key=value parameters of a method spec ("kivi4:group=32,residual=128").
//
// Factories read the keys they know with typed getters, which return the default when the key is
// absent and INVALID_ARGUMENT when its value does not parse or is out of range; Finish() then
// reports any key nobody read, so a typo never silently falls back to a default.
// Not thread-safe; lives only while a factory runs.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "common/status_or.h"

namespace kvt::policies {

class MethodParams {
 public:
  // Parses "k=v,k=v" (empty is fine). Later keys override earlier ones, so defaults can be parsed
  // first and a spec's own parameters merged on top with Merge().
  static StatusOr<MethodParams> Parse(std::string_view text);
  Status Merge(std::string_view text);

  // Integer in [lo, hi].
  StatusOr<int> Int(std::string_view key, int default_value, int lo, int hi);
  // Finite float in [lo, hi].
  StatusOr<float> Float(std::string_view key, float default_value, float lo, float hi);
  // A word (any value text).
  StatusOr<std::string> Word(std::string_view key, std::string_view default_value);

  bool Has(std::string_view key) const { return values_.count(std::string(key)) != 0; }
  // INVALID_ARGUMENT naming every key that no getter asked for.
  Status Finish() const;

 private:
  std::map<std::string, std::string> values_;
  std::map<std::string, bool> used_;
};

}  // namespace kvt::policies
