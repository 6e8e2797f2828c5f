#include "sequence/sequence_plan.h"

#include <cstdio>
#include <fstream>
#include <sstream>

#include "policies/lowrank/factories.h"
#include "policies/method_params.h"
#include "policies/registry.h"

namespace kvt::sequence {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// tale / kvcompose: the parameters without `score` (read by the caller), as written.
std::string WithoutScore(std::string_view params_text) {
  std::string kept;
  while (!params_text.empty()) {
    const size_t comma = params_text.find(',');
    const std::string_view item = Trim(params_text.substr(0, comma));
    params_text = comma == std::string_view::npos ? std::string_view() : params_text.substr(comma + 1);
    if (item.empty() || item.substr(0, 6) == "score=") continue;
    if (!kept.empty()) kept += ',';
    kept += item;
  }
  return kept;
}

// Builds the layer's cache once for a shape: the method's own parameter checks, with its messages.
Status CheckMethod(const LayerPlan& l, int q_heads, int kv_heads, int head_dim) {
  policies::LayerShape shape;
  shape.num_q_heads = q_heads;
  shape.num_kv_heads = kv_heads;
  shape.head_dim = head_dim;
  return policies::MakeLayerCache(MethodSpec(l), shape).status();
}

StatusOr<LayerPlan> ParseKindAndParams(std::string_view kind, std::string_view params_text) {
  KVT_ASSIGN_OR_RETURN(auto p, policies::MethodParams::Parse(params_text));
  LayerPlan l;
  if (kind == "tale" || kind == "kvcompose") {
    l.kind = kind == "tale" ? LayerKind::kTale : LayerKind::kKvCompose;
    KVT_ASSIGN_OR_RETURN(l.score, p.Float("score", -1.0f, -1.0f, 1.0f));
    if (l.kind == LayerKind::kKvCompose && p.Has("global")) {
      KVT_RETURN_IF_ERROR(p.Int("global", 0, 0, 1).status());  // 1: the sequence's planner
    }
    l.method_params = WithoutScore(params_text);  // the method's keys are checked by Validate
    return l;
  }
  if (kind == "full") {
    l.kind = LayerKind::kFull;
  } else if (kind == "offload") {
    l.kind = LayerKind::kOffload;
  } else if (kind == "kivi") {
    l.kind = LayerKind::kKivi;
    KVT_ASSIGN_OR_RETURN(l.bits, p.Int("bits", 2, 1, 8));
    KVT_ASSIGN_OR_RETURN(l.group, p.Int("group", 32, 8, 4096));
    KVT_ASSIGN_OR_RETURN(l.residual, p.Int("residual", 128, 8, 1 << 20));
  } else if (kind == "sparse") {
    l.kind = LayerKind::kSparse;
    KVT_ASSIGN_OR_RETURN(l.budget, p.Int("budget", 192, 1, 1 << 24));
    KVT_ASSIGN_OR_RETURN(l.sinks, p.Int("sinks", 8, 0, 1 << 20));
    KVT_ASSIGN_OR_RETURN(l.recent, p.Int("recent", 56, 1, 1 << 20));
    KVT_ASSIGN_OR_RETURN(l.channels, p.Int("channels", 8, 1, 1024));
    KVT_ASSIGN_OR_RETURN(const std::string scorer, p.Word("scorer", "channels"));
    if (scorer == "channels") {
      l.scorer = Scorer::kChannels;
    } else if (scorer == "sketch") {
      l.scorer = Scorer::kSketch;
    } else {
      return InvalidArgument("sparse: scorer must be channels or sketch, got " + scorer);
    }
    KVT_ASSIGN_OR_RETURN(l.sketch_bits, p.Int("sketch_bits", 2, 1, 8));
    KVT_ASSIGN_OR_RETURN(l.sketch_group, p.Int("sketch_group", 64, 8, 4096));
  } else {
    return InvalidArgument("unknown layer kind '" + std::string(kind) +
                           "' (full, offload, kivi, sparse, tale, kvcompose)");
  }
  KVT_ASSIGN_OR_RETURN(l.score, p.Float("score", -1.0f, -1.0f, 1.0f));
  KVT_RETURN_IF_ERROR(p.Finish());
  return l;
}

Status ValidateLayer(const LayerPlan& l, int q_heads, int kv_heads, int head_dim) {
  auto pow2_bits = [](int b) { return b == 1 || b == 2 || b == 4 || b == 8; };
  switch (l.kind) {
    case LayerKind::kFull:
    case LayerKind::kOffload:
      return Status::Ok();
    case LayerKind::kKivi:
      if (!pow2_bits(l.bits)) return InvalidArgument("kivi: bits must be 1, 2, 4 or 8");
      if (l.group % 8 != 0) return InvalidArgument("kivi: group must be a multiple of 8");
      if (l.residual % l.group != 0) return InvalidArgument("kivi: residual must be a multiple of group");
      return Status::Ok();
    case LayerKind::kSparse:
      if (l.sinks + l.recent >= l.budget) return InvalidArgument("sparse: sinks + recent must be below budget");
      if (l.channels > head_dim) return InvalidArgument("sparse: channels exceed head_dim");
      if (!pow2_bits(l.sketch_bits)) return InvalidArgument("sparse: sketch_bits must be 1, 2, 4 or 8");
      if (l.sketch_group % 8 != 0) return InvalidArgument("sparse: sketch_group must be a multiple of 8");
      return Status::Ok();
    case LayerKind::kTale:
    case LayerKind::kKvCompose:
      return CheckMethod(l, q_heads, kv_heads, head_dim);
  }
  return InvalidArgument("unknown layer kind");
}

}  // namespace

