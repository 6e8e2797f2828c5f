#include "examples/fidelity/fidelity_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "examples/fidelity/canvas.h"

namespace kvt::fidelity {
namespace {

std::string Num(double v, int decimals) {
  char b[32];
  std::snprintf(b, sizeof(b), "%.*f", decimals, v);
  return b;
}

}  // namespace

Status WriteFidelityPlot(const std::vector<FidelityRow>& rows, const std::string& path) {
  const int W = 1000, H = 640, left = 90, right = 40, top = 60, bottom = 70;
  Canvas cv(W, H, {255, 255, 255});
  const Rgb ink{30, 30, 30}, grid{225, 225, 225};
  const bool use_ppl = !rows.empty() && rows[0].have_ppl;
  // Log scale: the losses span orders of magnitude; values below 1e-4 sit on the floor.
  auto yval = [&](const FidelityRow& r) {
    return std::log10(std::max(1e-4, use_ppl ? r.delta_nll : r.attention_error));
  };
  double xmax = 1.0, ymin = -4.0, ymax = -3.0;
  for (const FidelityRow& r : rows) {
    xmax = std::max(xmax, r.ratio_vs_fp16);
    ymax = std::max(ymax, std::ceil(yval(r)));
  }
  xmax = std::ceil(xmax * 1.1);
  const int pw = W - left - right, ph = H - top - bottom;
  auto px = [&](double x) { return left + static_cast<int>(std::lround(x / xmax * pw)); };
  auto py = [&](double y) { return top + ph - static_cast<int>(std::lround((y - ymin) / (ymax - ymin) * ph)); };
  for (int i = 0; i <= 5; ++i) {
    const double xv = xmax * i / 5;
    cv.Line(px(xv), top, px(xv), top + ph, grid);
    const std::string xs = Num(xv, 1);
    cv.Text(px(xv) - Canvas::TextWidth(xs, 2) / 2, top + ph + 10, xs, 2, ink);
  }
  for (int e = static_cast<int>(ymin); e <= static_cast<int>(ymax); ++e) {
    cv.Line(left, py(e), left + pw, py(e), grid);
    const std::string ys = "1E" + std::to_string(e);
    cv.Text(left - Canvas::TextWidth(ys, 2) - 8, py(e) - 5, ys, 2, ink);
  }
  cv.Line(left, top, left, top + ph, ink);
  cv.Line(left, top + ph, left + pw, top + ph, ink);
  cv.Text(left, 15, "STORIES260K (REAL MODEL, REAL TEXT): QUALITY VS COMPRESSION", 3, ink);
  const std::string xl = "COMPRESSION (X VS FP16 BYTES PER TOKEN)";
  cv.Text(left + pw / 2 - Canvas::TextWidth(xl, 2) / 2, H - 28, xl, 2, ink);
  cv.Text(8, top - 22, use_ppl ? "DELTA NLL (NATS/TOKEN, LOG)" : "ATTENTION REL. ERROR (LOG)", 2, ink);
  const Rgb palette[] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40}, {148, 103, 189},
                         {140, 86, 75}, {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};
  for (size_t i = 0; i < rows.size(); ++i) {
    const Rgb c = palette[i % (sizeof(palette) / sizeof(palette[0]))];
    const int x = px(rows[i].ratio_vs_fp16), y = py(yval(rows[i]));
    cv.Dot(x, y, 5, c);
    cv.Text(x + 8, y - 12 + static_cast<int>(i % 3) * 6, rows[i].label, 2, c);
  }
  return cv.WritePng(path);
}

}  // namespace kvt::fidelity
