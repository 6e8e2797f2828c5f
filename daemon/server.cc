#include "daemon/server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "protocol/fd_passing.h"
#include "protocol/version.h"

namespace kvt::daemon {

namespace {

// The supplementary groups of a process (the "Groups:" line of /proc/<pid>/status). The socket
// file's mode already limits who may connect; this lets members of an allowed group in
// through the daemon's own check too, whatever their primary group.
std::vector<uint32_t> SupplementaryGroups(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  std::vector<uint32_t> groups;
  while (std::getline(in, line)) {
    if (line.rfind("Groups:", 0) != 0) continue;
    std::istringstream fields(line.substr(7));
    uint32_t gid;
    while (fields >> gid) groups.push_back(gid);
    break;
  }
  return groups;
}

}  // namespace

namespace asio = boost::asio;
using stream = asio::local::stream_protocol;

struct Server::Connection {
  explicit Connection(asio::io_context& io) : socket(io), timer(io) {}
  stream::socket socket;
  asio::steady_timer timer;
  protocol::HelloRequest hello{};
  uint64_t session_id = 0;
  char sink = 0;
};

Server::Server(const DaemonConfig& config, SessionServices services)
    : config_(config), services_(services), acceptor_(io_) {}

Server::~Server() {
  Shutdown();
  if (listening_) ::unlink(config_.socket_path.c_str());
}

Status Server::Listen() {
  const std::string& path = config_.socket_path;
  // A socket file that accepts connections belongs to a live daemon: refuse to steal it.
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return AlreadyExists("'" + path + "' exists and is not a socket");
    int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    bool live = ::connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(probe);
    if (live) return AlreadyExists("socket '" + path + "' is in use by a running daemon");
    ::unlink(path.c_str());  // stale, left by a daemon that died
  }
  boost::system::error_code ec;
  acceptor_.open(stream(), ec);
  if (!ec) acceptor_.bind(stream::endpoint(path), ec);
  if (ec) return PermissionDenied("cannot bind socket '" + path + "': " + ec.message());
  listening_ = true;
  if (::chmod(path.c_str(), config_.socket_mode) != 0) return ErrnoStatus("chmod(" + path + ")", errno);
  acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return IoError("listen on '" + path + "': " + ec.message());
  Accept();
  return Status::Ok();
}

void Server::Run() {
  auto guard = asio::make_work_guard(io_);
  io_.run();
}

void Server::Shutdown() {
  asio::post(io_, [this] {
    boost::system::error_code ec;
    acceptor_.close(ec);
    std::map<uint64_t, std::unique_ptr<Session>> sessions;
    {
      std::lock_guard lock(mu_);
      sessions.swap(sessions_);
      heap_bytes_in_use_ = 0;
    }
    for (auto& [id, s] : sessions) s->Stop();
    io_.stop();
  });
}

size_t Server::session_count() const {
  std::lock_guard lock(mu_);
  return sessions_.size();
}

void Server::Accept() {
  auto conn = std::make_shared<Connection>(io_);
  acceptor_.async_accept(conn->socket, [this, conn](const boost::system::error_code& ec) {
    if (ec == asio::error::operation_aborted) return;
    if (!ec) StartHandshake(conn);
    else spdlog::warn("accept: {}", ec.message());
    Accept();
  });
}

void Server::StartHandshake(std::shared_ptr<Connection> conn) {
  conn->timer.expires_after(std::chrono::milliseconds(config_.handshake_timeout_ms));
  conn->timer.async_wait([conn](const boost::system::error_code& ec) {
    if (ec) return;  // cancelled: the handshake finished in time
    boost::system::error_code ignored;
    conn->socket.close(ignored);  // a client that never says hello is dropped
  });
  asio::async_read(conn->socket, asio::buffer(&conn->hello, sizeof conn->hello),
                   [this, conn](const boost::system::error_code& ec, size_t) {
                     conn->timer.cancel();
                     if (ec) {
                       services_.metrics->BadRequest("handshake");
                       return;  // closed, timed out, or sent less than a hello
                     }
                     FinishHandshake(conn);
                   });
}

void Server::Refuse(Connection& conn, const Status& why) {
  services_.metrics->BadRequest("handshake");
  spdlog::warn("refusing client: {}", why.ToString());
  protocol::HelloReply reply{};
  reply.magic = protocol::kReplyMagic;
  reply.protocol_version = protocol::kProtocolVersion;
  reply.status = static_cast<uint32_t>(why.code());
  std::strncpy(reply.message, why.message().c_str(), sizeof reply.message - 1);
  protocol::SendWithFds(conn.socket.native_handle(), &reply, sizeof reply, {},
                        Deadline::After(std::chrono::seconds(1)))
      .IgnoreError();
  boost::system::error_code ignored;
  conn.socket.close(ignored);
}

StatusOr<PeerIdentity> Server::CheckPeer(int fd) const {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return ErrnoStatus("SO_PEERCRED", errno);
  PeerIdentity peer{cred.pid, cred.uid, cred.gid};
  bool allowed = cred.uid == 0 || cred.uid == services_.daemon_uid ||
                 std::find(config_.allowed_uids.begin(), config_.allowed_uids.end(), cred.uid) != config_.allowed_uids.end() ||
                 std::find(config_.allowed_gids.begin(), config_.allowed_gids.end(), cred.gid) != config_.allowed_gids.end();
  if (!allowed && !config_.allowed_gids.empty()) {
    for (uint32_t gid : SupplementaryGroups(cred.pid)) {
      if (std::find(config_.allowed_gids.begin(), config_.allowed_gids.end(), gid) != config_.allowed_gids.end()) {
        allowed = true;
        break;
      }
    }
  }
  if (!allowed) {
    return PermissionDenied("uid " + std::to_string(cred.uid) + " may not use this daemon (allowed_uids/allowed_gids)");
  }
  return peer;
}

