#include "protocol/handshake.h"

#include <cstring>

namespace kvt::protocol {

Status ValidateTenantName(std::string_view tenant) {
  if (tenant.empty() || tenant.size() >= kTenantMax) {
    return InvalidArgument("tenant name must be 1-" + std::to_string(kTenantMax - 1) +
                           " characters, got " + std::to_string(tenant.size()));
  }
  for (char c : tenant) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return InvalidArgument("tenant name may only use [A-Za-z0-9._-]");
  }
  return Status::Ok();
}

StatusOr<std::string> ReadFixedString(const char* data, size_t capacity) {
  const void* nul = std::memchr(data, '\0', capacity);
  if (nul == nullptr) return InvalidArgument("string field is not NUL-terminated");
  return std::string(data, static_cast<const char*>(nul) - data);
}

}  // namespace kvt::protocol
