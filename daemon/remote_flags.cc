#include "daemon/remote_flags.h"

#include <CLI/CLI.hpp>

#include <charconv>
#include <limits>

namespace kvt::daemon {
namespace {

void AddOne(CLI::App& app, const std::string& name, std::optional<std::string>* out, const std::string& help) {
  app.add_option_function<std::string>(name, [out](const std::string& v) { *out = v; }, help);
}

// A whole decimal number in [min, max]; anything else (sign, blanks, units, overflow) is an error.
template <typename T>
Status ParseNumber(const std::string& flag, const std::string& text, T min, T max, T* out) {
  T v{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || v < min || v > max) {
    return InvalidArgument(flag + ": '" + text + "' is not a whole number in " + std::to_string(min) + "-" +
                           std::to_string(max));
  }
  *out = v;
  return Status::Ok();
}

bool IsEnvName(const std::string& s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  for (char c : s) {
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

}  // namespace

void AddRemoteFlags(CLI::App& app, RemoteFlags* f) {
  AddOne(app, "--remote-endpoints", &f->endpoints,
         "remote tier seeds HOST:PORT[,HOST:PORT...] (cluster nodes or one Redis); 'off': no remote tier");
  AddOne(app, "--remote-user", &f->user, "Redis ACL user of the remote tier");
  AddOne(app, "--remote-password-env", &f->password_env,
         "environment variable holding the Redis password (there is no flag for the password itself)");
  AddOne(app, "--remote-key-prefix", &f->key_prefix, "prefix of every Redis key the remote tier writes");
  AddOne(app, "--remote-ttl-ms", &f->ttl_ms, "expiry of chunks written to Redis; 0: none");
  AddOne(app, "--remote-pool-size", &f->pool_size, "connections per Redis node (1-256)");
  AddOne(app, "--remote-writer-threads", &f->writer_threads, "write-behind threads (1-64)");
  AddOne(app, "--remote-connect-timeout-ms", &f->connect_timeout_ms, "bound on one connect + AUTH");
  AddOne(app, "--remote-timeout-ms", &f->timeout_ms, "bound on one lookup / retrieve / write batch");
  AddOne(app, "--remote-backoff-min-ms", &f->backoff_min_ms, "first reconnection back-off");
  AddOne(app, "--remote-backoff-max-ms", &f->backoff_max_ms, "longest reconnection back-off");
  AddOne(app, "--remote-write-queue", &f->write_queue, "write-behind bytes held, e.g. 256MiB");
  AddOne(app, "--remote-admission", &f->admission, "all|leading|none: which stored chunks are written to Redis");
}

Status ApplyRemoteFlags(const RemoteFlags& f, RemoteConfig* config) {
  RemoteConfig c = *config;  // all or nothing
  if (f.endpoints) {
    c.endpoints.clear();
    if (*f.endpoints != "off") {
      size_t start = 0;
      for (;;) {
        size_t comma = f.endpoints->find(',', start);
        std::string e = f.endpoints->substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (Status s = CheckRemoteEndpoint(e); !s.ok()) return s.WithContext("--remote-endpoints");
        c.endpoints.push_back(e);
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    }
  }
  if (f.user) c.user = *f.user;
  if (f.password_env) {
    if (!IsEnvName(*f.password_env)) {
      return InvalidArgument("--remote-password-env: '" + *f.password_env + "' is not an environment variable name");
    }
    c.password_env = *f.password_env;
    c.password.clear();  // the flag wins over a password written in the file
  }
  if (f.key_prefix) {
    if (f.key_prefix->empty()) return InvalidArgument("--remote-key-prefix must not be empty");
    c.key_prefix = *f.key_prefix;
  }
  constexpr uint32_t kU32 = std::numeric_limits<uint32_t>::max();
  if (f.ttl_ms) KVT_RETURN_IF_ERROR(ParseNumber<uint64_t>("--remote-ttl-ms", *f.ttl_ms, 0, ~0ull >> 1, &c.ttl_ms));
  if (f.pool_size) KVT_RETURN_IF_ERROR(ParseNumber<uint32_t>("--remote-pool-size", *f.pool_size, 1, 256, &c.pool_size));
  if (f.writer_threads) {
    KVT_RETURN_IF_ERROR(ParseNumber<uint32_t>("--remote-writer-threads", *f.writer_threads, 1, 64, &c.writer_threads));
  }
  if (f.connect_timeout_ms) {
    KVT_RETURN_IF_ERROR(
        ParseNumber<uint32_t>("--remote-connect-timeout-ms", *f.connect_timeout_ms, 1, kU32, &c.connect_timeout_ms));
  }
  if (f.timeout_ms) KVT_RETURN_IF_ERROR(ParseNumber<uint32_t>("--remote-timeout-ms", *f.timeout_ms, 1, kU32, &c.timeout_ms));
  if (f.backoff_min_ms) {
    KVT_RETURN_IF_ERROR(ParseNumber<uint32_t>("--remote-backoff-min-ms", *f.backoff_min_ms, 1, kU32, &c.backoff_min_ms));
  }
  if (f.backoff_max_ms) {
    KVT_RETURN_IF_ERROR(ParseNumber<uint32_t>("--remote-backoff-max-ms", *f.backoff_max_ms, 1, kU32, &c.backoff_max_ms));
  }
  if (f.write_queue) {
    auto bytes = ParseByteSize(*f.write_queue);
    if (!bytes.ok()) return bytes.status().WithContext("--remote-write-queue");
    c.write_queue_bytes = *bytes;
  }
  if (f.admission) {
    if (*f.admission != "all" && *f.admission != "leading" && *f.admission != "none") {
      return InvalidArgument("--remote-admission must be all, leading or none, not '" + *f.admission + "'");
    }
    c.admission = *f.admission;
  }
  *config = std::move(c);
  return Status::Ok();
}

}  // namespace kvt::daemon
