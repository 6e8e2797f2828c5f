// Redis Cluster key slots: CRC16 (XMODEM: polynomial 0x1021, initial 0, no reflection) of the key
// modulo 16384, where a key containing "{tag}" with a non-empty tag hashes the tag only (the
// cluster specification's hash-tag rule). Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string_view>

namespace kvt::remote {

inline constexpr uint32_t kClusterSlots = 16384;

uint16_t Crc16Xmodem(std::string_view bytes);
uint16_t KeySlot(std::string_view key);

}  // namespace kvt::remote
