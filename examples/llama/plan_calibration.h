// PlanFromCalibration — the TailorKV plan of a model from a calibration run of the real model:
// `windows` consecutive windows of `window` tokens are run exactly (CaptureActivations), and each
// layer's dense-preference score over the window's last `observation` queries feeds the
// sequence::Planner (averaged over windows). Built only with the sequence plane (kvt::sequence).
#pragma once

#include <cstdint>
#include <span>

#include "common/status_or.h"
#include "examples/llama/transformer.h"
#include "sequence/planner.h"
#include "sequence/sequence_plan.h"

namespace kvt::llama {

struct PlanCalibration {
  int window = 512;
  int windows = 4;
  sequence::PlannerOptions planner;
};

StatusOr<sequence::SequencePlan> PlanFromCalibration(const Transformer& model, std::span<const int32_t> tokens,
                                                     const PlanCalibration& options, std::string model_name);

}  // namespace kvt::llama
