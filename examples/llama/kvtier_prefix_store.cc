#include "examples/llama/kvtier_prefix_store.h"

#include <algorithm>
#include <cstring>

namespace kvt::llama {
namespace {

// kvt_status_t and kvt::StatusCode agree value for value (static_assert in the client).
Status FromResult(const kvt::Result& r, std::string_view what) {
  if (r) return Status::Ok();
  return Status(static_cast<StatusCode>(r.status), std::string(what) + ": " + r.message);
}

// Token ids cross the ABI as uint32; a negative id is a caller bug, reported, never sent.
Status CheckTokens(std::span<const int32_t> tokens) {
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0) return InvalidArgument("token " + std::to_string(i) + " is negative");
  }
  return Status::Ok();
}

}  // namespace

StatusOr<std::unique_ptr<KvtierPrefixStore>> KvtierPrefixStore::Open(
    const KvtierStoreOptions& options, const ModelConfig& config) {
  if (options.model_id.empty()) return InvalidArgument("kvtier store: model_id is required");
  if (options.tokens_per_chunk <= 0 || options.tokens_per_chunk > (1 << 16)) {
    return InvalidArgument("kvtier store: tokens_per_chunk must be in [1, 65536], got " +
                           std::to_string(options.tokens_per_chunk));
  }
  KVT_RETURN_IF_ERROR(config.Validate().WithContext("kvtier store"));
  std::unique_ptr<KvtierPrefixStore> s(new KvtierPrefixStore());
  kvt_client_options_t co;
  kvt_client_options_init(&co);
  co.socket_path = options.socket_path.empty() ? nullptr : options.socket_path.c_str();
  co.tenant = options.tenant.empty() ? nullptr : options.tenant.c_str();
  co.heap_bytes = options.heap_bytes;
  co.timeout_ns = options.timeout_ns;
  KVT_RETURN_IF_ERROR(FromResult(kvt::Client::Open(co, &s->client_), "connecting to kv-tierd"));
  s->model_id_ = options.model_id;
  s->layers_ = config.n_layers;
  s->kv_heads_ = config.n_kv_heads;
  s->head_dim_ = config.head_dim();
  s->tpc_ = options.tokens_per_chunk;
  kvt_layout_t layout;
  kvt_layout_init(&layout);
  layout.model_id = s->model_id_.c_str();
  layout.num_layers = static_cast<uint32_t>(s->layers_);
  layout.num_kv_heads = static_cast<uint32_t>(s->kv_heads_);
  layout.head_dim = static_cast<uint32_t>(s->head_dim_);
  layout.dtype = KVT_DTYPE_F32;
  layout.tokens_per_chunk = static_cast<uint32_t>(s->tpc_);
  KVT_RETURN_IF_ERROR(FromResult(s->client_.OpenNamespace(layout, &s->ns_), "opening the namespace"));
  s->chunk_bytes_ = s->ns_.chunk_bytes();
  const uint64_t expect = 2ull * s->layers_ * s->tpc_ * s->kv_heads_ * s->head_dim_ * sizeof(float);
  if (s->chunk_bytes_ != expect) {
    return Internal("kvtier store: daemon chunk size " + std::to_string(s->chunk_bytes_) +
                    " != expected " + std::to_string(expect));
  }
  return s;
}

KvtierPrefixStore::~KvtierPrefixStore() {
  if (shared_ != nullptr) client_.FreeBuffer(shared_);
}

Status KvtierPrefixStore::Fail(Status s) {
  ++failures_;
  return s;
}

char* KvtierPrefixStore::Staging(uint64_t bytes) {
  if (shared_ != nullptr && shared_bytes_ >= bytes) {
    last_zero_copy_ = true;
    return static_cast<char*>(shared_);
  }
  // Grow geometrically so a sequence of longer prompts does not reallocate every time.
  const uint64_t want = std::max<uint64_t>(bytes, 2 * shared_bytes_);
  if (shared_ != nullptr) {
    client_.FreeBuffer(shared_);
    shared_ = nullptr;
    shared_bytes_ = 0;
  }
  for (uint64_t size : {want, bytes}) {
    void* p = nullptr;
    if (client_.AllocateBuffer(size, &p)) {
      shared_ = p;
      shared_bytes_ = size;
      last_zero_copy_ = true;
      return static_cast<char*>(shared_);
    }
  }
  // Heap exhausted (prompt larger than the client heap): the library stages it in pieces.
  fallback_.resize(bytes);
  last_zero_copy_ = false;
  return fallback_.data();
}

