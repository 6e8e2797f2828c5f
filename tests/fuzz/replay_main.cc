// The driver of a `<name>_fuzz` executable (see fuzz_target.h):
//
//   <name>_fuzz [--iterations N] [--seed S] [--iteration K] [--write-seeds DIR] [FILE|DIR ...]
//
// Runs the target's seeds, then every FILE (or every file in DIR: a libFuzzer corpus or crash
// artifact), then N mutated seeds (mutator.h) from mutation seed S (default 1). --iteration K
// runs only mutated input K, to reproduce a failure; --write-seeds writes the seeds as files into
// DIR (libFuzzer's starting corpus) and exits. A failing input names its iteration on stderr.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_target.h"
#include "tests/fuzz/mutator.h"

// Under a sanitizer its report ends the process without a signal: the death callback notes the input.
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define KVT_FUZZ_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define KVT_FUZZ_SANITIZED 1
#endif
#ifdef KVT_FUZZ_SANITIZED
#include <sanitizer/common_interface_defs.h>
#endif

namespace {

char g_crash_note[256] = "";  // what was running, written by the crash handlers

void WriteCrashNote() {
  if (g_crash_note[0] != '\0') {
    [[maybe_unused]] ssize_t n = write(STDERR_FILENO, g_crash_note, std::strlen(g_crash_note));
  }
}

void OnFatalSignal(int sig) {
  WriteCrashNote();
  signal(sig, SIG_DFL);
  raise(sig);
}

void Note(const char* what) {
  const size_t n = std::min(std::strlen(what), sizeof(g_crash_note) - 2);
  std::memcpy(g_crash_note, what, n);
  g_crash_note[n] = n > 0 ? '\n' : '\0';
  g_crash_note[n + 1] = '\0';
}

bool ReadFile(const std::filesystem::path& path, std::vector<uint8_t>* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return true;
}

int Usage(const char* argv0) {
  std::fprintf(stderr, "usage: %s [--iterations N] [--seed S] [--iteration K] [--write-seeds DIR] [FILE|DIR ...]\n",
               argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t iterations = 0, seed = 1;
  int64_t only = -1;
  std::string write_seeds;
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (a == "--iterations" || a == "--seed" || a == "--iteration" || a == "--write-seeds") {
      const char* v = value();
      if (v == nullptr) return Usage(argv[0]);
      if (a == "--iterations") iterations = std::strtoull(v, nullptr, 10);
      if (a == "--seed") seed = std::strtoull(v, nullptr, 10);
      if (a == "--iteration") only = std::strtoll(v, nullptr, 10);
      if (a == "--write-seeds") write_seeds = v;
    } else if (a.starts_with("--")) {
      return Usage(argv[0]);
    } else {
      paths.push_back(a);
    }
  }

  for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL}) signal(sig, OnFatalSignal);
#ifdef KVT_FUZZ_SANITIZED
  __sanitizer_set_death_callback(WriteCrashNote);
#endif

  const std::vector<std::vector<uint8_t>> seeds = kvt::fuzz::Seeds();
  if (!write_seeds.empty()) {
    std::filesystem::create_directories(write_seeds);
    for (size_t s = 0; s < seeds.size(); ++s) {
      std::ofstream out(std::filesystem::path(write_seeds) / ("seed-" + std::to_string(s)), std::ios::binary);
      out.write(reinterpret_cast<const char*>(seeds[s].data()), static_cast<std::streamsize>(seeds[s].size()));
      if (!out) {
        std::fprintf(stderr, "cannot write seeds into %s\n", write_seeds.c_str());
        return 1;
      }
    }
    std::printf("%zu seeds written to %s\n", seeds.size(), write_seeds.c_str());
    return 0;
  }

  char note[256];
  if (only < 0) {
    for (size_t s = 0; s < seeds.size(); ++s) {
      std::snprintf(note, sizeof(note), "fuzz: failed on seed %zu", s);
      Note(note);
      LLVMFuzzerTestOneInput(seeds[s].data(), seeds[s].size());
    }
  }
  size_t files = 0;
  for (const std::string& p : paths) {
    std::vector<std::filesystem::path> inputs;
    if (std::filesystem::is_directory(p)) {
      for (const auto& e : std::filesystem::directory_iterator(p)) {
        if (e.is_regular_file()) inputs.push_back(e.path());
      }
    } else {
      inputs.emplace_back(p);
    }
    for (const auto& path : inputs) {
      std::vector<uint8_t> bytes;
      if (!ReadFile(path, &bytes)) {
        std::fprintf(stderr, "cannot read %s\n", path.c_str());
        return 1;
      }
      std::snprintf(note, sizeof(note), "fuzz: failed on file %s", path.c_str());
      Note(note);
      LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
      ++files;
    }
  }
  const kvt::fuzz::Mutator mutator(seeds, seed);
  const uint64_t first = only >= 0 ? static_cast<uint64_t>(only) : 0;
  const uint64_t end = only >= 0 ? first + 1 : iterations;
  for (uint64_t i = first; i < end; ++i) {
    const std::vector<uint8_t> input = mutator.Input(i);
    std::snprintf(note, sizeof(note), "fuzz: failed on mutated input %llu: rerun with --seed %llu --iteration %llu",
                  static_cast<unsigned long long>(i), static_cast<unsigned long long>(seed),
                  static_cast<unsigned long long>(i));
    Note(note);
    LLVMFuzzerTestOneInput(input.data(), input.size());
  }
  Note("");
  std::printf("%zu seeds, %zu files, %llu mutated inputs: no failure; %llu inputs accepted\n",
              only < 0 ? seeds.size() : 0, files, static_cast<unsigned long long>(end - first),
              static_cast<unsigned long long>(kvt::fuzz::AcceptedCount()));
  return 0;
}
