// The Prometheus families that several tiers report into (host, gpu, nvme, remote), spelled once.
//
// A family is registered by the first tier that asks for it and found again by the others
// (prometheus-cpp hands back the registered family for a name), so a shared family's name, type
// and help must agree in every tier: these constants are the only place they are written. Each
// tier adds its own series with its `tier` label (and `reason` or `op` where the family has
// one). Tier-specific families go through the (name, help) overloads.
//
// Threading: registration, like prometheus-cpp's, is safe from any thread; the returned metric
// lives as long as the registry.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <string>

namespace kvt::tiering::metrics {

struct FamilySpec {
  const char* name;
  const char* help;
};

// Counters.
inline constexpr FamilySpec kHits{"kvt_tier_hits_total", "Chunk hits by tier"};
inline constexpr FamilySpec kMisses{"kvt_tier_misses_total", "Chunk misses by tier"};
inline constexpr FamilySpec kChunksStored{"kvt_chunks_stored_total",
                                          "Chunks newly stored, by tier"};
inline constexpr FamilySpec kBytesWritten{"kvt_bytes_written_total",
                                          "Payload bytes written, by tier"};
inline constexpr FamilySpec kBytesRead{"kvt_bytes_read_total", "Payload bytes read, by tier"};
inline constexpr FamilySpec kEvictions{"kvt_evictions_total", "Chunks evicted, by tier and reason"};
inline constexpr FamilySpec kChecksumFailures{"kvt_checksum_failures_total",
                                              "Chunks that failed verification, by tier"};
inline constexpr FamilySpec kIoErrors{"kvt_io_errors_total", "I/O errors by tier and operation"};
// Gauges.
inline constexpr FamilySpec kCapacityBytes{"kvt_tier_capacity_bytes",
                                           "Configured capacity by tier"};
inline constexpr FamilySpec kUsedBytes{"kvt_tier_used_bytes", "Bytes in use by tier"};
inline constexpr FamilySpec kChunks{"kvt_tier_chunks", "Resident chunks by tier"};
inline constexpr FamilySpec kPinnedChunks{"kvt_tier_pinned_chunks", "Pinned chunks by tier"};

// The series of `family` with `labels`, registering the family on first use.
prometheus::Counter& AddCounter(prometheus::Registry& registry, FamilySpec family,
                                const prometheus::Labels& labels);
prometheus::Gauge& AddGauge(prometheus::Registry& registry, FamilySpec family,
                            const prometheus::Labels& labels);
// A tier's own family (named and explained where it is used).
prometheus::Counter& AddCounter(prometheus::Registry& registry, const std::string& name,
                                const std::string& help, const prometheus::Labels& labels);
prometheus::Gauge& AddGauge(prometheus::Registry& registry, const std::string& name,
                            const std::string& help, const prometheus::Labels& labels);

}  // namespace kvt::tiering::metrics
