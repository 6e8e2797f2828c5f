#include "examples/fidelity/method_table.h"

#include "policies/registry.h"

namespace kvt::fidelity {

bool Registered(const std::string& name) {
  for (const policies::MethodEntry& e : policies::RegisteredMethods()) {
    if (e.name == name) return true;
  }
  return false;
}

std::vector<FidelityMethod> SmallModelMethods(const std::string& lorc_progressive,
                                              const std::string& lorc_uniform) {
  std::vector<FidelityMethod> m = {
      {"full", "full", "full", false},
      {"full-fp16", "full", "full:dtype=f16", false},
      {"KIVI-4", "kivi4", "kivi4:group=8,residual=32", false},
      {"KIVI-2", "kivi2", "kivi2:group=8,residual=32", false},
      {"TailorKV-2", "tailorkv2", "tailorkv2:group=8,residual=32,budget=64,sinks=4,recent=12,obs=32", true},
      {"TailorKV-1", "tailorkv1", "tailorkv1:group=8,residual=32,budget=64,sinks=4,recent=12,obs=32", true},
      {"TALE", "tale", "tale:window=32,sinks=4", false},
      {"KVCompose-0.75", "kvcompose", "kvcompose:ratio=0.75", true},
      {"KVCompose-0.5", "kvcompose", "kvcompose:ratio=0.5", true},
      {"KVCompose-0.25", "kvcompose", "kvcompose:ratio=0.25", true},
      {"Quest-64", "quest", "quest:budget=64,page=8", true},
      {"SnapKV-64", "snapkv", "snapkv:budget=32,window=32", true},
      {"StreamingLLM-64", "streamingllm", "streamingllm:sinks=4,recent=60", true},
  };
  if (!lorc_progressive.empty()) {
    m.push_back({"LoRC-progressive-0.5", "lorc", "lorc:factors=" + lorc_progressive, false});
  }
  if (!lorc_uniform.empty()) {
    m.push_back({"LoRC-uniform-0.5", "lorc", "lorc:factors=" + lorc_uniform, false});
  }
  return m;
}

std::vector<std::string> MissingMethods(const std::vector<FidelityMethod>& methods) {
  std::vector<std::string> missing;
  for (const FidelityMethod& f : methods) {
    if (!Registered(f.family)) missing.push_back(f.label + " (registry has no '" + f.family + "')");
  }
  return missing;
}

}  // namespace kvt::fidelity
