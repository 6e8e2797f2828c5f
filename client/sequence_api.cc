// The sequence-plane part of the C ABI (include/kvt/kvt.h, kvt_sequence_*) over
// sequence::Sequence, running in the engine's process. No exception crosses this boundary.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "client/heap_host_tier_memory.h"
#include "client/internal/abi_guard.h"
#include "client/internal/abi_handles.h"
#include "client/sequence_reporter.h"
#include "include/kvt/kvt.h"
#include "sequence/sequence.h"

static_assert(KVT_LAYER_POLICY_FULL == static_cast<int>(kvt::sequence::LayerKind::kFull));
static_assert(KVT_LAYER_POLICY_OFFLOAD == static_cast<int>(kvt::sequence::LayerKind::kOffload));
static_assert(KVT_LAYER_POLICY_KIVI == static_cast<int>(kvt::sequence::LayerKind::kKivi));
static_assert(KVT_LAYER_POLICY_SPARSE == static_cast<int>(kvt::sequence::LayerKind::kSparse));
static_assert(KVT_LAYER_POLICY_COUNT == kvt::protocol::kSequencePolicies);
static_assert(kvt::sequence::kLayerKinds == kvt::protocol::kSequencePolicies);
static_assert(KVT_KV_MEMORY_DEVICE == static_cast<int>(kvt::sequence::KvMemory::kDevice));
static_assert(KVT_KV_MEMORY_MAPPED_HOST == static_cast<int>(kvt::sequence::KvMemory::kMappedHost));

namespace kvt::client {
StatusOr<std::shared_ptr<SequenceStatsPublisher>> SequenceStatsOf(kvt_client* client);  // c_api.cc

}  // namespace kvt::client

struct kvt_sequence {
  // kvt_sequence_open_in_client: the host tier's memory in the client's heap; outlives `seq`.
  std::unique_ptr<kvt::sequence::HostTierMemory> host_memory;
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

using kvt::client::AbiDone;
using kvt::client::AbiGuard;

kvt::Status CheckHandle(const kvt_sequence* s) {
  if (s == nullptr || !s->seq) return kvt::InvalidArgument("null sequence handle");
  return kvt::Status::Ok();
}

kvt::StatusOr<kvt::sequence::SequencePlan> ParsePlanText(const char* plan_text) {
  const size_t len = strnlen(plan_text, (1u << 20) + 1);
  if (len > (1u << 20)) return kvt::InvalidArgument("plan text larger than 1 MiB");
  return kvt::sequence::ParsePlan(std::string_view(plan_text, len));
}

// The host-tier memory of a sequence in `client`'s shared heap; for a GPU sequence the heap is
// registered for DMA first (once per client).
kvt::StatusOr<std::unique_ptr<kvt::client::HeapHostTierMemory>> HeapMemoryOf(kvt_client* client, int32_t cuda_device) {
  kvt::client::Connection& connection = *client->connection;
  if (cuda_device < 0) {
    return std::make_unique<kvt::client::HeapHostTierMemory>(connection, nullptr, nullptr);
  }
  std::shared_ptr<kvt::client::HeapDmaRegistration> dma;
  {
    std::lock_guard lock(client->gpu_mu);
    if (!client->heap_dma) {
      KVT_ASSIGN_OR_RETURN(client->heap_dma, kvt::client::HeapDmaRegistration::Open(connection, cuda_device));
    }
    dma = client->heap_dma;
  }
  KVT_ASSIGN_OR_RETURN(char* device_base, dma->DeviceBase(cuda_device));
  return std::make_unique<kvt::client::HeapHostTierMemory>(connection, std::move(dma), device_base);
}

}  // namespace