StatusOr<int> KvtierPrefixStore::Lookup(std::span<const int32_t> tokens) {
  KVT_RETURN_IF_ERROR(CheckTokens(tokens));
  const uint64_t whole = tokens.size() / tpc_ * tpc_;
  if (whole == 0) return 0;
  uint64_t matched = 0;
  const auto* ids = reinterpret_cast<const uint32_t*>(tokens.data());
  if (Status s = FromResult(ns_.Lookup(ids, whole, &matched), "kvt_block_lookup"); !s.ok()) {
    return Fail(std::move(s));
  }
  return static_cast<int>(std::min<uint64_t>(matched, whole));
}

StatusOr<PrefixKv> KvtierPrefixStore::Retrieve(std::span<const int32_t> tokens, int n) {
  if (n <= 0 || n % tpc_ != 0 || n > static_cast<int>(tokens.size())) {
    return InvalidArgument("Retrieve: " + std::to_string(n) + " is not a whole number of chunks of the tokens");
  }
  KVT_RETURN_IF_ERROR(CheckTokens(tokens.first(n)));
  const int chunks = n / tpc_;
  const uint64_t kv_bytes = chunks * chunk_bytes_;
  char* buf = Staging(kv_bytes + n * sizeof(uint32_t));
  auto* ids = reinterpret_cast<uint32_t*>(buf + kv_bytes);
  std::memcpy(ids, tokens.data(), n * sizeof(uint32_t));
  uint64_t got = 0;
  if (Status s = FromResult(ns_.Retrieve(ids, n, buf, kv_bytes, &got), "kvt_block_retrieve"); !s.ok()) {
    return Fail(std::move(s));
  }
  if (got != static_cast<uint64_t>(n)) {
    return Fail(NotFound("Retrieve: the daemon returned " + std::to_string(got) + " of " +
                         std::to_string(n) + " tokens (evicted since the lookup)"));
  }
  PrefixKv out;
  out.layers = layers_;
  out.tokens = n;
  out.kv_heads = kv_heads_;
  out.head_dim = head_dim_;
  out.data.resize(out.LayerStride() * layers_);
  const size_t slab = static_cast<size_t>(tpc_) * kv_heads_ * head_dim_;  // floats
  const auto* src = reinterpret_cast<const float*>(buf);
  for (int c = 0; c < chunks; ++c) {
    for (int l = 0; l < layers_; ++l) {
      std::memcpy(out.keys(l) + c * slab, src, slab * sizeof(float));
      std::memcpy(out.values(l) + c * slab, src + slab, slab * sizeof(float));
      src += 2 * slab;
    }
  }
  retrieved_chunks_ += chunks;
  return out;
}

Status KvtierPrefixStore::Store(std::span<const int32_t> tokens, const PrefixKv& kv) {
  if (kv.tokens != static_cast<int>(tokens.size()) || kv.layers != layers_ ||
      kv.kv_heads != kv_heads_ || kv.head_dim != head_dim_ ||
      kv.data.size() != kv.LayerStride() * kv.layers) {
    return InvalidArgument("Store: KV shape does not match the tokens or the namespace layout");
  }
  KVT_RETURN_IF_ERROR(CheckTokens(tokens));
  const int chunks = kv.tokens / tpc_;
  if (chunks == 0) return Status::Ok();
  const int n = chunks * tpc_;
  const uint64_t kv_bytes = chunks * chunk_bytes_;
  char* buf = Staging(kv_bytes + n * sizeof(uint32_t));
  const size_t slab = static_cast<size_t>(tpc_) * kv_heads_ * head_dim_;
  auto* dst = reinterpret_cast<float*>(buf);
  for (int c = 0; c < chunks; ++c) {
    for (int l = 0; l < layers_; ++l) {
      std::memcpy(dst, kv.keys(l) + c * slab, slab * sizeof(float));
      std::memcpy(dst + slab, kv.values(l) + c * slab, slab * sizeof(float));
      dst += 2 * slab;
    }
  }
  auto* ids = reinterpret_cast<uint32_t*>(buf + kv_bytes);
  std::memcpy(ids, tokens.data(), n * sizeof(uint32_t));
  uint64_t stored = 0;
  if (Status s = FromResult(ns_.Store(ids, n, buf, kv_bytes, &stored), "kvt_block_store"); !s.ok()) {
    return Fail(std::move(s));
  }
  stored_chunks_ += static_cast<int64_t>(stored);
  return Status::Ok();
}

}  // namespace kvt::llama
