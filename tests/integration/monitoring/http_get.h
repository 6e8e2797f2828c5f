// HttpGet — a minimal HTTP/1.0 GET to 127.0.0.1 for tests (Prometheus's API, /metrics).
// Blocking, bounded by timeout_ms for connect, send and every read; loopback only.
#pragma once

#include <string>

#include "common/status_or.h"

namespace kvt::testing {

struct HttpResponse {
  int status = 0;    // 200, 400, ...
  std::string body;  // everything after the header block
};

// GET http://127.0.0.1:<port><target>. An error Status only when no HTTP answer came back.
StatusOr<HttpResponse> HttpGet(int port, const std::string& target, int timeout_ms = 5000);

// Percent-encodes a query-string value (RFC 3986 unreserved characters pass through).
std::string UrlEncode(const std::string& s);

}  // namespace kvt::testing
