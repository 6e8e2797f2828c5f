// The fidelity plot: quality loss (ΔNLL with the method in the loop, or the attention error when
// perplexity was skipped) against compression (× vs fp16), one labelled point per method,
// drawn by gnuplot (pngcairo; Debian gnuplot-nox). A missing gnuplot is an UNSUPPORTED status.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "examples/fidelity/fidelity_row.h"

namespace kvt::fidelity {

Status WriteFidelityPlot(const std::vector<FidelityRow>& rows, const std::string& path);

}  // namespace kvt::fidelity
