// Where kv-tierd listens unless told otherwise, and where libkvtier looks first:
// $KVT_SOCKET, else $XDG_RUNTIME_DIR/kv-tierd.sock, else /tmp/kv-tierd-<uid>.sock.
#pragma once

#include <string>

namespace kvt::protocol {

std::string DefaultSocketPath();

}  // namespace kvt::protocol
