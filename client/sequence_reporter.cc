#include "client/sequence_reporter.h"

#include <algorithm>

#include "include/kvt/kvt.h"

namespace kvt::client {

SequenceReporter::SequenceReporter(std::shared_ptr<SequenceStatsPublisher> publisher, sequence::Sequence& seq,
                                   const HeapHostTierMemory* heap_memory)
    : publisher_(std::move(publisher)), heap_memory_(heap_memory), fetched_(seq.attention_fetch_bytes()) {
  const sequence::TransferStats t = seq.scheduler().stats();
  for (int p = 0; p < sequence::kLayerKinds; ++p) {
    hidden_ns_[p] = static_cast<int64_t>(t.hidden_by_kind_s[p] * 1e9);
    exposed_ns_[p] = std::max<int64_t>(static_cast<int64_t>(t.waited_by_kind_s[p] * 1e9) - hidden_ns_[p], 0);
  }
  SequenceStatsPublisher::Delta d;
  d.sequences = 1;
  Refresh(seq, &d);
  RefreshHeap(&d);
  publisher_->Apply(d);
}

SequenceReporter::~SequenceReporter() {
  SequenceStatsPublisher::Delta d;
  d.sequences = -1;
  d.host_tier_heap_bytes = -static_cast<int64_t>(heap_bytes_);
  for (const Layer& l : layers_) {
    d.bytes[l.policy] -= static_cast<int64_t>(l.bytes);
    d.layer_tokens[l.policy] -= static_cast<int64_t>(l.tokens);
  }
  publisher_->Apply(d);
}

void SequenceReporter::After(sequence::Sequence& seq, int layer, bool step) {
  const bool known_layer = layer >= 0 && static_cast<size_t>(layer) < layers_.size();
  const bool may_transfer = !known_layer || layers_[static_cast<size_t>(layer)].policy == KVT_LAYER_POLICY_OFFLOAD ||
                            layers_[static_cast<size_t>(layer)].policy == KVT_LAYER_POLICY_SPARSE;
  if (known_layer && !step && !may_transfer) {  // the common no-op (a hint to a resident layer)
    const Layer& l = layers_[static_cast<size_t>(layer)];
    if (seq.stored_bytes(layer) == l.bytes && static_cast<uint64_t>(std::max<int64_t>(seq.tokens(layer), 0)) == l.tokens) {
      return;
    }
  }
  SequenceStatsPublisher::Delta d;
  if (layer < 0 || static_cast<size_t>(layer) >= layers_.size()) {
    Refresh(seq, &d);
  } else {
    RefreshLayer(seq, static_cast<size_t>(layer), &d);
  }
  const uint64_t fetched = seq.attention_fetch_bytes();
  if (step && layer >= 0 && static_cast<size_t>(layer) < layers_.size()) {
    const int policy = layers_[static_cast<size_t>(layer)].policy;
    if (policy == KVT_LAYER_POLICY_OFFLOAD || policy == KVT_LAYER_POLICY_SPARSE) {
      d.fetch_policy = policy;
      d.fetch_bytes = fetched >= fetched_ ? fetched - fetched_ : 0;
    }
  }
  fetched_ = fetched;
  RefreshHeap(&d);  // the host tier grows with the offload and sparse layers' appends
  // Only offload and sparse layers (and suspend, which drains) wait for transfers: skip the
  // scheduler's lock for the others, and the publisher's when nothing changed.
  if (!may_transfer) {
    if (!d.Empty()) publisher_->Apply(d);
    return;
  }
  const sequence::TransferStats t = seq.scheduler().stats();
  for (int p = 0; p < sequence::kLayerKinds; ++p) {
    const auto waited_ns = static_cast<int64_t>(t.waited_by_kind_s[p] * 1e9);
    const auto hidden_ns = static_cast<int64_t>(t.hidden_by_kind_s[p] * 1e9);
    const int64_t exposed_ns = std::max<int64_t>(waited_ns - hidden_ns, 0);
    d.hidden_ns[p] = std::max<int64_t>(hidden_ns - hidden_ns_[p], 0);
    d.exposed_ns[p] = std::max<int64_t>(exposed_ns - exposed_ns_[p], 0);
    hidden_ns_[p] += d.hidden_ns[p];
    exposed_ns_[p] += d.exposed_ns[p];
  }
  if (!d.Empty()) publisher_->Apply(d);
}

void SequenceReporter::Refresh(const sequence::Sequence& seq, SequenceStatsPublisher::Delta* d) {
  // A resume may bring another plan: withdraw what the old layers held, then add the new ones.
  for (const Layer& l : layers_) {
    d->bytes[l.policy] -= static_cast<int64_t>(l.bytes);
    d->layer_tokens[l.policy] -= static_cast<int64_t>(l.tokens);
  }
  layers_.assign(static_cast<size_t>(seq.plan().num_layers()), Layer{});
  for (size_t l = 0; l < layers_.size(); ++l) {
    layers_[l].policy = sequence::StatsSlot(seq.plan().layers[l].kind);  // tale: kivi, kvcompose: full
    RefreshLayer(seq, l, d);
  }
}

void SequenceReporter::RefreshHeap(SequenceStatsPublisher::Delta* d) {
  if (heap_memory_ == nullptr) return;
  const uint64_t now = heap_memory_->held_bytes();
  d->host_tier_heap_bytes += static_cast<int64_t>(now) - static_cast<int64_t>(heap_bytes_);
  heap_bytes_ = now;
}

void SequenceReporter::RefreshLayer(const sequence::Sequence& seq, size_t l, SequenceStatsPublisher::Delta* d) {
  Layer& layer = layers_[l];
  const uint64_t bytes = seq.stored_bytes(static_cast<int>(l));
  const auto tokens = static_cast<uint64_t>(std::max<int64_t>(seq.tokens(static_cast<int>(l)), 0));
  d->bytes[layer.policy] += static_cast<int64_t>(bytes) - static_cast<int64_t>(layer.bytes);
  d->layer_tokens[layer.policy] += static_cast<int64_t>(tokens) - static_cast<int64_t>(layer.tokens);
  layer.bytes = bytes;
  layer.tokens = tokens;
}

}  // namespace kvt::client
