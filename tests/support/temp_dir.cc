#include "tests/support/temp_dir.h"

#include <cstdlib>
#include <filesystem>
#include <stdexcept>

namespace kvt::testing {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string templ = std::string(base && *base ? base : "/tmp") + "/kvt-test-XXXXXX";
  if (mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + templ);
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string BinDir() {
  const char* d = std::getenv("KVT_BIN_DIR");
  return d ? d : "build/bin";
}

std::string SharedDataDir() {
  const char* d = std::getenv("KVT_SHARED_DATA");
  return d ? d : "../shared/data";
}

}  // namespace kvt::testing
