// Canvas — a tiny RGB raster for report plots: lines, dots, 3x5-pixel block text (upper-case
// letters, digits, a little punctuation), saved as an uncompressed PNG. No dependencies.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace kvt::fidelity {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
};

class Canvas {
 public:
  Canvas(int width, int height, Rgb background);
  int width() const { return width_; }
  int height() const { return height_; }

  void Set(int x, int y, Rgb c);
  void Line(int x0, int y0, int x1, int y1, Rgb c);
  void Dot(int cx, int cy, int radius, Rgb c);
  // Text with its top-left corner at (x, y); each font pixel becomes scale x scale.
  void Text(int x, int y, const std::string& s, int scale, Rgb c);
  static int TextWidth(const std::string& s, int scale) { return static_cast<int>(s.size()) * 4 * scale; }

  // 8-bit RGB PNG, stored (uncompressed) deflate blocks.
  Status WritePng(const std::string& path) const;

 private:
  int width_, height_;
  std::vector<uint8_t> rgb_;
};

}  // namespace kvt::fidelity