std::string_view LayerKindName(LayerKind kind) {
  switch (kind) {
    case LayerKind::kFull: return "full";
    case LayerKind::kOffload: return "offload";
    case LayerKind::kKivi: return "kivi";
    case LayerKind::kSparse: return "sparse";
    case LayerKind::kTale: return "tale";
    case LayerKind::kKvCompose: return "kvcompose";
  }
  return "?";
}

int StatsSlot(LayerKind kind) {
  switch (kind) {
    case LayerKind::kTale: return static_cast<int>(LayerKind::kKivi);
    case LayerKind::kKvCompose: return static_cast<int>(LayerKind::kFull);
    default: return static_cast<int>(kind);
  }
}

namespace {

// The value of `key` in a validated parameter text ("a=1,b=2"), or "" when absent.
std::string ParamValue(std::string_view params, std::string_view key) {
  while (!params.empty()) {
    const size_t comma = params.find(',');
    const std::string_view item = Trim(params.substr(0, comma));
    params = comma == std::string_view::npos ? std::string_view() : params.substr(comma + 1);
    const size_t eq = item.find('=');
    if (eq != std::string_view::npos && Trim(item.substr(0, eq)) == key) return std::string(Trim(item.substr(eq + 1)));
  }
  return "";
}

}  // namespace

bool KvComposeGlobal(const LayerPlan& l) {
  return l.kind == LayerKind::kKvCompose && ParamValue(l.method_params, "global") == "1";
}

std::string MethodSpec(const LayerPlan& l) {
  switch (l.kind) {
    case LayerKind::kTale: return l.method_params.empty() ? "tale" : "tale:" + l.method_params;
    // The registry's default is global=1 (its thread-local hand-off between layers); a plan line
    // without `global` means the per-layer budget, so global=0 goes first unless the line sets it.
    case LayerKind::kKvCompose:
      if (!ParamValue(l.method_params, "global").empty()) return "kvcompose:" + l.method_params;
      return "kvcompose:global=0" + (l.method_params.empty() ? "" : "," + l.method_params);
    default: return "";
  }
}