void Server::FinishHandshake(std::shared_ptr<Connection> conn) {
  const protocol::HelloRequest& h = conn->hello;
  if (h.magic != protocol::kHelloMagic) return Refuse(*conn, ProtocolMismatch("not a kv-tierd client (bad magic)"));
  uint32_t client_major = h.protocol_version >> 16;
  if (client_major != protocol::kProtocolMajor) {
    return Refuse(*conn, ProtocolMismatch("client speaks protocol " + std::to_string(client_major) + "." +
                                          std::to_string(h.protocol_version & 0xffff) + ", daemon speaks " +
                                          std::to_string(protocol::kProtocolMajor) + "." +
                                          std::to_string(protocol::kProtocolMinor)));
  }
  if (h.reserved != 0) return Refuse(*conn, InvalidArgument("reserved handshake field must be zero"));
  auto tenant = protocol::ReadFixedString(h.tenant, sizeof h.tenant);
  if (!tenant.ok()) return Refuse(*conn, tenant.status().WithContext("tenant"));
  if (Status s = protocol::ValidateTenantName(*tenant); !s.ok()) return Refuse(*conn, s);
  auto peer = CheckPeer(conn->socket.native_handle());
  if (!peer.ok()) return Refuse(*conn, peer.status());

  uint32_t ring = h.ring_entries ? h.ring_entries : config_.default_ring_entries;
  if ((ring & (ring - 1)) != 0 || ring < 8 || ring > config_.max_ring_entries) {
    return Refuse(*conn, InvalidArgument("ring_entries must be a power of two in [8, " +
                                         std::to_string(config_.max_ring_entries) + "]"));
  }
  uint64_t heap = h.heap_bytes ? h.heap_bytes : config_.default_heap_bytes;
  if (heap < (1u << 20) || heap > config_.max_heap_bytes) {
    return Refuse(*conn, InvalidArgument("heap_bytes must be in [1 MiB, " + std::to_string(config_.max_heap_bytes >> 20) +
                                         " MiB]"));
  }
  heap = protocol::AlignUp(heap, protocol::kPageBytes);
  {
    std::lock_guard lock(mu_);
    if (sessions_.size() >= config_.max_clients) {
      return Refuse(*conn, ResourceExhausted("the daemon serves its maximum of " + std::to_string(config_.max_clients) + " clients"));
    }
    if (heap_bytes_in_use_ + heap > config_.total_heap_bytes) {
      return Refuse(*conn, ResourceExhausted("no room for another " + std::to_string(heap >> 20) +
                                             " MiB client heap (total_heap reached)"));
    }
    heap_bytes_in_use_ += heap;
  }
  uint64_t id = next_session_id_.fetch_add(1);
  auto session = Session::Create(id, *tenant, *peer, ring, heap, services_);
  if (!session.ok()) {
    std::lock_guard lock(mu_);
    heap_bytes_in_use_ -= heap;
    return Refuse(*conn, session.status());
  }
  // Counted among the sessions before the client hears back, so that its first request (a status
  // query, say) finds it there. Handshakes run one at a time on the io thread, and nothing ends
  // this session before WatchForClose and set_on_cut below.
  Session* created = session->get();
  {
    std::lock_guard lock(mu_);
    sessions_.emplace(id, std::move(*session));
  }
  protocol::HelloReply reply = created->Reply();
  Status sent = protocol::SendWithFds(conn->socket.native_handle(), &reply, sizeof reply, created->FdsToPass(),
                                      Deadline::After(std::chrono::seconds(2)));
  if (!sent.ok()) {
    spdlog::warn("handshake reply to pid {} failed: {}", peer->pid, sent.ToString());
    EndSession(id);  // never started: returns its heap bytes and frees it
    return;
  }
  spdlog::info("client connected: session {} tenant '{}' pid {} uid {} ({} ring entries, {} MiB heap)", id, *tenant,
               peer->pid, peer->uid, ring, heap >> 20);
  created->set_on_cut([this, conn] {
    asio::post(io_, [this, conn] {
      EndSession(conn->session_id);
      boost::system::error_code ignored;
      conn->socket.close(ignored);
    });
  });
  created->Start();
  conn->session_id = id;
  WatchForClose(conn);
}

void Server::WatchForClose(std::shared_ptr<Connection> conn) {
  // Nothing travels on the socket after the handshake: any completion (EOF, reset, stray bytes)
  // ends the session. The kernel closes the socket when a client dies, SIGKILL included.
  conn->socket.async_read_some(asio::buffer(&conn->sink, 1), [this, conn](const boost::system::error_code& ec, size_t n) {
    if (ec == asio::error::operation_aborted) return;
    if (!ec && n > 0) services_.metrics->BadRequest("socket_data");
    EndSession(conn->session_id);
    boost::system::error_code ignored;
    conn->socket.close(ignored);
  });
}

void Server::EndSession(uint64_t id) {
  std::unique_ptr<Session> session;
  {
    std::lock_guard lock(mu_);
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return;
    session = std::move(it->second);
    sessions_.erase(it);
    heap_bytes_in_use_ -= session->heap_bytes();
  }
  session->Stop();
  spdlog::info("client gone: session {} tenant '{}' pid {}", id, session->tenant(), session->peer().pid);
}

}  // namespace kvt::daemon
