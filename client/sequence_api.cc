// The sequence-plane part of the C ABI (include/kvt/kvt.h, kvt_sequence_*) over
// sequence::Sequence, running in the engine's process. No exception crosses this boundary.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "client/sequence_stats_publisher.h"
#include "include/kvt/kvt.h"
#include "sequence/sequence.h"

static_assert(KVT_LAYER_POLICY_FULL == static_cast<int>(kvt::sequence::LayerKind::kFull));
static_assert(KVT_LAYER_POLICY_OFFLOAD == static_cast<int>(kvt::sequence::LayerKind::kOffload));
static_assert(KVT_LAYER_POLICY_KIVI == static_cast<int>(kvt::sequence::LayerKind::kKivi));
static_assert(KVT_LAYER_POLICY_SPARSE == static_cast<int>(kvt::sequence::LayerKind::kSparse));
static_assert(KVT_LAYER_POLICY_COUNT == kvt::protocol::kSequencePolicies);
static_assert(kvt::sequence::kLayerKinds == kvt::protocol::kSequencePolicies);

namespace kvt::client {
kvt_status_t AbiFail(const kvt::Status& s);  // c_api.cc: sets the thread's last error message
StatusOr<std::shared_ptr<SequenceStatsPublisher>> SequenceStatsOf(kvt_client* client);  // c_api.cc

// What one attached sequence has reported so far, so every update is a delta (the block sums
// the sequences of a client). Used by the sequence's thread only.
class SequenceReporter {
 public:
  // Reports from now on: fetches and transfer time before the attach are not counted.
  SequenceReporter(std::shared_ptr<SequenceStatsPublisher> publisher, sequence::Sequence& seq)
      : publisher_(std::move(publisher)), fetched_(seq.attention_fetch_bytes()) {
    const sequence::TransferStats t = seq.scheduler().stats();
    for (int p = 0; p < sequence::kLayerKinds; ++p) {
      hidden_ns_[p] = static_cast<int64_t>(t.hidden_by_kind_s[p] * 1e9);
      exposed_ns_[p] = std::max<int64_t>(static_cast<int64_t>(t.waited_by_kind_s[p] * 1e9) - hidden_ns_[p], 0);
    }
    SequenceStatsPublisher::Delta d;
    d.sequences = 1;
    Refresh(seq, &d);
    publisher_->Apply(d);
  }
  // Withdraws the gauges (the counters stay: they are totals).
  ~SequenceReporter() {
    SequenceStatsPublisher::Delta d;
    d.sequences = -1;
    for (const Layer& l : layers_) {
      d.bytes[l.policy] -= static_cast<int64_t>(l.bytes);
      d.layer_tokens[l.policy] -= static_cast<int64_t>(l.tokens);
    }
    publisher_->Apply(d);
  }

  // After a call that may have changed `layer` (append, attend, select): its gauges, and for an
  // attend/select (`step`) the bytes it fetched; then the transfer time accounted since the last
  // report. `layer` < 0: every layer (suspend, resume).
  void After(sequence::Sequence& seq, int layer, bool step) {
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

 private:
  struct Layer {
    int policy = 0;
    uint64_t bytes = 0;
    uint64_t tokens = 0;
  };

  void Refresh(const sequence::Sequence& seq, SequenceStatsPublisher::Delta* d) {
    // A resume may bring another plan: withdraw what the old layers held, then add the new ones.
    for (const Layer& l : layers_) {
      d->bytes[l.policy] -= static_cast<int64_t>(l.bytes);
      d->layer_tokens[l.policy] -= static_cast<int64_t>(l.tokens);
    }
    layers_.assign(static_cast<size_t>(seq.plan().num_layers()), Layer{});
    for (size_t l = 0; l < layers_.size(); ++l) {
      layers_[l].policy = static_cast<int>(seq.plan().layers[l].kind);
      RefreshLayer(seq, l, d);
    }
  }
  void RefreshLayer(const sequence::Sequence& seq, size_t l, SequenceStatsPublisher::Delta* d) {
    Layer& layer = layers_[l];
    const uint64_t bytes = seq.stored_bytes(static_cast<int>(l));
    const auto tokens = static_cast<uint64_t>(std::max<int64_t>(seq.tokens(static_cast<int>(l)), 0));
    d->bytes[layer.policy] += static_cast<int64_t>(bytes) - static_cast<int64_t>(layer.bytes);
    d->layer_tokens[layer.policy] += static_cast<int64_t>(tokens) - static_cast<int64_t>(layer.tokens);
    layer.bytes = bytes;
    layer.tokens = tokens;
  }

  std::shared_ptr<SequenceStatsPublisher> publisher_;
  std::vector<Layer> layers_;
  uint64_t fetched_ = 0;
  int64_t hidden_ns_[sequence::kLayerKinds] = {};
  int64_t exposed_ns_[sequence::kLayerKinds] = {};
};

}  // namespace kvt::client

struct kvt_sequence {
  std::unique_ptr<kvt::sequence::Sequence> seq;
  std::unique_ptr<kvt::client::SequenceReporter> reporter;  // while attached to a client

