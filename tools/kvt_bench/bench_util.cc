#include "tools/kvt_bench/bench_util.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

namespace kvt::bench {

double Percentile(std::vector<double> s, double q) {
  if (s.empty()) return 0;
  std::sort(s.begin(), s.end());
  size_t i = std::min(s.size() - 1, static_cast<size_t>(q * static_cast<double>(s.size())));
  return s[i];
}

double MeasureMemcpyGbps(uint64_t block, uint64_t working_set, double seconds) {
  std::vector<char> src(working_set, 1), dst(working_set, 2);
  uint64_t blocks = working_set / block, bytes = 0, i = 0;
  auto start = std::chrono::steady_clock::now();
  while (Seconds(std::chrono::steady_clock::now() - start) < seconds) {
    std::memcpy(dst.data() + (i % blocks) * block, src.data() + ((i * 7 + 3) % blocks) * block, block);
    bytes += block;
    ++i;
  }
  return static_cast<double>(bytes) / Seconds(std::chrono::steady_clock::now() - start) / 1e9;
}

std::string MachineDescription() {
  std::ifstream in("/proc/cpuinfo");
  std::string line, model = "unknown CPU";
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  }
  long mem_gib = sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGE_SIZE) / (1L << 30);
  return model + ", " + std::to_string(std::thread::hardware_concurrency()) + " cores, " + std::to_string(mem_gib) +
         " GiB";
}

BenchDaemon::BenchDaemon(const std::string& host_capacity, const std::vector<std::string>& extra_args) {
  char templ[] = "/tmp/kvt-bench-XXXXXX";
  if (!mkdtemp(templ)) return;
  dir_ = templ;
  socket_ = dir_ + "/kvt.sock";
  std::string exe = std::filesystem::read_symlink("/proc/self/exe").parent_path() / "kv-tierd";
  std::vector<std::string> args = {exe, "--socket", socket_, "--metrics-address", "off", "--host-capacity",
                                   host_capacity, "--data-dir", dir_ + "/data", "--log-level", "warn"};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  pid_ = fork();
  if (pid_ == 0) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  for (int i = 0; i < 1000; ++i) {
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, socket_.c_str(), sizeof a.sun_path - 1);
    bool up = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    close(fd);
    if (up) return;
    usleep(10000);
  }
}

BenchDaemon::~BenchDaemon() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
  }
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

}  // namespace kvt::bench
