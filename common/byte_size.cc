#include "common/byte_size.h"

#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace kvt {

uint64_t PhysicalMemoryBytes() {
  long pages = sysconf(_SC_PHYS_PAGES);
  long page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : (8ull << 30);
}

StatusOr<uint64_t> ParseByteSize(const std::string& text) {
  std::string s;
  for (char ch : text) {
    if (!std::isspace(static_cast<unsigned char>(ch))) s += ch;
  }
  if (s.empty()) return InvalidArgument("empty size");
  size_t pos = 0;
  while (pos < s.size() && (std::isdigit(static_cast<unsigned char>(s[pos])) || s[pos] == '.')) ++pos;
  if (pos == 0) return InvalidArgument("size '" + text + "' does not start with a number");
  errno = 0;
  char* end = nullptr;
  double number = std::strtod(s.substr(0, pos).c_str(), &end);
  if (errno != 0 || !std::isfinite(number) || number < 0) return InvalidArgument("bad size '" + text + "'");
  std::string unit = s.substr(pos);
  for (char& ch : unit) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  double mult;
  if (unit.empty() || unit == "b") mult = 1;
  else if (unit == "k" || unit == "kb" || unit == "kib") mult = 1024.0;
  else if (unit == "m" || unit == "mb" || unit == "mib") mult = 1024.0 * 1024;
  else if (unit == "g" || unit == "gb" || unit == "gib") mult = 1024.0 * 1024 * 1024;
  else if (unit == "t" || unit == "tb" || unit == "tib") mult = 1024.0 * 1024 * 1024 * 1024;
  else if (unit == "%") {
    if (number > 100) return InvalidArgument("size '" + text + "' is more than 100%");
    return static_cast<uint64_t>(static_cast<double>(PhysicalMemoryBytes()) * number / 100.0);
  } else {
    return InvalidArgument("unknown size unit '" + unit + "' in '" + text + "' (use B, KiB, MiB, GiB, TiB or %)");
  }
  double bytes = number * mult;
  if (bytes > 9.0e18) return InvalidArgument("size '" + text + "' is too large");
  return static_cast<uint64_t>(bytes);
}

}  // namespace kvt