Status SequencePlan::Validate() const {
  KVT_RETURN_IF_ERROR(shape().Validate());
  if (layers.empty() || layers.size() > 4096) return InvalidArgument("plan: 1..4096 layers required");
  bool have_global = false;
  policies::lowrank::KvComposeOptions global;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (Status s = ValidateLayer(layers[i], q_heads, kv_heads, head_dim); !s.ok()) {
      return s.WithContext("plan layer " + std::to_string(i));
    }
    if (!KvComposeGlobal(layers[i])) continue;
    // One planner, one ratio: every global=1 kvcompose layer shares the budget's parameters.
    KVT_ASSIGN_OR_RETURN(auto params, policies::MethodParams::Parse(layers[i].method_params));
    KVT_ASSIGN_OR_RETURN(const auto spec, policies::lowrank::ParseKvComposeSpec(params));
    if (!have_global) {
      have_global = true;
      global = spec.options;
    } else if (spec.options.ratio != global.ratio || spec.options.structured != global.structured) {
      return InvalidArgument("plan layer " + std::to_string(i) +
                             ": kvcompose global=1 layers share one cross-layer budget, so they must "
                             "agree on ratio and structured");
    }
  }
  return Status::Ok();
}

StatusOr<LayerPlan> ParseLayerSpec(std::string_view spec) {
  spec = Trim(spec);
  const size_t colon = spec.find(':');
  KVT_ASSIGN_OR_RETURN(LayerPlan l, colon == std::string_view::npos
                                        ? ParseKindAndParams(spec, "")
                                        : ParseKindAndParams(spec.substr(0, colon), spec.substr(colon + 1)));
  // Shapes are checked again by SequencePlan::Validate; tale / kvcompose parameters here against a
  // small shape that every method accepts.
  KVT_RETURN_IF_ERROR(l.kind == LayerKind::kTale || l.kind == LayerKind::kKvCompose ? ValidateLayer(l, 1, 1, 64)
                                                                                    : ValidateLayer(l, 1, 1, 1024));
  return l;
}

std::string FormatLayerSpec(const LayerPlan& l) {
  char buf[256];
  switch (l.kind) {
    case LayerKind::kFull: return "full";
    case LayerKind::kOffload: return "offload";
    case LayerKind::kKivi:
      std::snprintf(buf, sizeof(buf), "kivi bits=%d,group=%d,residual=%d", l.bits, l.group, l.residual);
      return buf;
    case LayerKind::kSparse:
      std::snprintf(buf, sizeof(buf),
                    "sparse budget=%d,sinks=%d,recent=%d,channels=%d,scorer=%s,sketch_bits=%d,sketch_group=%d",
                    l.budget, l.sinks, l.recent, l.channels,
                    l.scorer == Scorer::kSketch ? "sketch" : "channels", l.sketch_bits, l.sketch_group);
      return buf;
    case LayerKind::kTale:
    case LayerKind::kKvCompose:
      return std::string(LayerKindName(l.kind)) + (l.method_params.empty() ? "" : " " + l.method_params);
  }
  return "?";
}

StatusOr<SequencePlan> UniformPlan(std::string_view spec, int layers, const kernels::AttentionShape& shape,
                                   std::string model) {
  KVT_ASSIGN_OR_RETURN(LayerPlan l, ParseLayerSpec(spec));
  SequencePlan p;
  p.model = std::move(model);
  p.q_heads = shape.q_heads;
  p.kv_heads = shape.kv_heads;
  p.head_dim = shape.head_dim;
  if (layers <= 0 || layers > 4096) return InvalidArgument("plan: 1..4096 layers required");
  p.layers.assign(static_cast<size_t>(layers), l);
  KVT_RETURN_IF_ERROR(p.Validate());
  return p;
}

std::string FormatPlan(const SequencePlan& plan) {
  std::ostringstream o;
  o << "kvt-sequence-plan 1\n";
  if (!plan.model.empty()) o << "model " << plan.model << "\n";
  o << "shape layers=" << plan.num_layers() << ",q_heads=" << plan.q_heads << ",kv_heads=" << plan.kv_heads
    << ",head_dim=" << plan.head_dim << "\n";
  for (int i = 0; i < plan.num_layers(); ++i) {
    const LayerPlan& l = plan.layers[static_cast<size_t>(i)];
    o << "layer " << i << " " << FormatLayerSpec(l);
    if (l.score >= 0.0f) {  // the planner's dense-preference score, kept for the record
      char buf[64];
      std::snprintf(buf, sizeof(buf), ",score=%.6f", l.score);
      const bool bare = FormatLayerSpec(l).find(' ') == std::string::npos;  // no parameters yet
      o << (bare ? " " : "") << (buf + (bare ? 1 : 0));
    }
    o << "\n";
  }
  return o.str();
}

