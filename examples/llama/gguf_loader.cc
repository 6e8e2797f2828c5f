#include "examples/llama/gguf_loader.h"

namespace kvt::llama {
namespace {

StatusOr<int> GetDim(const GgufFile& f, const std::string& key) {
  KVT_ASSIGN_OR_RETURN(int64_t v, f.GetInt(key));
  if (v <= 0 || v > (int64_t{1} << 30)) {
    return Corruption(f.source() + ": metadata '" + key + "' = " + std::to_string(v) + " out of range");
  }
  return static_cast<int>(v);
}

// SentencePiece marks a word-initial space as U+2581 (e2 96 81); llama2.c's vocab uses ' '.
std::string SpacesFromSentencePiece(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (i + 2 < s.size() && static_cast<unsigned char>(s[i]) == 0xE2 &&
        static_cast<unsigned char>(s[i + 1]) == 0x96 && static_cast<unsigned char>(s[i + 2]) == 0x81) {
      out.push_back(' ');
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

StatusOr<std::optional<Tokenizer>> TokenizerFromGguf(const GgufFile& f) {
  auto tokens = f.GetStringArray("tokenizer.ggml.tokens");
  if (!tokens.ok() && tokens.status().code() == StatusCode::kNotFound) return std::optional<Tokenizer>();
  if (!tokens.ok()) return tokens.status();
  KVT_ASSIGN_OR_RETURN(std::vector<double> scores_d, f.GetNumberArray("tokenizer.ggml.scores"));
  std::vector<std::string> pieces;
  pieces.reserve(tokens->size());
  for (const std::string& t : *tokens) pieces.push_back(SpacesFromSentencePiece(t));
  std::vector<float> scores(scores_d.begin(), scores_d.end());
  auto tok = Tokenizer::FromVocab(std::move(pieces), std::move(scores));
  if (!tok.ok()) return tok.status().WithContext(f.source() + ": embedded tokenizer");
  return std::optional<Tokenizer>(std::move(tok).value());
}

}  // namespace

StatusOr<LoadedModel> ModelFromGguf(const GgufFile& f) {
  KVT_ASSIGN_OR_RETURN(std::string arch, f.GetString("general.architecture"));
  if (arch != "llama") return Unsupported(f.source() + ": architecture '" + arch + "' (only llama)");
  ModelConfig c;
  KVT_ASSIGN_OR_RETURN(c.dim, GetDim(f, "llama.embedding_length"));
  KVT_ASSIGN_OR_RETURN(c.hidden_dim, GetDim(f, "llama.feed_forward_length"));
  KVT_ASSIGN_OR_RETURN(c.n_layers, GetDim(f, "llama.block_count"));
  KVT_ASSIGN_OR_RETURN(c.n_heads, GetDim(f, "llama.attention.head_count"));
  c.n_kv_heads = c.n_heads;
  if (f.metadata().count("llama.attention.head_count_kv")) {
    KVT_ASSIGN_OR_RETURN(c.n_kv_heads, GetDim(f, "llama.attention.head_count_kv"));
  }
  KVT_ASSIGN_OR_RETURN(c.seq_len, GetDim(f, "llama.context_length"));
  if (auto eps = f.GetFloat("llama.attention.layer_norm_rms_epsilon"); eps.ok()) c.rms_eps = static_cast<float>(*eps);
  if (auto theta = f.GetFloat("llama.rope.freq_base"); theta.ok()) c.rope_theta = static_cast<float>(*theta);
  const GgufTensorInfo* emb = f.FindTensor("token_embd.weight");
  if (emb == nullptr) return NotFound(f.source() + ": no tensor 'token_embd.weight'");
  if (emb->dims.size() != 2 || emb->dims[1] > (uint64_t{1} << 24)) {
    return Corruption(f.source() + ": token_embd.weight is not a [vocab][dim] matrix");
  }
  c.vocab_size = static_cast<int>(emb->dims[1]);
  if (Status s = c.Validate(); !s.ok()) return s.WithContext(f.source());
  if (auto rope_dims = f.GetInt("llama.rope.dimension_count");
      rope_dims.ok() && *rope_dims != c.head_dim()) {
    return Unsupported(f.source() + ": partial RoPE (rope.dimension_count " + std::to_string(*rope_dims) +
                       ", head_dim " + std::to_string(c.head_dim()) + ")");
  }

  const bool shared = f.FindTensor("output.weight") == nullptr;
  LoadedModel m;
  ModelWeights& w = m.weights;
  w.Allocate(c, shared);
  const uint64_t d = c.dim, h = c.hidden_dim, kv = c.kv_dim(), v = c.vocab_size;
  KVT_RETURN_IF_ERROR(f.ReadTensor("token_embd.weight", {d, v}, w.tok_emb.data()));
  KVT_RETURN_IF_ERROR(f.ReadTensor("output_norm.weight", {d}, w.rms_final.data()));
  if (!shared) KVT_RETURN_IF_ERROR(f.ReadTensor("output.weight", {d, v}, w.wcls.data()));
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    KVT_RETURN_IF_ERROR(f.ReadTensor(p + "attn_norm.weight", {d}, w.rms_att.data() + l * d));
    KVT_RETURN_IF_ERROR(f.ReadTensor(p + "attn_q.weight", {d, d}, w.wq.data() + l * d * d));
    KVT_RETURN_IF_ERROR(f.ReadTensor(p + "attn_k.weight", {d, kv}, w.wk.data() + l * kv * d));
    KVT_RETURN_IF_ERROR(f.ReadTensor(p + "attn_v.weight", {d, kv}, w.wv.data() + l * kv * d));
    KVT_RETURN_IF_ERROR(f.ReadTensor(p + "attn_output.weight", {d, d}, w.wo.data() + l * d * d));
    KVT_RETURN_IF_ERROR(f.ReadTensor(p + "ffn_norm.weight", {d}, w.rms_ffn.data() + l * d));
    KVT_RETURN_IF_ERROR(f.ReadTensor(p + "ffn_gate.weight", {d, h}, w.w1.data() + l * h * d));
    KVT_RETURN_IF_ERROR(f.ReadTensor(p + "ffn_down.weight", {h, d}, w.w2.data() + l * d * h));
    KVT_RETURN_IF_ERROR(f.ReadTensor(p + "ffn_up.weight", {d, h}, w.w3.data() + l * h * d));
  }
  if (Status s = w.Validate(); !s.ok()) return s.WithContext(f.source());
  KVT_ASSIGN_OR_RETURN(m.tokenizer, TokenizerFromGguf(f));
  if (m.tokenizer && m.tokenizer->vocab_size() != c.vocab_size) {
    return Corruption(f.source() + ": embedded tokenizer has " + std::to_string(m.tokenizer->vocab_size()) +
                      " tokens, the model " + std::to_string(c.vocab_size));
  }
  return m;
}

StatusOr<LoadedModel> LoadGgufModel(const std::string& path) {
  KVT_ASSIGN_OR_RETURN(GgufFile f, GgufFile::Load(path));
  return ModelFromGguf(f);
}

}  // namespace kvt::llama
