// protocol/default_socket: a client finds the system daemon's socket (/run/kv-tierd, from the
// systemd unit) before $XDG_RUNTIME_DIR and /tmp; $KVT_SOCKET wins over everything; the daemon's
// own default never is the system path. The system path is a parameter here, pointed at a real
// socket file in a temporary directory.
#include "protocol/default_socket.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "include/kvt/kvt.h"

namespace kvt::protocol {
namespace {

class TempSocket {
 public:
  TempSocket() {
    char tmpl[] = "/tmp/kvt-default-socket-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    path_ = dir_ + "/kv-tierd.sock";
    fd_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path_.c_str(), sizeof a.sun_path - 1);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  }
  ~TempSocket() {
    ::close(fd_);
    ::unlink(path_.c_str());
    ::unlink((dir_ + "/plain-file").c_str());
    ::rmdir(dir_.c_str());
  }
  const std::string& path() const { return path_; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_, path_;
  int fd_ = -1;
};

TEST(DefaultSocket, ClientPrefersTheSystemDaemonThenXdgThenTmp) {
  TempSocket system;
  SocketSearch s;
  s.system_socket = system.path();
  s.xdg_runtime_dir = "/run/user/1234";
  s.uid = 1234;
  EXPECT_EQ(ClientSocketPath(s), system.path());
  EXPECT_EQ(DaemonSocketPath(s), "/run/user/1234/kv-tierd.sock") << "a hand-started daemon stays per-user";

  s.kvt_socket = "/somewhere/else.sock";
  EXPECT_EQ(ClientSocketPath(s), "/somewhere/else.sock");
  EXPECT_EQ(DaemonSocketPath(s), "/somewhere/else.sock");

  s.kvt_socket.clear();
  s.system_socket = system.dir() + "/absent.sock";
  EXPECT_EQ(ClientSocketPath(s), "/run/user/1234/kv-tierd.sock");
  s.xdg_runtime_dir.clear();
  EXPECT_EQ(ClientSocketPath(s), "/tmp/kv-tierd-1234.sock");
  EXPECT_EQ(DaemonSocketPath(s), "/tmp/kv-tierd-1234.sock");

  // A plain file where the system socket would be is not a daemon.
  const std::string plain = system.dir() + "/plain-file";
  std::fclose(std::fopen(plain.c_str(), "w"));
  s.system_socket = plain;
  EXPECT_EQ(ClientSocketPath(s), "/tmp/kv-tierd-1234.sock");
}

TEST(DefaultSocket, TheCAbiReportsWhatTheClientUses) {
  ::setenv("KVT_SOCKET", "/x/y.sock", 1);
  char buf[64];
  EXPECT_EQ(kvt_default_socket_path(buf, sizeof buf), 9u);
  EXPECT_STREQ(buf, "/x/y.sock");
  char tiny[4] = "abc";
  EXPECT_EQ(kvt_default_socket_path(tiny, sizeof tiny), 9u) << "the length, even when it does not fit";
  EXPECT_STREQ(tiny, "abc") << "nothing written when it does not fit";
  ::unsetenv("KVT_SOCKET");
  EXPECT_EQ(std::string(buf, kvt_default_socket_path(buf, sizeof buf)), ClientSocketPath());
}

}  // namespace
}  // namespace kvt::protocol
