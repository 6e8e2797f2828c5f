#include "tests/integration/monitoring/prometheus_server.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/integration/monitoring/http_get.h"
#include "tests/support/daemon_process.h"

namespace kvt::testing {

std::string FindPrometheusBinary() {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("KVT_PROMETHEUS")) {
    candidates.push_back(env);  // authoritative when set (a path that does not run: no Prometheus)
  } else if (const char* path = std::getenv("PATH")) {
    std::stringstream ss(path);
    for (std::string dir; std::getline(ss, dir, ':');) {
      if (!dir.empty()) candidates.push_back(dir + "/prometheus");
    }
    candidates.push_back("/usr/bin/prometheus");
  }
  for (const auto& c : candidates) {
    if (::access(c.c_str(), X_OK) == 0 && std::filesystem::is_regular_file(c)) return c;
  }
  return "";
}

PrometheusServer::~PrometheusServer() { Stop(); }

Status PrometheusServer::Start(const std::string& shipped_config, const std::string& job,
                               const std::vector<std::string>& targets,
                               const std::string& interval) {
  YAML::Node config;
  try {
    config = YAML::LoadFile(shipped_config);
    config["global"]["scrape_interval"] = interval;
    config["global"]["scrape_timeout"] = interval;
    config["global"]["evaluation_interval"] = interval;
    const auto base = std::filesystem::path(shipped_config).parent_path();
    YAML::Node rules(YAML::NodeType::Sequence);
    for (const auto& r : config["rule_files"])
      rules.push_back((base / r.as<std::string>()).string());
    config["rule_files"] = rules;
    config.remove("alerting");
    bool found = false;
    for (auto sc : config["scrape_configs"]) {
      if (sc["job_name"].as<std::string>() != job) continue;
      found = true;
      YAML::Node labels = sc["static_configs"][0]["labels"];
      YAML::Node static_config;
      for (const auto& t : targets) static_config["targets"].push_back(t);
      if (labels) static_config["labels"] = labels;
      YAML::Node list(YAML::NodeType::Sequence);
      list.push_back(static_config);
      sc["static_configs"] = list;
    }
    if (!found) return InvalidArgument(shipped_config + " has no scrape job '" + job + "'");
  } catch (const std::exception& e) {
    return InvalidArgument("cannot rewrite " + shipped_config + ": " + e.what());
  }
  config_path_ = dir_.File("prometheus.yml");
  {
    std::ofstream out(config_path_);
    YAML::Emitter emitter;
    emitter << config;
    out << emitter.c_str() << "\n";
    if (!out) return IoError("cannot write " + config_path_);
  }

  port_ = FreeLoopbackPort();
  std::vector<std::string> args = {
      binary_, "--config.file=" + config_path_, "--storage.tsdb.path=" + dir_.File("data"),
      "--web.listen-address=127.0.0.1:" + std::to_string(port_), "--log.level=warn"};
  const std::string log = dir_.File("prometheus.log");
  pid_ = ::fork();
  if (pid_ < 0) return ErrnoStatus("fork", errno);
  if (pid_ == 0) {
    if (FILE* f = std::fopen(log.c_str(), "w")) {
      ::dup2(fileno(f), STDOUT_FILENO);
      ::dup2(fileno(f), STDERR_FILENO);
    }
    ::chdir(dir_.path().c_str());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    _exit(127);
  }
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < until) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return Internal("prometheus exited during start-up:\n" + Log());
    }
    auto r = HttpGet(port_, "/-/ready", 1000);
    if (r.ok() && r->status == 200) return Status::Ok();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  Stop();
  return Timeout("prometheus not ready within 30 s:\n" + Log());
}

void PrometheusServer::Stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  for (int i = 0; i < 200; ++i) {  // 10 s
    if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

std::string PrometheusServer::Log() const {
  std::ifstream in(dir_.File("prometheus.log"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace kvt::testing