  ~kvt_sequence() {
    reporter.reset();  // withdraws the gauges while seq still exists
  }
  void After(int layer, bool step) {
    if (reporter) reporter->After(*seq, layer, step);
  }
};

namespace {

using kvt::client::AbiFail;

kvt_status_t Done(const kvt::Status& s) { return s.ok() ? KVT_STATUS_OK : AbiFail(s); }

template <typename F>
kvt_status_t Guard(F&& f) noexcept {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return AbiFail(kvt::ResourceExhausted("out of memory in libkvtier"));
  } catch (const std::exception& e) {
    return AbiFail(kvt::Internal(std::string("libkvtier: ") + e.what()));
  } catch (...) {
    return AbiFail(kvt::Internal("libkvtier: unknown exception"));
  }
}

kvt::Status CheckHandle(const kvt_sequence* s) {
  if (s == nullptr || !s->seq) return kvt::InvalidArgument("null sequence handle");
  return kvt::Status::Ok();
}

}  // namespace

extern "C" {

kvt_status_t kvt_sequence_open(const char* plan_text, kvt_sequence_t** out_sequence) {
  return Guard([&]() -> kvt_status_t {
    if (plan_text == nullptr || out_sequence == nullptr) return AbiFail(kvt::InvalidArgument("null argument"));
    *out_sequence = nullptr;
    const size_t len = strnlen(plan_text, (1u << 20) + 1);
    if (len > (1u << 20)) return AbiFail(kvt::InvalidArgument("plan text larger than 1 MiB"));
    auto plan = kvt::sequence::ParsePlan(std::string_view(plan_text, len));
    if (!plan.ok()) return AbiFail(plan.status());
    auto seq = kvt::sequence::Sequence::Open(*plan);
    if (!seq.ok()) return AbiFail(seq.status());
    *out_sequence = new kvt_sequence{std::move(*seq), nullptr};
    return KVT_STATUS_OK;
  });
}

void kvt_sequence_close(kvt_sequence_t* sequence) {
  try {
    delete sequence;
  } catch (...) {
  }
}

kvt_status_t kvt_sequence_append(kvt_sequence_t* s, uint32_t layer, const float* keys, const float* values,
                                 uint32_t tokens) {
  return Guard([&]() -> kvt_status_t {
    if (kvt::Status st = CheckHandle(s); !st.ok()) return AbiFail(st);
    if (tokens > (1u << 30)) return AbiFail(kvt::InvalidArgument("append: too many tokens"));
    kvt::Status st = s->seq->Append(static_cast<int>(layer), keys, values, static_cast<int>(tokens));
    if (st.ok()) s->After(static_cast<int>(layer), /*step=*/false);
    return Done(st);
  });
}

kvt_status_t kvt_sequence_attend(kvt_sequence_t* s, uint32_t layer, const float* query, float* out) {
  return Guard([&]() -> kvt_status_t {
    if (kvt::Status st = CheckHandle(s); !st.ok()) return AbiFail(st);
    kvt::Status st = s->seq->Attend(static_cast<int>(layer), query, out);
    if (st.ok()) s->After(static_cast<int>(layer), /*step=*/true);
    return Done(st);
  });
}

kvt_status_t kvt_sequence_select(kvt_sequence_t* s, uint32_t layer, const float* query, kvt_kv_segment_t* segments,
                                 uint32_t capacity, uint32_t* out_count) {
  return Guard([&]() -> kvt_status_t {
    if (kvt::Status st = CheckHandle(s); !st.ok()) return AbiFail(st);
    if (out_count == nullptr || (segments == nullptr && capacity > 0)) {
      return AbiFail(kvt::InvalidArgument("select: null output"));
    }
    auto sel = s->seq->Select(static_cast<int>(layer), query);
    if (!sel.ok()) return AbiFail(sel.status());
    s->After(static_cast<int>(layer), /*step=*/true);
    *out_count = static_cast<uint32_t>(sel->segments.size());
    for (uint32_t i = 0; i < capacity && i < sel->segments.size(); ++i) {
      const auto& g = sel->segments[i];
      segments[i] = kvt_kv_segment_t{reinterpret_cast<const uint16_t*>(g.keys),
                                     reinterpret_cast<const uint16_t*>(g.values), g.tokens, g.token_stride,
                                     g.head_stride};
    }
    return KVT_STATUS_OK;
  });
}

kvt_status_t kvt_sequence_hint_next(kvt_sequence_t* s, uint32_t layer, const float* speculative_query) {
  return Guard([&]() -> kvt_status_t {
    if (kvt::Status st = CheckHandle(s); !st.ok()) return AbiFail(st);
    kvt::Status st = s->seq->HintNext(static_cast<int>(layer), speculative_query);
    if (st.ok() && s->reporter) s->After(static_cast<int>(layer), /*step=*/false);
    return Done(st);
  });
}

kvt_status_t kvt_sequence_suspend(kvt_sequence_t* s, void** out_image, uint64_t* out_bytes) {
  return Guard([&]() -> kvt_status_t {
    if (kvt::Status st = CheckHandle(s); !st.ok()) return AbiFail(st);
    if (out_image == nullptr || out_bytes == nullptr) return AbiFail(kvt::InvalidArgument("suspend: null output"));
    *out_image = nullptr;
    *out_bytes = 0;
    auto image = s->seq->Suspend();
    s->After(-1, /*step=*/false);  // a suspended sequence holds nothing
    if (!image.ok()) return AbiFail(image.status());
    void* p = std::malloc(std::max<size_t>(image->size(), 1));
    if (p == nullptr) return AbiFail(kvt::ResourceExhausted("suspend: out of memory for the image"));
    std::memcpy(p, image->data(), image->size());
    *out_image = p;
    *out_bytes = image->size();
    return KVT_STATUS_OK;
  });
}

kvt_status_t kvt_sequence_resume(kvt_sequence_t* s, const void* image, uint64_t bytes) {
  return Guard([&]() -> kvt_status_t {
    if (kvt::Status st = CheckHandle(s); !st.ok()) return AbiFail(st);
    if (image == nullptr && bytes > 0) return AbiFail(kvt::InvalidArgument("resume: null image"));
    kvt::Status st = s->seq->Resume(std::span(static_cast<const uint8_t*>(image), static_cast<size_t>(bytes)));
    s->After(-1, /*step=*/false);
    return Done(st);
  });
}

kvt_status_t kvt_sequence_attach(kvt_sequence_t* s, kvt_client_t* client) {
  return Guard([&]() -> kvt_status_t {
    if (kvt::Status st = CheckHandle(s); !st.ok()) return AbiFail(st);
    if (client == nullptr) {
      s->reporter.reset();
      return KVT_STATUS_OK;
    }
    auto publisher = kvt::client::SequenceStatsOf(client);
    if (!publisher.ok()) return AbiFail(publisher.status());
    s->reporter.reset();  // from a previous client
    s->reporter = std::make_unique<kvt::client::SequenceReporter>(std::move(*publisher), *s->seq);
    return KVT_STATUS_OK;
  });
}

void kvt_sequence_image_free(void* image) { std::free(image); }

}  // extern "C"
