#include "policies/method_params.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <string>

namespace kvt::policies {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

StatusOr<MethodParams> MethodParams::Parse(std::string_view text) {
  MethodParams p;
  KVT_RETURN_IF_ERROR(p.Merge(text));
  return p;
}

Status MethodParams::Merge(std::string_view text) {
  text = Trim(text);
  while (!text.empty()) {
    const size_t comma = text.find(',');
    const std::string_view item = Trim(text.substr(0, comma));
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0 || eq + 1 == item.size()) {
      return InvalidArgument("method parameter '" + std::string(item) + "' is not key=value");
    }
    const std::string key(Trim(item.substr(0, eq)));
    values_[key] = std::string(Trim(item.substr(eq + 1)));
    used_[key] = false;
  }
  return Status::Ok();
}

StatusOr<int> MethodParams::Int(std::string_view key, int default_value, int lo, int hi) {
  auto it = values_.find(std::string(key));
  if (it == values_.end()) return default_value;
  used_[it->first] = true;
  int v = 0;
  const std::string& s = it->second;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) {
    return InvalidArgument("parameter " + it->first + "=" + s + " is not an integer");
  }
  if (v < lo || v > hi) {
    return InvalidArgument("parameter " + it->first + "=" + s + " outside [" + std::to_string(lo) +
                           ", " + std::to_string(hi) + "]");
  }
  return v;
}

StatusOr<float> MethodParams::Float(std::string_view key, float default_value, float lo, float hi) {
  auto it = values_.find(std::string(key));
  if (it == values_.end()) return default_value;
  used_[it->first] = true;
  const std::string& s = it->second;
  char* end = nullptr;
  const float v = std::strtof(s.c_str(), &end);
  if (end != s.c_str() + s.size() || !std::isfinite(v)) {
    return InvalidArgument("parameter " + it->first + "=" + s + " is not a finite number");
  }
  if (v < lo || v > hi) {
    return InvalidArgument("parameter " + it->first + "=" + s + " outside [" + std::to_string(lo) +
                           ", " + std::to_string(hi) + "]");
  }
  return v;
}

StatusOr<std::string> MethodParams::Word(std::string_view key, std::string_view default_value) {
  auto it = values_.find(std::string(key));
  if (it == values_.end()) return std::string(default_value);
  used_[it->first] = true;
  return it->second;
}

Status MethodParams::Finish() const {
  std::string unknown;
  for (const auto& [key, used] : used_) {
    if (!used) unknown += (unknown.empty() ? "" : ", ") + key;
  }
  if (!unknown.empty()) return InvalidArgument("unknown method parameter(s): " + unknown);
  return Status::Ok();
}

}  // namespace kvt::policies
