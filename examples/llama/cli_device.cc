#include "examples/llama/cli_commands.h"

namespace kvt::llama::cli {

void AddDeviceOption(CLI::App& command, std::string& device) {
  command
      .add_option("--device", device,
                  "where the forward runs: cpu, cuda (weights and the exact/full K/V cache on the\n"
                  "GPU; other policies and --kvtier are cpu only) or auto (cuda when a device is\n"
                  "present and the run allows it, else cpu); the choice is printed to stderr")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}));
}

}  // namespace kvt::llama::cli
