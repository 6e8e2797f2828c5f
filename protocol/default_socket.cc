#include "protocol/default_socket.h"

#include <unistd.h>

#include <cstdlib>

namespace kvt::protocol {

std::string DefaultSocketPath() {
  if (const char* s = std::getenv("KVT_SOCKET"); s && *s) return s;
  if (const char* r = std::getenv("XDG_RUNTIME_DIR"); r && *r) return std::string(r) + "/kv-tierd.sock";
  return "/tmp/kv-tierd-" + std::to_string(getuid()) + ".sock";
}

}  // namespace kvt::protocol
