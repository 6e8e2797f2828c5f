// Server — the control plane: a Unix socket served with Boost.Asio on one thread.
//
// For each connection: read a HelloRequest (bounded by the handshake timeout), check the peer's
// credentials (SO_PEERCRED: root, the daemon's uid, or a configured uid/gid), check the protocol
// version and the tenant name, create a Session and send the reply with its fds. Afterwards the
// socket only tells us when the client goes away (EOF, reset, or death), which stops its session.
// A refused client gets a reply with a status and a readable message, never a silent close.
#pragma once

#include <utility>  // Boost 1.74 Asio uses std::exchange without including it

#include <boost/asio.hpp>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/status.h"
#include "daemon/config.h"
#include "daemon/session.h"

namespace kvt::daemon {

class Server {
 public:
  Server(const DaemonConfig& config, SessionServices services);
  ~Server();

  // Binds the socket (refusing one that a live daemon is using; removing a stale one).
  Status Listen();
  // Serves until Shutdown(); runs the Asio loop on the calling thread.
  void Run();
  // Thread-safe; makes Run() return after stopping every session.
  void Shutdown();

  size_t session_count() const;

 private:
  struct Connection;
  void Accept();
  void StartHandshake(std::shared_ptr<Connection> conn);
  void FinishHandshake(std::shared_ptr<Connection> conn);
  void WatchForClose(std::shared_ptr<Connection> conn);
  void Refuse(Connection& conn, const Status& why);
  StatusOr<PeerIdentity> CheckPeer(int fd) const;
  void EndSession(uint64_t id);

  DaemonConfig config_;
  SessionServices services_;
  boost::asio::io_context io_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  std::atomic<uint64_t> next_session_id_{1};
  mutable std::mutex mu_;
  std::map<uint64_t, std::unique_ptr<Session>> sessions_;
  uint64_t heap_bytes_in_use_ = 0;  // guarded by mu_
  bool listening_ = false;
};

}  // namespace kvt::daemon
