// The `--remote-*` command-line flags of kv-tierd: each overrides one key of the YAML `remote:`
// mapping (daemon/config.h, RemoteConfig), so precedence stays defaults < file < flags.
//
//   --remote-endpoints HOST:PORT[,HOST:PORT...]  (`off` clears them: no remote tier)
//   --remote-user NAME               --remote-password-env VAR
//   --remote-key-prefix PREFIX       --remote-ttl-ms N (0: no expiry)
//   --remote-pool-size N             --remote-writer-threads N
//   --remote-connect-timeout-ms N    --remote-timeout-ms N
//   --remote-backoff-min-ms N        --remote-backoff-max-ms N
//   --remote-write-queue SIZE        --remote-admission all|leading|none
//
// There is deliberately no flag for the password itself: a command line is visible to every user
// of the machine (ps, /proc/PID/cmdline). --remote-password-env names the environment variable
// that holds it, and overrides a `password:` written in the file.
//
// AddRemoteFlags registers the flags, ApplyRemoteFlags checks the syntax of the values given
// (ranges are checked with the rest of the configuration by ValidateConfig) and writes them over
// the configuration. Not thread-safe; called once at start-up.
#pragma once

#include <optional>
#include <string>

#include "common/status_or.h"
#include "daemon/config.h"

namespace CLI {
class App;
}

namespace kvt::daemon {

// The raw text of each flag given on the command line (unset: not given).
struct RemoteFlags {
  std::optional<std::string> endpoints, user, password_env, key_prefix, ttl_ms, pool_size, writer_threads,
      connect_timeout_ms, timeout_ms, backoff_min_ms, backoff_max_ms, write_queue, admission;
};

// `flags` must outlive the parse of `app`.
void AddRemoteFlags(CLI::App& app, RemoteFlags* flags);

// INVALID_ARGUMENT naming the flag and the bad value; `config` is left untouched on error.
Status ApplyRemoteFlags(const RemoteFlags& flags, RemoteConfig* config);

}  // namespace kvt::daemon
