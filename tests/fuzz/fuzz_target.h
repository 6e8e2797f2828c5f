// The contract of a fuzz target in tests/fuzz/ (one `<name>_fuzz.cc` each).
//
// A target defines LLVMFuzzerTestOneInput — it must accept any bytes: every input either works or
// is refused with an error value; a crash, a sanitizer report, a hang or a failed KVT_FUZZ_CHECK
// is a bug in the code under test — and kvt::fuzz::Seeds(), valid inputs to start from.
//
// Each target is built twice from the same source:
//   <name>_fuzz         with any compiler, linked with replay_main.cc: runs the seeds, files given
//                       on the command line, and deterministic mutations of the seeds
//                       (tests/fuzz/mutator.h). ctest runs it (label `fuzz`), also under ASan+UBSan.
//   <name>_libfuzzer    with clang and -DKVT_BUILD_FUZZERS=ON: coverage-guided libFuzzer
//                       (`make fuzz`, scripts/fuzz.sh), its corpus started from the seeds.
// Targets may keep state across inputs (a daemon started once), but an input's outcome must not
// depend on the inputs before it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace kvt::fuzz {

// Valid inputs that reach deep into the code under test; never empty.
std::vector<std::vector<uint8_t>> Seeds();

// Counts an input the code under test accepted (parsed, restored, answered with OK), so that the
// replay driver can say how many mutated inputs got past the first checks.
void CountAccepted();
uint64_t AcceptedCount();

// Reports a broken property of the code under test and aborts (a fuzzer's way to fail).
[[noreturn]] void Fail(const char* file, int line, const std::string& what);

inline std::vector<uint8_t> Bytes(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

}  // namespace kvt::fuzz

#define KVT_FUZZ_CHECK(condition, what)                                                        \
  do {                                                                                         \
    if (!(condition)) ::kvt::fuzz::Fail(__FILE__, __LINE__, std::string(#condition ": ") + (what)); \
  } while (0)
