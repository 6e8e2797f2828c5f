// DaemonProcess — a real kv-tierd child process for integration tests, on a private socket and
// data directory, metrics on an ephemeral loopback port (or off).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "tests/support/temp_dir.h"

namespace kvt::testing {

struct DaemonOptions {
  std::string host_capacity = "64MiB";
  bool metrics = false;
  std::vector<std::string> extra_args;
};

class DaemonProcess {
 public:
  explicit DaemonProcess(DaemonOptions options = {});
  ~DaemonProcess();  // SIGTERM, then SIGKILL if it lingers

  // Starts the daemon and waits (up to 10 s) until its socket accepts connections.
  bool Start();
  // SIGTERM and wait; returns the exit status (or -1).
  int Stop();
  void Kill();
  bool Alive() const;

  const std::string& socket_path() const { return socket_path_; }
  const std::string& data_dir() const { return data_dir_; }
  int metrics_port() const { return metrics_port_; }
  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }
  std::string Log() const;

 private:
  DaemonOptions options_;
  TempDir dir_;
  std::string socket_path_;
  std::string data_dir_;
  std::string log_path_;
  int metrics_port_ = 0;
  pid_t pid_ = -1;
};

// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
int FreeLoopbackPort();

// Runs `fn` in a forked child and returns the child's pid. The child exits with fn()'s value, and
// is killed if the test process dies first (as is a DaemonProcess's daemon).
pid_t ForkChild(int (*fn)(void*), void* arg);
// Waits for a child; returns its exit code, or 128+signal.
int WaitChild(pid_t pid);

}  // namespace kvt::testing
