#include "examples/fidelity/fidelity_plot.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace kvt::fidelity {
namespace {

// gnuplot quotes strings with "..."; labels here are method names, but never trust them.
std::string Quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c != '\n') out += c;
  }
  return out + "\"";
}

Status RunGnuplot(const std::string& script) {
  const pid_t pid = fork();
  if (pid < 0) return IoError(std::string("fork for gnuplot: ") + std::strerror(errno));
  if (pid == 0) {
    execlp("gnuplot", "gnuplot", script.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return IoError(std::string("waiting for gnuplot: ") + std::strerror(errno));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
    return Unsupported("gnuplot not found (Debian package gnuplot-nox; scripts/install-deps.sh installs it)");
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return Internal("gnuplot failed on " + script);
  return Status::Ok();
}

}  // namespace

Status WriteFidelityPlot(const std::vector<FidelityRow>& rows, const std::string& path) {
  const bool use_ppl = !rows.empty() && rows[0].have_ppl;
  const std::string data = path + ".dat", script = path + ".gp";
  double xmax = 1.0;
  for (const FidelityRow& r : rows) xmax = std::max(xmax, r.ratio_vs_fp16);
  xmax = std::ceil(xmax * 1.2);  // room for the rightmost point's label
  {
    std::ofstream d(data);
    // Log y: the losses span orders of magnitude; values below 1e-4 sit on the floor.
    for (size_t i = 0; i < rows.size(); ++i) {
      const double y = std::max(1e-4, use_ppl ? rows[i].delta_nll : rows[i].attention_error);
      d << rows[i].ratio_vs_fp16 << ' ' << y << ' ' << i << ' ' << Quoted(rows[i].label) << '\n';
    }
    if (!d) return IoError("writing " + data);
  }
  {
    std::ofstream g(script);
    g << "set terminal pngcairo size 1000,640 font 'sans,10'\n"
      << "set output " << Quoted(path) << "\n"
      << "set title 'stories260K (real model, real text): quality vs compression'\n"
      << "set xlabel 'compression (x vs fp16 bytes per token)'\n"
      << "set ylabel " << Quoted(use_ppl ? "ΔNLL with the method in the loop (nats/token, log)"
                                         : "attention relative error (log)") << "\n"
      << "set logscale y\nset format y '10^{%L}'\nset xrange [0:" << xmax << "]\nset yrange [1e-4:*]\n"
      << "set grid\nset key off\nset palette model RGB defined (0 '#1f77b4', 1 '#ff7f0e', 2 '#2ca02c', "
         "3 '#d62728', 4 '#9467bd', 5 '#8c564b', 6 '#e377c2', 7 '#7f7f7f', 8 '#bcbd22', 9 '#17becf')\n"
      << "unset colorbox\n"
      << "plot " << Quoted(data) << " using 1:2:(int($3)%10) with points pt 7 ps 1.5 lc palette, \\\n"
      << "     '' using 1:2:4 with labels offset 1,0.6 left font ',9'\n";
    if (!g) return IoError("writing " + script);
  }
  Status st = RunGnuplot(script);
  std::error_code ec;
  std::filesystem::remove(data, ec);
  std::filesystem::remove(script, ec);
  return st;
}

}  // namespace kvt::fidelity