extern "C" {

kvt_status_t kvt_sequence_open(const char* plan_text, kvt_sequence_t** out_sequence) {
  return kvt_sequence_open_on_device(plan_text, -1, out_sequence);
}

kvt_status_t kvt_sequence_open_on_device(const char* plan_text, int32_t cuda_device, kvt_sequence_t** out_sequence) {
  return AbiGuard([&]() -> kvt_status_t {
    if (plan_text == nullptr || out_sequence == nullptr) return AbiFail(kvt::InvalidArgument("null argument"));
    *out_sequence = nullptr;
    auto plan = ParsePlanText(plan_text);
    if (!plan.ok()) return AbiFail(plan.status());
    kvt::sequence::SequenceOptions options;
    options.cuda_device = cuda_device;
    auto seq = kvt::sequence::Sequence::Open(*plan, options);
    if (!seq.ok()) return AbiFail(seq.status());
    *out_sequence = new kvt_sequence{nullptr, std::move(*seq), nullptr};
    return KVT_STATUS_OK;
  });
}

kvt_status_t kvt_sequence_open_in_client(kvt_client_t* client, const char* plan_text, int32_t cuda_device,
                                         kvt_sequence_t** out_sequence) {
  return AbiGuard([&]() -> kvt_status_t {
    if (client == nullptr || plan_text == nullptr || out_sequence == nullptr) {
      return AbiFail(kvt::InvalidArgument("null argument"));
    }
    *out_sequence = nullptr;
    if (cuda_device < -1) return AbiFail(kvt::InvalidArgument("cuda_device: -1 (CPU) or a device ordinal"));
    auto plan = ParsePlanText(plan_text);
    if (!plan.ok()) return AbiFail(plan.status());
    auto memory = HeapMemoryOf(client, cuda_device);
    if (!memory.ok()) return AbiFail(memory.status());
    // Reports as kvt_sequence_attach does; a daemon older than protocol 1.1 has no figures to
    // report to (UNSUPPORTED), and the sequence works the same without.
    auto publisher = kvt::client::SequenceStatsOf(client);
    if (!publisher.ok() && publisher.status().code() != kvt::StatusCode::kUnsupported) {
      return AbiFail(publisher.status());
    }
    kvt::sequence::SequenceOptions options;
    options.cuda_device = cuda_device;
    options.host_memory = memory->get();
    auto seq = kvt::sequence::Sequence::Open(*plan, options);
    if (!seq.ok()) return AbiFail(seq.status());
    const kvt::client::HeapHostTierMemory* heap_memory = memory->get();
    std::unique_ptr<kvt_sequence> s(new kvt_sequence{std::move(*memory), std::move(*seq), nullptr});
    if (publisher.ok()) {
      s->reporter = std::make_unique<kvt::client::SequenceReporter>(std::move(*publisher), *s->seq, heap_memory);
    }
    *out_sequence = s.release();
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
  return AbiGuard([&]() -> kvt_status_t {
    if (kvt::Status st = CheckHandle(s); !st.ok()) return AbiFail(st);
    if (tokens > (1u << 30)) return AbiFail(kvt::InvalidArgument("append: too many tokens"));
    kvt::Status st = s->seq->Append(static_cast<int>(layer), keys, values, static_cast<int>(tokens));
    if (st.ok()) s->After(static_cast<int>(layer), /*step=*/false);
    return AbiDone(st);
  });
}

kvt_status_t kvt_sequence_attend_on_device(kvt_sequence_t* s, uint32_t layer, const float* query, float* out,
                                           void* cuda_stream) {
  return AbiGuard([&]() -> kvt_status_t {
    if (kvt::Status st = CheckHandle(s); !st.ok()) return AbiFail(st);
    kvt::Status st = s->seq->AttendOnDevice(static_cast<int>(layer), query, out, static_cast<CUstream_st*>(cuda_stream));
    if (st.ok()) s->After(static_cast<int>(layer), /*step=*/true);
    return AbiDone(st);
  });
}

kvt_status_t kvt_sequence_append_on_device(kvt_sequence_t* s, uint32_t layer, const float* keys, const float* values,
                                           uint32_t tokens, void* cuda_stream) {
  return AbiGuard([&]() -> kvt_status_t {
    if (kvt::Status st = CheckHandle(s); !st.ok()) return AbiFail(st);
    if (tokens > (1u << 30)) return AbiFail(kvt::InvalidArgument("append on device: too many tokens"));
    kvt::Status st = s->seq->AppendOnDevice(static_cast<int>(layer), keys, values, static_cast<int>(tokens),
                                            static_cast<CUstream_st*>(cuda_stream));
    if (st.ok()) s->After(static_cast<int>(layer), /*step=*/false);
    return AbiDone(st);
  });
}

kvt_status_t kvt_sequence_select_on_device(kvt_sequence_t* s, uint32_t layer, const float* query, void* cuda_stream,
                                           kvt_device_selection_t* out) {
  return AbiGuard([&]() -> kvt_status_t {
    if (kvt::Status st = CheckHandle(s); !st.ok()) return AbiFail(st);
    if (out == nullptr) return AbiFail(kvt::InvalidArgument("select on device: null output"));
    if (out->struct_size < sizeof(kvt_device_selection_t)) {
      return AbiFail(kvt::InvalidArgument("select on device: out_selection->struct_size must be "
                                          "sizeof(kvt_device_selection_t)"));
    }
    const uint32_t size = out->struct_size;
    std::memset(out, 0, sizeof(kvt_device_selection_t));
    out->struct_size = size;
    auto sel = s->seq->SelectOnDevice(static_cast<int>(layer), query, static_cast<CUstream_st*>(cuda_stream));
    if (!sel.ok()) return AbiFail(sel.status());
    constexpr size_t kMax = sizeof(out->segments) / sizeof(out->segments[0]);
    if (sel->segments.size() > kMax) {
      return AbiFail(kvt::Internal("select on device: " + std::to_string(sel->segments.size()) + " segments, more than " +
                                   std::to_string(kMax)));
    }
    s->After(static_cast<int>(layer), /*step=*/true);
    out->count = static_cast<uint32_t>(sel->segments.size());
    out->tokens = sel->tokens;
    for (size_t i = 0; i < sel->segments.size(); ++i) {
      const auto& g = sel->segments[i];
      out->segments[i] = kvt_device_kv_segment_t{reinterpret_cast<const uint16_t*>(g.keys),
                                                 reinterpret_cast<const uint16_t*>(g.values),
                                                 g.tokens,
                                                 g.token_stride,
                                                 g.head_stride,
                                                 static_cast<uint32_t>(sel->memory[i]),
                                                 0};
    }
    return KVT_STATUS_OK;
  });
}

kvt_status_t kvt_sequence_attend(kvt_sequence_t* s, uint32_t layer, const float* query, float* out) {
  return AbiGuard([&]() -> kvt_status_t {
    if (kvt::Status st = CheckHandle(s); !st.ok()) return AbiFail(st);
    kvt::Status st = s->seq->Attend(static_cast<int>(layer), query, out);
    if (st.ok()) s->After(static_cast<int>(layer), /*step=*/true);
    return AbiDone(st);
  });
}

kvt_status_t kvt_sequence_select(kvt_sequence_t* s, uint32_t layer, const float* query, kvt_kv_segment_t* segments,
                                 uint32_t capacity, uint32_t* out_count) {
  return AbiGuard([&]() -> kvt_status_t {
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
  return AbiGuard([&]() -> kvt_status_t {
    if (kvt::Status st = CheckHandle(s); !st.ok()) return AbiFail(st);
    kvt::Status st = s->seq->HintNext(static_cast<int>(layer), speculative_query);
    if (st.ok() && s->reporter) s->After(static_cast<int>(layer), /*step=*/false);
    return AbiDone(st);
  });
}

kvt_status_t kvt_sequence_observe(kvt_sequence_t* s, uint32_t layer, const float* queries, uint32_t window) {
  return AbiGuard([&]() -> kvt_status_t {
    if (kvt::Status st = CheckHandle(s); !st.ok()) return AbiFail(st);
    if (window > INT32_MAX) return AbiFail(kvt::InvalidArgument("observe: window past int32"));
    kvt::Status st = s->seq->Observe(static_cast<int>(layer), queries, static_cast<int>(window));
    if (st.ok() && s->reporter) s->After(static_cast<int>(layer), /*step=*/false);  // bytes changed
    return AbiDone(st);
  });
}

kvt_status_t kvt_sequence_suspend(kvt_sequence_t* s, void** out_image, uint64_t* out_bytes) {
  return AbiGuard([&]() -> kvt_status_t {
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
  return AbiGuard([&]() -> kvt_status_t {
    if (kvt::Status st = CheckHandle(s); !st.ok()) return AbiFail(st);
    if (image == nullptr && bytes > 0) return AbiFail(kvt::InvalidArgument("resume: null image"));
    kvt::Status st = s->seq->Resume(std::span(static_cast<const uint8_t*>(image), static_cast<size_t>(bytes)));
    s->After(-1, /*step=*/false);
    return AbiDone(st);
  });
}

kvt_status_t kvt_sequence_suspend_to_file(kvt_sequence_t* s, const char* path) {
  return AbiGuard([&]() -> kvt_status_t {
    if (kvt::Status st = CheckHandle(s); !st.ok()) return AbiFail(st);
    if (path == nullptr || *path == '\0') return AbiFail(kvt::InvalidArgument("suspend_to_file: null or empty path"));
    kvt::Status st = s->seq->SuspendToFile(path);
    s->After(-1, /*step=*/false);
    return AbiDone(st);
  });
}

kvt_status_t kvt_sequence_resume_from_file(kvt_sequence_t* s, const char* path) {
  return AbiGuard([&]() -> kvt_status_t {
    if (kvt::Status st = CheckHandle(s); !st.ok()) return AbiFail(st);
    if (path == nullptr || *path == '\0') return AbiFail(kvt::InvalidArgument("resume_from_file: null or empty path"));
    kvt::Status st = s->seq->ResumeFromFile(path);
    s->After(-1, /*step=*/false);
    return AbiDone(st);
  });
}

kvt_status_t kvt_sequence_attach(kvt_sequence_t* s, kvt_client_t* client) {
  return AbiGuard([&]() -> kvt_status_t {
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
