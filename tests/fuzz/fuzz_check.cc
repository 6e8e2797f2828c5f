#include <cstdio>
#include <cstdlib>

#include "tests/fuzz/fuzz_target.h"

namespace kvt::fuzz {
namespace {
uint64_t g_accepted = 0;
}  // namespace

void CountAccepted() { ++g_accepted; }
uint64_t AcceptedCount() { return g_accepted; }

void Fail(const char* file, int line, const std::string& what) {
  std::fprintf(stderr, "%s:%d: fuzz property broken: %s\n", file, line, what.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace kvt::fuzz
