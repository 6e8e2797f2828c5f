// Paths of the shared real model, tokenizer and text, and the golden outputs of
// shared/data/README.md, for the engine's tests.
#pragma once

#include <cstdio>
#include <string>

#include "tests/support/temp_dir.h"

namespace kvt::llama::testing {

inline std::string ModelBin() { return kvt::testing::SharedDataDir() + "/models/stories260K.bin"; }
inline std::string ModelGguf() { return kvt::testing::SharedDataDir() + "/models/stories260K.gguf"; }
inline std::string TokenizerBin() { return kvt::testing::SharedDataDir() + "/models/tok512.bin"; }
inline std::string DevText() { return kvt::testing::SharedDataDir() + "/corpora/tinystories_val_dev.txt"; }
inline std::string KvtLlama() { return kvt::testing::BinDir() + "/kvt-llama"; }

// Runs a shell command; returns what it wrote on stdout and stores its wait status in *status
// (-1 if it could not be started). Redirections in `cmd` decide what else is captured.
inline std::string RunCommand(const std::string& cmd, int* status) {
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  if (p == nullptr) {
    *status = -1;
    return out;
  }
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  *status = pclose(p);
  return out;
}

// Greedy, empty prompt, 200 steps.
inline const char kGoldenEmpty200[] =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
    "One day, she saw a big, red ball. She wanted to play with it, but it was too high.\n"
    "Lily's mom said, \"Lily, let's go to the park.\" Lily was sad and didn't know what to do. "
    "She said, \"I want to play with your ball, but I can't find it.\"\n"
    "Lily was sad and didn't know what to do. She said, \"I'm sorry, Lily. I didn't know what to "
    "do.\"\n"
    "Lily didn't want to help her mom, so she";

// Greedy, prompt "Zoo", 60 steps.
inline const char kGoldenZoo60[] =
    "Zoo was a little girl named Lily. She loved to play outside in the park. One day, she saw a "
    "big, red ball. She wanted to play with it, but she didn't want to play with";

}  // namespace kvt::llama::testing
