#include "sequence/sequence_cache_factory.h"

#include "policies/hintable_cache.h"
#include "sequence/sequence.h"

namespace kvt::sequence {
namespace {

class SequenceLayerCache final : public policies::LayerCache, public policies::HintableCache {
 public:
  SequenceLayerCache(std::shared_ptr<Sequence> seq, int layer) : seq_(std::move(seq)), layer_(layer) {}

  Status Append(const policies::AppendBatch& b) override {
    if (b.tokens <= 0 || !b.keys || !b.values) return InvalidArgument("append: empty batch");
    return seq_->Append(layer_, b.keys, b.values, b.tokens);
  }
  // tale / kvcompose layers compress on the observation; the other kinds ignore it.
  Status Compress(const policies::Observation& o) override {
    return o.window > 0 ? seq_->Observe(layer_, o.queries, o.window) : Status::Ok();
  }
  Status Attend(const float* query, float* out) override { return seq_->Attend(layer_, query, out); }
  Status HintQuery(const float* q) override { return seq_->HintNext(layer_, q); }
  int64_t tokens() const override { return seq_->tokens(layer_); }
  int64_t kept_tokens() const override { return seq_->kept_tokens(layer_); }
  uint64_t stored_bytes() const override { return seq_->stored_bytes(layer_); }
  std::string name() const override {
    return "seq-" + std::string(LayerKindName(seq_->plan().layers[static_cast<size_t>(layer_)].kind));
  }

 private:
  std::shared_ptr<Sequence> seq_;
  int layer_;
};

}  // namespace

LayerCacheFactory MakeSequenceCacheFactory(SequencePlan plan) {
  auto shared_plan = std::make_shared<const SequencePlan>(std::move(plan));
  return [shared_plan](const policies::LayerShape& shape) -> StatusOr<std::unique_ptr<policies::LayerCache>> {
    thread_local std::weak_ptr<Sequence> current;
    const SequencePlan& p = *shared_plan;
    if (shape.num_layers != p.num_layers() || shape.num_kv_heads != p.kv_heads || shape.num_q_heads != p.q_heads ||
        shape.head_dim != p.head_dim || shape.layer < 0 || shape.layer >= p.num_layers()) {
      return InvalidArgument("sequence plan for " + std::to_string(p.num_layers()) + " layers, " +
                             std::to_string(p.q_heads) + "/" + std::to_string(p.kv_heads) + " heads, head_dim " +
                             std::to_string(p.head_dim) + " does not fit the model's layer shape");
    }
    std::shared_ptr<Sequence> seq = current.lock();
    if (shape.layer == 0 || !seq) {
      if (shape.layer != 0) return InvalidArgument("sequence cache factory: layer 0 must be built first");
      KVT_ASSIGN_OR_RETURN(std::unique_ptr<Sequence> opened, Sequence::Open(p));
      seq = std::shared_ptr<Sequence>(std::move(opened));
      current = seq;
    }
    return std::unique_ptr<policies::LayerCache>(new SequenceLayerCache(seq, shape.layer));
  };
}

}  // namespace kvt::sequence
