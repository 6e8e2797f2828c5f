#include "protocol/default_socket.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

namespace kvt::protocol {
namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

bool IsSocket(const std::string& path) {
  struct stat st {};
  return !path.empty() && ::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

}  // namespace

SocketSearch SocketSearch::FromEnvironment() {
  SocketSearch s;
  s.kvt_socket = Env("KVT_SOCKET");
  s.xdg_runtime_dir = Env("XDG_RUNTIME_DIR");
  s.uid = ::getuid();
  return s;
}

std::string DaemonSocketPath(const SocketSearch& s) {
  if (!s.kvt_socket.empty()) return s.kvt_socket;
  if (!s.xdg_runtime_dir.empty()) return s.xdg_runtime_dir + "/kv-tierd.sock";
  return "/tmp/kv-tierd-" + std::to_string(s.uid) + ".sock";
}

std::string ClientSocketPath(const SocketSearch& s) {
  if (!s.kvt_socket.empty()) return s.kvt_socket;
  if (IsSocket(s.system_socket)) return s.system_socket;
  return DaemonSocketPath(s);
}

std::string DefaultSocketPath() { return DaemonSocketPath(SocketSearch::FromEnvironment()); }
std::string ClientSocketPath() { return ClientSocketPath(SocketSearch::FromEnvironment()); }

}  // namespace kvt::protocol
