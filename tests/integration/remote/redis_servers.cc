#include "tests/integration/remote/redis_servers.h"

#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <sstream>
#include <thread>

namespace kvt::testing {
namespace {

bool Ping(int port) {
  timeval tv{0, 200000};
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port, tv);
  if (!c || c->err) {
    if (c) redisFree(c);
    return false;
  }
  redisSetTimeout(c, tv);
  auto* r = static_cast<redisReply*>(redisCommand(c, "PING"));
  // PONG, or NOAUTH from a server with a password: either way it is serving.
  bool ok = r && (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR);
  if (r) freeReplyObject(r);
  redisFree(c);
  return ok;
}

std::string ShellQuote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

bool PortFree(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

int FreeLoopbackPortForRedis() {
  static std::mt19937 rng(static_cast<uint32_t>(::getpid()) * 2654435761u ^
                          static_cast<uint32_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
  for (int i = 0; i < 1000; ++i) {
    int p = 20000 + static_cast<int>(rng() % 20000);
    if (PortFree(p) && PortFree(p + 10000)) return p;
  }
  return 0;
}

bool RedisInstalled() { return ::access("/usr/bin/redis-server", X_OK) == 0 && ::access("/usr/bin/redis-cli", X_OK) == 0; }

RedisServer::RedisServer(int port, bool cluster, std::vector<std::string> extra_args)
    : port_(port), cluster_(cluster), extra_(std::move(extra_args)) {}

RedisServer::~RedisServer() { Stop(); }

bool RedisServer::Start() {
  std::vector<std::string> args = {"/usr/bin/redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1",
                                   "--dir", dir_.path(), "--save", "", "--appendonly", "no", "--daemonize", "no",
                                   "--protected-mode", "no", "--logfile", dir_.File("redis.log")};
  if (cluster_) {
    for (const char* a : {"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout",
                          "1000", "--cluster-require-full-coverage", "no"}) {
      args.push_back(a);
    }
  }
  for (const auto& a : extra_) args.push_back(a);
  pid_ = ::fork();
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a crashed test
    int devnull = ::open("/dev/null", O_RDWR);
    ::dup2(devnull, STDIN_FILENO);
    ::dup2(devnull, STDOUT_FILENO);
    ::dup2(devnull, STDERR_FILENO);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    _exit(127);
  }
  for (int i = 0; i < 100; ++i) {
    int status;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    if (Ping(port_)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

void RedisServer::Stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  for (int i = 0; i < 100; ++i) {
    int status;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  Kill();
}

void RedisServer::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

std::string RedisCli(int port, const std::vector<std::string>& args, int* rc) {
  std::string cmd = "timeout 20 /usr/bin/redis-cli -h 127.0.0.1 -p " + std::to_string(port);
  for (const auto& a : args) cmd += " " + ShellQuote(a);
  cmd += " 2>&1";
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) {
    if (rc) *rc = -1;
    return out;
  }
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = ::pclose(p);
  if (rc) *rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

bool RedisClusterFixture::Start(int shards) {
  for (int i = 0; i < shards; ++i) {
    servers_.push_back(std::make_unique<RedisServer>(FreeLoopbackPortForRedis(), true));
    if (!servers_.back()->Start()) return false;
  }
  std::vector<std::string> args = {"--cluster", "create"};
  for (auto& s : servers_) args.push_back(s->endpoint());
  for (const char* a : {"--cluster-replicas", "0", "--cluster-yes"}) args.push_back(a);
  int rc = 0;
  std::string out = RedisCli(servers_[0]->port(), args, &rc);
  if (rc != 0) {
    std::fprintf(stderr, "redis-cli --cluster create failed:\n%s\n", out.c_str());
    return false;
  }
  // Bounded wait until every node agrees the cluster is up.
  for (int i = 0; i < 200; ++i) {
    bool ok = true;
    for (auto& s : servers_) {
      if (RedisCli(s->port(), {"CLUSTER", "INFO"}).find("cluster_state:ok") == std::string::npos) ok = false;
    }
    if (ok) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

void RedisClusterFixture::Stop() {
  for (auto& s : servers_) s->Stop();
}

std::vector<std::string> RedisClusterFixture::endpoints() const {
  std::vector<std::string> e;
  for (const auto& s : servers_) e.push_back(s->endpoint());
  return e;
}

std::vector<std::string> RedisClusterFixture::Keys(const std::string& pattern) {
  std::vector<std::string> keys;
  for (auto& s : servers_) {
    if (!s->Alive()) continue;
    std::istringstream in(RedisCli(s->port(), {"--scan", "--pattern", pattern}));
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty()) keys.push_back(line);
    }
  }
  return keys;
}

int RedisClusterFixture::PortOf(const std::string& key) {
  for (auto& s : servers_) {
    // "1" from the owner; the others answer MOVED or 0.
    if (s->Alive() && RedisCli(s->port(), {"EXISTS", key}).rfind("1", 0) == 0) return s->port();
  }
  return -1;
}

namespace {

redisContext* Connect(int port) {
  timeval tv{2, 0};
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port, tv);
  if (!c || c->err) {
    if (c) redisFree(c);
    return nullptr;
  }
  redisSetTimeout(c, tv);
  return c;
}

}  // namespace

bool RedisClusterFixture::RawGet(const std::string& key, std::string* value) {
  for (auto& s : servers_) {
    if (!s->Alive()) continue;
    redisContext* c = Connect(s->port());
    if (!c) continue;
    auto* r = static_cast<redisReply*>(redisCommand(c, "GET %b", key.data(), key.size()));
    bool ok = r && r->type == REDIS_REPLY_STRING;
    if (ok) value->assign(r->str, r->len);
    if (r) freeReplyObject(r);
    redisFree(c);
    if (ok) return true;
  }
  return false;
}

bool RedisClusterFixture::RawSet(const std::string& key, const std::string& value) {
  for (auto& s : servers_) {
    if (!s->Alive()) continue;
    redisContext* c = Connect(s->port());
    if (!c) continue;
    auto* r = static_cast<redisReply*>(redisCommand(c, "SET %b %b", key.data(), key.size(), value.data(), value.size()));
    bool ok = r && r->type == REDIS_REPLY_STATUS;
    if (r) freeReplyObject(r);
    redisFree(c);
    if (ok) return true;  // the others answered MOVED
  }
  return false;
}

}  // namespace kvt::testing
