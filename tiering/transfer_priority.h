// Transfer priorities, most urgent first: a decode step waits on a demand read; a prefetch is for
// the next layer or request; write-back (demotion) must happen but nobody waits on it; background
// work (compaction) only uses what is left.
#pragma once

#include <cstdint>
#include <string_view>

namespace kvt::tiering {

enum class TransferPriority : uint8_t { kDemand = 0, kPrefetch = 1, kWriteBack = 2, kBackground = 3 };
inline constexpr int kTransferPriorities = 4;

inline std::string_view TransferPriorityName(TransferPriority p) {
  switch (p) {
    case TransferPriority::kDemand: return "demand";
    case TransferPriority::kPrefetch: return "prefetch";
    case TransferPriority::kWriteBack: return "writeback";
    case TransferPriority::kBackground: return "background";
  }
  return "unknown";
}

}  // namespace kvt::tiering
