#include "daemon/sequence_metrics.h"

#include <algorithm>
#include <atomic>
#include <limits>
#include <map>

namespace kvt::daemon {
namespace {

using protocol::kFetchBuckets;
using protocol::kSequencePolicies;
using protocol::SequenceStatsBlock;

uint64_t Load(const uint64_t& field) {
  // The client writes these concurrently; a relaxed atomic load sees some value it wrote.
  return std::atomic_ref<uint64_t>(const_cast<uint64_t&>(field)).load(std::memory_order_relaxed);
}

uint32_t Load32(const uint32_t& field) {
  return std::atomic_ref<uint32_t>(const_cast<uint32_t&>(field)).load(std::memory_order_relaxed);
}

// Gauges arrive as sums of signed deltas: negative means the client's bookkeeping is off.
uint64_t Gauge(uint64_t raw, uint64_t limit) {
  const auto v = static_cast<int64_t>(raw);
  return v <= 0 ? 0 : std::min(static_cast<uint64_t>(v), limit);
}

uint64_t SatAdd(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

prometheus::ClientMetric::Label L(const char* name, std::string value) { return {name, std::move(value)}; }

}  // namespace

uint64_t SequenceFigures::Policy::steps() const {
  uint64_t n = 0;
  for (uint64_t s : fetch_steps) n = SatAdd(n, s);
  return n;
}

void SequenceFigures::AddGauges(const SequenceFigures& o) {
  sequences = SatAdd(sequences, o.sequences);
  host_tier_heap_bytes = SatAdd(host_tier_heap_bytes, o.host_tier_heap_bytes);
  for (int p = 0; p < kSequencePolicies; ++p) {
    policy[p].bytes = SatAdd(policy[p].bytes, o.policy[p].bytes);
    policy[p].layer_tokens = SatAdd(policy[p].layer_tokens, o.policy[p].layer_tokens);
  }
}

void SequenceFigures::AddCounters(const SequenceFigures& o) {
  for (int p = 0; p < kSequencePolicies; ++p) {
    Policy& a = policy[p];
    const Policy& b = o.policy[p];
    for (int i = 0; i <= kFetchBuckets; ++i) a.fetch_steps[i] = SatAdd(a.fetch_steps[i], b.fetch_steps[i]);
    a.fetch_bytes = SatAdd(a.fetch_bytes, b.fetch_bytes);
    a.hidden_ns = SatAdd(a.hidden_ns, b.hidden_ns);
    a.exposed_ns = SatAdd(a.exposed_ns, b.exposed_ns);
  }
}

void SequenceFigures::KeepLargerCounters(const SequenceFigures& o) {
  for (int p = 0; p < kSequencePolicies; ++p) {
    Policy& a = policy[p];
    const Policy& b = o.policy[p];
    for (int i = 0; i <= kFetchBuckets; ++i) a.fetch_steps[i] = std::max(a.fetch_steps[i], b.fetch_steps[i]);
    a.fetch_bytes = std::max(a.fetch_bytes, b.fetch_bytes);
    a.hidden_ns = std::max(a.hidden_ns, b.hidden_ns);
    a.exposed_ns = std::max(a.exposed_ns, b.exposed_ns);
  }
}

SequenceFigures ReadSequenceStatsBlock(const void* block, uint32_t version) {
  SequenceFigures f;
  const auto& b = *static_cast<const SequenceStatsBlock*>(block);
  if (protocol::SequenceStatsBytes(version) == 0 || Load32(b.magic) != protocol::kSequenceStatsMagic ||
      Load32(b.version) != version) {
    return f;
  }
  f.sequences = Gauge(Load(b.sequences), kMaxSequencesPerClient);
  if (version >= protocol::kSequenceStatsVersion) {
    f.host_tier_heap_bytes = Gauge(Load(b.host_tier_heap_bytes), kMaxReportedBytes);
  }
  for (int p = 0; p < kSequencePolicies; ++p) {
    const protocol::SequenceStatsPolicy& in = b.policy[p];
    SequenceFigures::Policy& out = f.policy[p];
    out.bytes = Gauge(Load(in.bytes), kMaxReportedBytes);
    out.layer_tokens = Gauge(Load(in.layer_tokens), kMaxReportedTokens);
    for (int i = 0; i <= kFetchBuckets; ++i) out.fetch_steps[i] = std::min(Load(in.fetch_steps[i]), kMaxReportedCounter);
    out.fetch_bytes = std::min(Load(in.fetch_bytes), kMaxReportedCounter);
    out.hidden_ns = std::min(Load(in.transfer_hidden_ns), kMaxReportedCounter);
    out.exposed_ns = std::min(Load(in.transfer_exposed_ns), kMaxReportedCounter);
  }
  return f;
}

void SequenceMetrics::Add(Source* source) {
  std::lock_guard lock(mu_);
  live_.insert(source);
}

void SequenceMetrics::Retire(Source* source) {
  std::lock_guard lock(mu_);
  if (live_.erase(source) == 0) return;
  ReadLocked(source);
  retired_.AddCounters(source->seen_);
  source->block_.store(nullptr, std::memory_order_release);
}

SequenceFigures SequenceMetrics::ReadLocked(Source* source) const {
  const void* block = source->block_.load(std::memory_order_acquire);
  if (block == nullptr) return {};
  SequenceFigures now = ReadSequenceStatsBlock(block, source->version_.load(std::memory_order_relaxed));
  source->seen_.KeepLargerCounters(now);
  SequenceFigures out = source->seen_;  // counters: never below what was exported before
  out.sequences = now.sequences;
  out.host_tier_heap_bytes = now.host_tier_heap_bytes;
  for (int p = 0; p < kSequencePolicies; ++p) {
    out.policy[p].bytes = now.policy[p].bytes;
    out.policy[p].layer_tokens = now.policy[p].layer_tokens;
  }
  return out;
}

SequenceFigures SequenceMetrics::Totals() const {
  std::lock_guard lock(mu_);
  SequenceFigures total;
  total.AddCounters(retired_);
  for (Source* s : live_) {
    SequenceFigures f = ReadLocked(s);
    total.AddGauges(f);
    total.AddCounters(f);
  }
  return total;
}

std::vector<prometheus::MetricFamily> SequenceMetrics::Collect() const {
  using prometheus::ClientMetric;
  using prometheus::MetricFamily;
  using prometheus::MetricType;
  SequenceFigures total;
  struct TenantFigures {
    uint64_t sequences = 0;
    uint64_t host_tier_heap_bytes = 0;
  };
  std::map<std::string, TenantFigures> by_tenant;  // tenants with a registered block
  {
    std::lock_guard lock(mu_);
    total.AddCounters(retired_);
    for (Source* s : live_) {
      if (s->block_.load(std::memory_order_acquire) == nullptr) continue;
      SequenceFigures f = ReadLocked(s);
      total.AddGauges(f);
      total.AddCounters(f);
      TenantFigures& t = by_tenant[s->tenant()];
      t.sequences = SatAdd(t.sequences, f.sequences);
      t.host_tier_heap_bytes = SatAdd(t.host_tier_heap_bytes, f.host_tier_heap_bytes);
    }
  }

  std::vector<MetricFamily> out;
  MetricFamily sequences{"kvt_sequences", "Open sequences clients attached to their connection, by tenant",
                         MetricType::Gauge, {}};
  MetricFamily heap{"kvt_sequence_host_tier_heap_bytes",
                    "Bytes of the tenant's shared heaps held by the host tiers of in-client sequences "
                    "(kvt_sequence_open_in_client), by tenant",
                    MetricType::Gauge, {}};
  for (const auto& [tenant, t] : by_tenant) {
    ClientMetric m;
    m.label = {L("tenant", tenant)};
    m.gauge.value = static_cast<double>(t.sequences);
    sequences.metric.push_back(m);
    m.gauge.value = static_cast<double>(t.host_tier_heap_bytes);
    heap.metric.push_back(std::move(m));
  }
  for (MetricFamily* f : {&sequences, &heap}) {
    if (!f->metric.empty()) out.push_back(std::move(*f));
  }

  MetricFamily per_token{"kvt_policy_bytes_per_token",
                         "KV bytes held (all tiers) per token and layer, by the policy of the layer",
                         MetricType::Gauge, {}};
  MetricFamily fetch{"kvt_dominant_token_bytes_per_step",
                     "KV bytes fetched from the host tier per decode step and layer (sparse: dominant tokens)",
                     MetricType::Histogram, {}};
  MetricFamily transfer{"kvt_transfer_seconds_total",
                        "Host-tier transfer time of decode steps; overlap=hidden ran behind compute, "
                        "exposed was waited for",
                        MetricType::Counter, {}};
  for (int p = 0; p < kSequencePolicies; ++p) {
    const SequenceFigures::Policy& f = total.policy[p];
    const std::string policy = protocol::kSequencePolicyNames[p];
    if (f.layer_tokens > 0) {
      ClientMetric m;
      m.label = {L("policy", policy)};
      m.gauge.value = static_cast<double>(f.bytes) / static_cast<double>(f.layer_tokens);
      per_token.metric.push_back(std::move(m));
    }
    if (f.steps() > 0) {
      ClientMetric m;
      m.label = {L("policy", policy)};
      uint64_t cumulative = 0;
      for (int i = 0; i <= kFetchBuckets; ++i) {
        cumulative = SatAdd(cumulative, f.fetch_steps[i]);
        ClientMetric::Bucket b;
        b.cumulative_count = cumulative;
        b.upper_bound = i < kFetchBuckets ? static_cast<double>(protocol::kFetchBucketBase << i)
                                          : std::numeric_limits<double>::infinity();
        m.histogram.bucket.push_back(b);
      }
      m.histogram.sample_count = cumulative;
      m.histogram.sample_sum = static_cast<double>(f.fetch_bytes);
      fetch.metric.push_back(std::move(m));
    }
    if (f.hidden_ns + f.exposed_ns > 0) {
      for (auto [overlap, ns] : {std::pair{"hidden", f.hidden_ns}, std::pair{"exposed", f.exposed_ns}}) {
        ClientMetric m;
        m.label = {L("overlap", overlap), L("policy", policy)};
        m.counter.value = static_cast<double>(ns) / 1e9;
        transfer.metric.push_back(std::move(m));
      }
    }
  }
  for (MetricFamily* f : {&per_token, &fetch, &transfer}) {
    if (!f->metric.empty()) out.push_back(std::move(*f));
  }
  return out;
}

}  // namespace kvt::daemon
