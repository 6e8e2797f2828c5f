// TempDir — a fresh directory under $TMPDIR (or /tmp), removed with everything in it on scope exit.
#pragma once

#include <string>

namespace kvt::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// The directory of this build's binaries ($KVT_BIN_DIR, set by ctest).
std::string BinDir();
// ../shared/data as seen from the source tree ($KVT_SHARED_DATA, set by ctest).
std::string SharedDataDir();

}  // namespace kvt::testing
