// The wire-protocol version spoken between libkvtier and kv-tierd.
//
// Major: incompatible changes (entry layouts, handshake). Both sides refuse a different major.
// Minor: compatible additions (new opcodes); a daemon answers unknown opcodes with UNSUPPORTED.
#pragma once

#include <cstdint>

namespace kvt::protocol {

inline constexpr uint16_t kProtocolMajor = 1;
inline constexpr uint16_t kProtocolMinor = 3;  // 1.1: kRegisterSequenceStats, DaemonStats sequence fields
                                               // 1.2: the GPU tier (kGpuPoolInfo, kGpuAcquire, kGpuRelease),
                                               //      DaemonStats gpu fields
                                               // 1.3: SequenceStatsBlock version 2 (host_tier_heap_bytes)
inline constexpr uint32_t kProtocolVersion = (uint32_t{kProtocolMajor} << 16) | kProtocolMinor;

// Storage format version of chunk payloads; part of every namespace fingerprint, so chunks
// written under another format are never returned.
inline constexpr uint32_t kChunkFormatVersion = 1;

}  // namespace kvt::protocol
