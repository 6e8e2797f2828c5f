// kvt-llama — the reference engine's command line: `generate`, `ppl` and `plan` (see --help of each).
#include <cstdio>

#include "examples/llama/cli_commands.h"

int main(int argc, char** argv) {
  CLI::App app{"kvt-llama: reference Llama engine (CPU, optional CUDA forward) with kv-tierd's KV methods in the loop"};
  app.require_subcommand(1);
  kvt::llama::cli::GenerateArgs gen;
  kvt::llama::cli::PplArgs ppl;
  CLI::App* gen_cmd = kvt::llama::cli::AddGenerateCommand(app, gen);
  CLI::App* ppl_cmd = kvt::llama::cli::AddPplCommand(app, ppl);
  kvt::llama::cli::PlanArgs plan;
  CLI::App* plan_cmd = kvt::llama::cli::AddPlanCommand(app, plan);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (gen_cmd->parsed()) return kvt::llama::cli::RunGenerate(gen);
  if (ppl_cmd->parsed()) return kvt::llama::cli::RunPpl(ppl);
  if (plan_cmd->parsed()) return kvt::llama::cli::RunPlan(plan);
  return 2;
}
