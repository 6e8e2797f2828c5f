// kv-tierd's YAML configuration file (daemon/config.h): what an operator writes, typos included.
// Properties: LoadConfigFile refuses with an error that names the file, or applies the file; it
// never throws (yaml-cpp's exceptions stay inside) and never aborts.
#include <fstream>
#include <iterator>
#include <string>

#include "daemon/config.h"
#include "tests/fuzz/fuzz_target.h"
#include "tests/support/temp_dir.h"

namespace {

std::string InputPath() {
  static const kvt::testing::TempDir dir;
  return dir.File("config.yaml");
}

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  const size_t at = s.find(from);
  return at == std::string::npos ? s : s.replace(at, from.size(), to);
}

}  // namespace

namespace kvt::fuzz {

std::vector<std::vector<uint8_t>> Seeds() {
  std::ifstream in(std::string(KVT_FUZZ_SOURCE_DIR) + "/packaging/config.yaml");
  KVT_FUZZ_CHECK(in.good(), "packaging/config.yaml");
  const std::string packaged((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return {
      Bytes(packaged),
      Bytes(Replace(packaged, "allowed_groups: [kvtier]", "allowed_groups: [root]\nallowed_uids: [0, 1001]")),
      Bytes("socket: /tmp/kvt.sock\nhost_capacity: 1GiB\ngpu_pool: 2GiB\ngpu_device: 0\n"
            "nvme:\n  enabled: true\n  capacity: 8GiB\n  segment_size: 64MiB\n  admission: retrieved\n"
            "  flush_interval_ms: 500\n  queue_depth: 64\n  io_backend: io_uring\n  promote: false\n  staging: 32MiB\n"
            "remote:\n  endpoints: [\"127.0.0.1:7000\", \"127.0.0.1:7001\"]\n  user: kvtier\n  password_env: PW\n"
            "  key_prefix: \"k:\"\n  ttl_ms: 60000\n  pool_size: 2\n  writer_threads: 2\n  timeout_ms: 250\n"
            "  write_queue: 64MiB\n  admission: leading\n  admit_leading_chunks: 8\n"),
  };
}

}  // namespace kvt::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = InputPath();
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    KVT_FUZZ_CHECK(out.good(), "writing the input file");
  }
  kvt::daemon::DaemonConfig config = kvt::daemon::DefaultConfig();
  const kvt::Status s = kvt::daemon::LoadConfigFile(path, &config);
  if (!s.ok()) {
    KVT_FUZZ_CHECK(s.message().find(path) != std::string::npos || s.message().find("configuration") != std::string::npos,
                   "a refused configuration names the file: " + s.ToString());
    return 0;
  }
  kvt::fuzz::CountAccepted();
  return 0;
}