StatusOr<SequencePlan> ParsePlan(std::string_view text) {
  SequencePlan plan;
  bool header = false, have_shape = false;
  int n_layers = 0, line_no = 0;
  std::vector<bool> seen;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_no;
    if (const size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    line = Trim(line);
    if (line.empty()) continue;
    const std::string where = "plan line " + std::to_string(line_no);
    const size_t sp = line.find(' ');
    const std::string_view word = line.substr(0, sp);
    const std::string_view rest = sp == std::string_view::npos ? std::string_view() : Trim(line.substr(sp + 1));
    if (!header) {
      if (word != "kvt-sequence-plan" || rest != "1") return InvalidArgument(where + ": expected 'kvt-sequence-plan 1'");
      header = true;
    } else if (word == "model") {
      plan.model = std::string(rest);
    } else if (word == "shape") {
      KVT_ASSIGN_OR_RETURN(auto p, policies::MethodParams::Parse(rest));
      KVT_ASSIGN_OR_RETURN(n_layers, p.Int("layers", 0, 1, 4096));
      KVT_ASSIGN_OR_RETURN(plan.q_heads, p.Int("q_heads", 0, 1, 1 << 16));
      KVT_ASSIGN_OR_RETURN(plan.kv_heads, p.Int("kv_heads", 0, 1, 1 << 16));
      KVT_ASSIGN_OR_RETURN(plan.head_dim, p.Int("head_dim", 0, 1, 1024));
      KVT_RETURN_IF_ERROR(p.Finish());
      plan.layers.assign(static_cast<size_t>(n_layers), LayerPlan{});
      seen.assign(static_cast<size_t>(n_layers), false);
      have_shape = true;
    } else if (word == "layer") {
      if (!have_shape) return InvalidArgument(where + ": 'layer' before 'shape'");
      const size_t sp2 = rest.find(' ');
      int index = -1;
      const std::string idx(rest.substr(0, sp2));
      if (std::sscanf(idx.c_str(), "%d", &index) != 1 || index < 0 || index >= n_layers ||
          std::to_string(index) != idx) {
        return InvalidArgument(where + ": bad layer index '" + idx + "'");
      }
      if (seen[static_cast<size_t>(index)]) return InvalidArgument(where + ": layer " + idx + " given twice");
      const std::string_view spec = sp2 == std::string_view::npos ? std::string_view() : Trim(rest.substr(sp2 + 1));
      const size_t sp3 = spec.find(' ');
      auto l = ParseKindAndParams(spec.substr(0, sp3),
                                  sp3 == std::string_view::npos ? std::string_view() : Trim(spec.substr(sp3 + 1)));
      if (!l.ok()) return l.status().WithContext(where);
      plan.layers[static_cast<size_t>(index)] = *l;
      seen[static_cast<size_t>(index)] = true;
    } else {
      return InvalidArgument(where + ": unknown keyword '" + std::string(word) + "'");
    }
  }
  if (!header || !have_shape) return InvalidArgument("plan: missing header or shape line");
  for (int i = 0; i < n_layers; ++i) {
    if (!seen[static_cast<size_t>(i)]) return InvalidArgument("plan: layer " + std::to_string(i) + " missing");
  }
  KVT_RETURN_IF_ERROR(plan.Validate());
  return plan;
}

Status SavePlan(const SequencePlan& plan, const std::string& path) {
  KVT_RETURN_IF_ERROR(plan.Validate());
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return IoError("cannot write plan " + path);
  f << FormatPlan(plan);
  f.close();
  if (!f) return IoError("write failed for plan " + path);
  return Status::Ok();
}

StatusOr<SequencePlan> LoadPlan(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return NotFound("cannot open plan " + path);
  std::ostringstream s;
  s << f.rdbuf();
  if (s.str().size() > (1u << 20)) return InvalidArgument("plan " + path + " larger than 1 MiB");
  auto plan = ParsePlan(s.str());
  if (!plan.ok()) return plan.status().WithContext(path);
  return plan;
}

}  // namespace kvt::sequence
