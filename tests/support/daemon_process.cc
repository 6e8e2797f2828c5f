#include "tests/support/daemon_process.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace kvt::testing {
namespace {

// In a forked child: SIGKILL when the test process dies, so that a test killed by a sanitizer or
// a crash leaves no daemon or client behind (the check after prctl covers a parent already gone).
// Strictly, PR_SET_PDEATHSIG fires when the forking *thread* ends: fork from a thread that lives
// as long as the child is meant to (the tests fork from their main thread).
void DieWithParent(pid_t parent) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) _exit(127);
}

}  // namespace

int FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

DaemonProcess::DaemonProcess(DaemonOptions options) : options_(std::move(options)) {
  socket_path_ = dir_.File("kvt.sock");
  data_dir_ = dir_.File("data");
  log_path_ = dir_.File("daemon.log");
}

DaemonProcess::~DaemonProcess() {
  if (pid_ > 0) {
    Stop();
  }
}

bool DaemonProcess::Start() {
  std::vector<std::string> args = {BinDir() + "/kv-tierd", "--socket", socket_path_, "--data-dir", data_dir_,
                                   "--host-capacity", options_.host_capacity};
  if (options_.metrics) {
    metrics_port_ = FreeLoopbackPort();
    args.push_back("--metrics-address");
    args.push_back("127.0.0.1:" + std::to_string(metrics_port_));
  } else {
    args.push_back("--metrics-address");
    args.push_back("off");
  }
  for (const auto& a : options_.extra_args) args.push_back(a);
  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ == 0) {
    DieWithParent(parent);
    FILE* log = std::fopen(log_path_.c_str(), "w");
    if (log) {
      ::dup2(fileno(log), STDOUT_FILENO);
      ::dup2(fileno(log), STDERR_FILENO);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    _exit(127);
  }
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < until) {
    int status;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, socket_path_.c_str(), sizeof a.sun_path - 1);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    if (ok) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

int DaemonProcess::Stop() {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  int status = 0;
  for (int i = 0; i < 1000; ++i) {
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Kill();
  return -1;
}

void DaemonProcess::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

bool DaemonProcess::Alive() const { return pid_ > 0 && ::kill(pid_, 0) == 0; }

std::string DaemonProcess::Log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

pid_t ForkChild(int (*fn)(void*), void* arg) {
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid == 0) {
    DieWithParent(parent);
    _exit(fn(arg));
  }
  return pid;
}

int WaitChild(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace kvt::testing
