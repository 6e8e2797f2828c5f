// Where kv-tierd listens unless told otherwise, and where libkvtier (and the Python package, which
// asks libkvtier) connects unless told otherwise.
//
//   daemon (DefaultSocketPath):      $KVT_SOCKET, else $XDG_RUNTIME_DIR/kv-tierd.sock,
//                                    else /tmp/kv-tierd-<uid>.sock
//   client (ClientSocketPath):       $KVT_SOCKET, else the system daemon's socket
//                                    /run/kv-tierd/kv-tierd.sock when it exists (the systemd unit in
//                                    packaging/ puts it there), else the daemon's defaults above
//
// A daemon started by hand never listens in /run/kv-tierd (its unit configures that path), and a
// client finds a system daemon without any configuration, before a per-user one.
#pragma once

#include <sys/types.h>

#include <string>

namespace kvt::protocol {

inline constexpr char kSystemSocketPath[] = "/run/kv-tierd/kv-tierd.sock";

// The inputs of the search, for tests; FromEnvironment() reads the real ones.
struct SocketSearch {
  std::string kvt_socket;       // $KVT_SOCKET ("" when unset)
  std::string xdg_runtime_dir;  // $XDG_RUNTIME_DIR ("" when unset)
  std::string system_socket = kSystemSocketPath;
  uid_t uid = 0;
  static SocketSearch FromEnvironment();
};

std::string DaemonSocketPath(const SocketSearch& search);
// Takes the system socket when a socket file is there and reachable (stat succeeds).
std::string ClientSocketPath(const SocketSearch& search);

std::string DefaultSocketPath();  // DaemonSocketPath(SocketSearch::FromEnvironment())
std::string ClientSocketPath();   // ClientSocketPath(SocketSearch::FromEnvironment())

}  // namespace kvt::protocol
