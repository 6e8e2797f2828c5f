// InProcessDaemon — the fuzz targets' kv-tierd: started in this process on the first input (so
// that libFuzzer's coverage reaches the daemon), on a socket in a fresh temporary directory, with a
// small host tier, no NVMe tier and no metrics endpoint; stopped at exit. With it, a bystander
// client that stored and pinned chunks before any input: CheckBystander() asserts they still read
// back bit for bit (a bad request from another client loses nothing already stored) and that the
// daemon is back to serving only the bystander (a client that went away left no session behind).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "daemon/daemon.h"
#include "kvt/kvt.hpp"
#include "tests/support/temp_dir.h"

namespace kvt::fuzz {

class InProcessDaemon {
 public:
  static constexpr uint64_t kHeapBytes = 1ull << 20;  // the clients' default (and minimum) heap

  static InProcessDaemon& Get();

  const std::string& socket() const { return socket_; }
  void CheckBystander();

 private:
  InProcessDaemon();
  void Stop();

  std::unique_ptr<testing::TempDir> dir_;  // the socket and data directory; removed by Stop
  std::string socket_;
  std::unique_ptr<daemon::Daemon> daemon_;
  std::thread runner_;
  kvt::Client client_;
  kvt::Namespace ns_;
  std::vector<uint32_t> tokens_;
  std::vector<char> kv_;
};

}  // namespace kvt::fuzz
