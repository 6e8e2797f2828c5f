// kvt-llama's subcommands. Each Add*Command registers its options on `app` and returns the
// subcommand; Run* executes it after parsing, returning the process exit code. Errors go to
// stderr as one line; results go to stdout.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace kvt::llama::cli {

struct GenerateArgs {
  std::string model, tokenizer, prompt, policy = "exact";
  int steps = 256;
  float temperature = 0.0f;
  uint64_t seed = 0;
  int observation_window = 0;
  bool kvtier = false;          // reuse prompt prefixes through kv-tierd's block plane
  std::string socket;           // empty: $KVT_SOCKET, else the daemon's default
  std::string kvtier_model_id;  // empty: ModelKvIdentity(weights)
  int kvtier_chunk = 16;        // tokens per chunk
  std::string device = "auto";  // cpu | cuda | auto (device_choice.h)
};
CLI::App* AddGenerateCommand(CLI::App& app, GenerateArgs& args);
int RunGenerate(const GenerateArgs& args);

struct PplArgs {
  std::string model, tokenizer, text;
  std::vector<std::string> policies;
  int window = 512;
  int prefill = 128;
  int observation_window = 32;
  int64_t max_tokens = 0;
  bool json = false;
  bool serial = false;
  std::string device = "auto";  // cpu | cuda | auto (device_choice.h)
};
CLI::App* AddPplCommand(CLI::App& app, PplArgs& args);
int RunPpl(const PplArgs& args);

// Adds `--device cpu|cuda|auto` (device_choice.h) to a subcommand; its Run* prints the choice to
// stderr as "[kvt-llama] device: ...".
void AddDeviceOption(CLI::App& command, std::string& device);

// TailorKV plan from a calibration text. head_dim-8 defaults (stories260K): TailorKV's 8 critical
// channels of 128 become 2 of 8; budget 96 = 4 sinks + 32 recent + 60 gathered per KV head;
// KIVI groups of 32 tokens with a 32-token residual.
struct PlanArgs {
  std::string model, tokenizer, text, out;
  int window = 512;
  int windows = 4;
  int observation = 32;
  float tau = 0.2f;
  std::string dense = "kivi:bits=1,group=32,residual=32";
  std::string sparse = "sparse:budget=96,sinks=4,recent=32,channels=2,scorer=channels";
};
CLI::App* AddPlanCommand(CLI::App& app, PlanArgs& args);
int RunPlan(const PlanArgs& args);
}  // namespace kvt::llama::cli
