// The same through the header-only C++ wrapper, linked against the static archive.
#include <kvt/kvt.hpp>

#include <cstdio>
#include <vector>

int main(int argc, char** argv) {
  uint32_t major = 0;
  kvt_version(&major, nullptr, nullptr);
  std::printf("libkvtier (static) ABI major %u\n", major);
  if (major != KVT_ABI_VERSION_MAJOR) return 1;
  if (argc < 2) return 0;
  kvt_client_options_t o;
  kvt_client_options_init(&o);
  o.socket_path = argv[1];
  kvt::Client client;
  if (auto r = kvt::Client::Open(o, &client); !r) {
    std::fprintf(stderr, "connect: %s\n", r.message.c_str());
    return 1;
  }
  kvt_daemon_stats_t stats;
  if (auto r = client.Stats(&stats); !r) {
    std::fprintf(stderr, "stats: %s\n", r.message.c_str());
    return 1;
  }
  std::printf("daemon protocol %u.%u, %llu clients\n", stats.protocol_version >> 16, stats.protocol_version & 0xffff,
              static_cast<unsigned long long>(stats.clients));
  return stats.clients >= 1 ? 0 : 1;
}
