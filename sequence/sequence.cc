#include "sequence/sequence.h"

#include <string>
#include <utility>

#include "host/kernels/cpu_requirements.h"
#include "sequence/internal/method_cache.h"

namespace kvt::sequence {
namespace {

constexpr uint64_t kImageMagic = 0x31514553'5456'4bULL;  // "KVTSEQ1"

}  // namespace

namespace internal {

StatusOr<std::unique_ptr<LayerState>> MakeLayerState(const LayerPlan& plan, const kernels::AttentionShape& shape,
                                                     int layer, int num_layers, LayerContext* context) {
  switch (plan.kind) {
    case LayerKind::kFull: return NewFullLayer(shape, false, context);
    case LayerKind::kOffload: return NewFullLayer(shape, true, context);
    case LayerKind::kKivi: return NewKiviLayer(plan, shape);
    case LayerKind::kSparse: return NewSparseLayer(plan, shape, layer, context);
    case LayerKind::kTale:
    case LayerKind::kKvCompose: return NewMethodLayer(plan, shape, layer, context);
  }
  return InvalidArgument("unknown layer kind");
}

}  // namespace internal

Sequence::Sequence(SequencePlan plan, SequenceOptions options)
    : plan_(std::move(plan)), resident_memory_(NewProcessHostTierMemory()) {
  if (options.scheduler == nullptr) own_scheduler_ = std::make_unique<TransferScheduler>();
  scheduler_ = options.scheduler ? options.scheduler : own_scheduler_.get();
  context_.scheduler = scheduler_;
  context_.resident_memory = resident_memory_.get();
}

Sequence::~Sequence() {
  if (gpu_) (void)internal::ActivateGpu(*gpu_);
  layers_.clear();  // each layer waits for its own transfers
  for (auto& b : context_.buffers) {
    if (b.pending) (void)scheduler_->Wait(b.ticket);
  }
}

Status Sequence::BuildLayers() {
  layers_.clear();
  KVT_RETURN_IF_ERROR(internal::PlanKvComposeBudget(plan_, &context_));
  for (int l = 0; l < plan_.num_layers(); ++l) {
    const LayerPlan& lp = plan_.layers[static_cast<size_t>(l)];
    auto s = gpu_ ? internal::NewGpuLayer(lp, plan_.shape(), l, gpu_.get(), &context_)
                  : internal::MakeLayerState(lp, plan_.shape(), l, plan_.num_layers(), &context_);
    if (!s.ok()) return s.status().WithContext("layer " + std::to_string(l));
    layers_.push_back(std::move(*s));
  }
  return Status::Ok();
}

Status Sequence::OpenDevice(int cuda_device, HostTierMemory* host_memory) {
  if (cuda_device < -1) return InvalidArgument("cuda_device " + std::to_string(cuda_device) + ": -1 (CPU) or >= 0");
  if (cuda_device >= 0 && host_memory != nullptr && !host_memory->device_mapped()) {
    return InvalidArgument("a GPU sequence's host-tier memory must be mapped for DMA (HostTierMemory::device_mapped)");
  }
  if (cuda_device >= 0) {
    KVT_ASSIGN_OR_RETURN(gpu_, internal::OpenGpuContext(cuda_device));
  }
  if (host_memory == nullptr) {
    own_host_memory_ = gpu_ ? internal::NewPinnedHostTierMemory(*gpu_) : NewProcessHostTierMemory();
  }
  context_.host_memory = host_memory != nullptr ? host_memory : own_host_memory_.get();
  return Status::Ok();
}

StatusOr<std::unique_ptr<Sequence>> Sequence::Open(const SequencePlan& plan, SequenceOptions options) {
  KVT_RETURN_IF_ERROR(kernels::RequireHostKernelCpu());
  KVT_RETURN_IF_ERROR(plan.Validate());
  std::unique_ptr<Sequence> s(new Sequence(plan, options));
  KVT_RETURN_IF_ERROR(s->OpenDevice(options.cuda_device, options.host_memory));
  KVT_RETURN_IF_ERROR(s->BuildLayers());
  return s;
}

Status Sequence::CheckLayer(int layer) const {
  if (suspended_) return Unsupported("sequence is suspended; Resume it first");
  if (layer < 0 || layer >= plan_.num_layers()) {
    return InvalidArgument("layer " + std::to_string(layer) + " outside [0, " + std::to_string(plan_.num_layers()) + ")");
  }
  if (gpu_) return internal::ActivateGpu(*gpu_);
  return Status::Ok();
}

Status Sequence::Append(int layer, const float* keys, const float* values, int tokens) {
  KVT_RETURN_IF_ERROR(CheckLayer(layer));
  if (keys == nullptr || values == nullptr || tokens <= 0) return InvalidArgument("append: null buffer or no tokens");
  if (Status s = layers_[static_cast<size_t>(layer)]->Append(keys, values, tokens); !s.ok()) {
    return s.WithContext("layer " + std::to_string(layer) + " append");
  }
  return Status::Ok();
}

Status Sequence::Attend(int layer, const float* query, float* out) {
  KVT_RETURN_IF_ERROR(CheckLayer(layer));
  if (query == nullptr || out == nullptr) return InvalidArgument("attend: null buffer");
  auto& l = *layers_[static_cast<size_t>(layer)];
  if (l.tokens() == 0) return InvalidArgument("attend: layer " + std::to_string(layer) + " holds no tokens");
  if (Status s = l.Attend(query, out); !s.ok()) return s.WithContext("layer " + std::to_string(layer) + " attend");
  return Status::Ok();
}

Status Sequence::AttendOnDevice(int layer, const float* query, float* out, CUstream_st* stream) {
  if (!gpu_) return Unsupported("attend on device: this sequence is on the CPU (open it with SequenceOptions::cuda_device)");
  KVT_RETURN_IF_ERROR(CheckLayer(layer));
  if (query == nullptr || out == nullptr) return InvalidArgument("attend on device: null buffer");
  auto& l = *layers_[static_cast<size_t>(layer)];
  if (l.tokens() == 0) return InvalidArgument("attend on device: layer " + std::to_string(layer) + " holds no tokens");
  if (Status s = l.AttendOnDevice(query, out, stream); !s.ok()) {
    return s.WithContext("layer " + std::to_string(layer) + " attend on device");
  }
  return Status::Ok();
}

Status Sequence::AppendOnDevice(int layer, const float* keys, const float* values, int tokens, CUstream_st* stream) {
  if (!gpu_) return Unsupported("append on device: this sequence is on the CPU (open it with SequenceOptions::cuda_device)");
  KVT_RETURN_IF_ERROR(CheckLayer(layer));
  if (keys == nullptr || values == nullptr || tokens <= 0) {
    return InvalidArgument("append on device: null buffer or no tokens");
  }
  if (Status s = layers_[static_cast<size_t>(layer)]->AppendOnDevice(keys, values, tokens, stream); !s.ok()) {
    return s.WithContext("layer " + std::to_string(layer) + " append on device");
  }
  return Status::Ok();
}

StatusOr<DeviceSelectedKv> Sequence::SelectOnDevice(int layer, const float* query, CUstream_st* stream) {
  if (!gpu_) return Unsupported("select on device: this sequence is on the CPU (open it with SequenceOptions::cuda_device)");
  KVT_RETURN_IF_ERROR(CheckLayer(layer));
  if (query == nullptr) return InvalidArgument("select on device: null query");
  auto& l = *layers_[static_cast<size_t>(layer)];
  if (l.tokens() == 0) return InvalidArgument("select on device: layer " + std::to_string(layer) + " holds no tokens");
  DeviceSelectedKv out;
  if (Status s = l.SelectOnDevice(query, stream, &out); !s.ok()) {
    return s.WithContext("layer " + std::to_string(layer) + " select on device");
  }
  return out;
}

StatusOr<SelectedKv> Sequence::Select(int layer, const float* query) {
  KVT_RETURN_IF_ERROR(CheckLayer(layer));
  if (query == nullptr) return InvalidArgument("select: null query");
  auto& l = *layers_[static_cast<size_t>(layer)];
  if (l.tokens() == 0) return InvalidArgument("select: layer " + std::to_string(layer) + " holds no tokens");
  SelectedKv out;
  if (Status s = l.Select(query, &out); !s.ok()) return s.WithContext("layer " + std::to_string(layer) + " select");
  return out;
}

Status Sequence::HintNext(int layer, const float* speculative_query) {
  KVT_RETURN_IF_ERROR(CheckLayer(layer));
  if (speculative_query == nullptr) return InvalidArgument("hint: null query");
  return layers_[static_cast<size_t>(layer)]->Hint(speculative_query);
}

Status Sequence::Observe(int layer, const float* queries, int window) {
  KVT_RETURN_IF_ERROR(CheckLayer(layer));
  if (queries == nullptr || window <= 0) return InvalidArgument("observe: null queries or window < 1");
  if (Status s = layers_[static_cast<size_t>(layer)]->Observe(queries, window); !s.ok()) {
    return s.WithContext("layer " + std::to_string(layer) + " observe");
  }
  // KVCompose's cross-layer plan is decided at the last global=1 layer's Observe: settle them all
  // (a no-op for every other layer and whenever nothing is decided).
  for (size_t l = 0; l < layers_.size(); ++l) {
    if (Status s = layers_[l]->Settle(); !s.ok()) return s.WithContext("layer " + std::to_string(l) + " settle");
  }
  return Status::Ok();
}

Status Sequence::QuiesceAll() {
  for (auto& l : layers_) KVT_RETURN_IF_ERROR(l->Quiesce());
  for (auto& b : context_.buffers) {
    if (b.pending) {
      b.pending = false;
      KVT_RETURN_IF_ERROR(scheduler_->Wait(b.ticket));
    }
  }
  return Status::Ok();
}

void Sequence::ReleaseState() {
  layers_.clear();
  for (auto& b : context_.buffers) b = internal::PrefetchBuffer{};
  std::vector<kernels::Half>().swap(context_.gather_k);  // = {} would keep the capacity
  std::vector<kernels::Half>().swap(context_.gather_v);
  if (gpu_) internal::ReleaseGpuScratch(*gpu_);
  suspended_ = true;
}

std::vector<uint8_t> Sequence::ImagePrologue() const {
  std::vector<uint8_t> bytes;
  internal::ByteWriter w(&bytes);
  w.Put(kImageMagic);
  w.PutString(FormatPlan(plan_));
  return bytes;
}

StatusOr<std::vector<uint8_t>> Sequence::Suspend() {
  if (suspended_) return Unsupported("sequence already suspended");
  if (gpu_) KVT_RETURN_IF_ERROR(internal::ActivateGpu(*gpu_));
  KVT_RETURN_IF_ERROR(QuiesceAll());
  std::vector<uint8_t> image = ImagePrologue();
  internal::ByteWriter w(&image);
  for (size_t l = 0; l < layers_.size(); ++l) {
    if (Status s = layers_[l]->Save(w); !s.ok()) return s.WithContext("suspend layer " + std::to_string(l));
  }
  ReleaseState();
  return image;
}

Status Sequence::SuspendToFile(const std::string& path, SuspendFileIo* io) {
  if (suspended_) return Unsupported("sequence already suspended");
  if (gpu_) KVT_RETURN_IF_ERROR(internal::ActivateGpu(*gpu_));
  KVT_RETURN_IF_ERROR(QuiesceAll());
  // Streamed one layer at a time, so the extra memory is one layer's image, not the sequence's.
  SuspendFileWriter file(io);
  KVT_RETURN_IF_ERROR(file.Open(path));
  KVT_RETURN_IF_ERROR(file.Append(ImagePrologue()));
  std::vector<uint8_t> chunk;
  for (size_t l = 0; l < layers_.size(); ++l) {
    chunk.clear();
    internal::ByteWriter w(&chunk);
    Status s = layers_[l]->Save(w);
    if (s.ok()) s = file.Append(chunk);
    if (!s.ok()) return s.WithContext("suspend layer " + std::to_string(l));
  }
  chunk = {};
  KVT_RETURN_IF_ERROR(file.Commit());
  ReleaseState();
  return Status::Ok();
}

Status Sequence::ResumeFromFile(const std::string& path) {
  if (!suspended_ && !layers_.empty() && tokens(0) > 0) return Unsupported("resume: sequence is live");
  KVT_ASSIGN_OR_RETURN(std::vector<uint8_t> image, ReadSuspendFile(path));
  return Resume(image).WithContext("resume from " + path);
}

Status Sequence::Resume(std::span<const uint8_t> image) {
  if (!suspended_ && !layers_.empty() && tokens(0) > 0) return Unsupported("resume: sequence is live");
  internal::ByteReader r(image);
  uint64_t magic = 0;
  KVT_RETURN_IF_ERROR(r.Get(&magic));
  if (magic != kImageMagic) return Corruption("sequence image: bad magic");
  std::string plan_text;
  KVT_RETURN_IF_ERROR(r.GetString(&plan_text));
  KVT_ASSIGN_OR_RETURN(SequencePlan plan, ParsePlan(plan_text));
  if (gpu_) KVT_RETURN_IF_ERROR(internal::ActivateGpu(*gpu_));
  // Nothing changes unless the whole image loads: a bad image leaves the sequence as it was
  // (suspended, or fresh).
  SequencePlan old_plan = std::exchange(plan_, std::move(plan));
  std::vector<std::unique_ptr<internal::LayerState>> old_layers = std::move(layers_);
  auto fail = [&](Status s) {
    layers_ = std::move(old_layers);
    plan_ = std::move(old_plan);
    return s;
  };
  if (Status s = BuildLayers(); !s.ok()) return fail(s);
  for (size_t l = 0; l < layers_.size(); ++l) {
    if (Status s = layers_[l]->Load(r); !s.ok()) return fail(s.WithContext("layer " + std::to_string(l)));
  }
  if (!r.done()) return fail(Corruption("sequence image: trailing bytes"));
  old_layers.clear();
  suspended_ = false;
  return Status::Ok();
}

StatusOr<std::unique_ptr<Sequence>> Sequence::Restore(std::span<const uint8_t> image, SequenceOptions options) {
  KVT_RETURN_IF_ERROR(kernels::RequireHostKernelCpu());
  std::unique_ptr<Sequence> s(new Sequence(SequencePlan{}, options));
  KVT_RETURN_IF_ERROR(s->OpenDevice(options.cuda_device, options.host_memory));
  s->suspended_ = true;
  KVT_RETURN_IF_ERROR(s->Resume(image));
  return s;
}

int64_t Sequence::tokens(int layer) const {
  if (suspended_ || layer < 0 || layer >= static_cast<int>(layers_.size())) return 0;
  return layers_[static_cast<size_t>(layer)]->tokens();
}

int64_t Sequence::kept_tokens(int layer) const {
  if (suspended_ || layer < 0 || layer >= static_cast<int>(layers_.size())) return 0;
  return layers_[static_cast<size_t>(layer)]->kept_tokens();
}

uint64_t Sequence::stored_bytes(int layer) const {
  if (suspended_ || layer < 0 || layer >= static_cast<int>(layers_.size())) return 0;
  const auto& l = *layers_[static_cast<size_t>(layer)];
  return l.device_bytes() + l.host_bytes();
}

SequenceCounters Sequence::counters() const {
  SequenceCounters c;
  for (const auto& l : layers_) {
    c.device_bytes += l->device_bytes();
    c.host_bytes += l->host_bytes();
  }
  // The two channel-row buffers are resident too.
  for (const auto& b : context_.buffers) c.device_bytes += b.rows.capacity() * sizeof(kernels::Half);
  c.device_bytes += (context_.gather_k.capacity() + context_.gather_v.capacity()) * sizeof(kernels::Half);
  if (gpu_) c.device_bytes += internal::GpuScratchBytes(*gpu_);
  c.pcie_bytes = context_.pcie_bytes;
  c.prefetch_hits = context_.prefetch_hits;
  c.demand_fetches = context_.demand_fetches;
  c.attention_fetch_bytes = context_.attention_fetch_bytes;
  return c;
}

}  // namespace kvt::sequence
